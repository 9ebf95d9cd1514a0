"""Continuation tokens: opaque to CodePipeline, unguessable, short, and free of secrets.

A token names the run and carries a random nonce that only the runs table knows, so a
token is valid only while the table says it is the current one. It also carries hints
that let an idle tick answer without touching DynamoDB: when the next poll is due, when
the table was last read, the gate's deadline and the progress to show meanwhile.

Wire form: `v1.` + base64url(compact JSON). Hints are trusted only for skipping work;
a tick that changes anything re-reads the table and checks the nonce.
"""

from __future__ import annotations

import binascii
import json
import math
import secrets
from dataclasses import asdict, dataclass

from orchestrator.exceptions import UnknownTokenError
from orchestrator.text import b64url, unb64url

_PREFIX = "v1."
MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True)
class Token:
    """The decoded content of a continuation token.

    `job_id` is the job whose answer carried the token (see tick.py for why).
    `nonce` is None for a run that could not be created yet (the state store was down on
    the first tick): the next tick creates it.
    """

    run_id: str
    nonce: str | None
    job_id: str
    started_at: float
    deadline: float
    due: float
    checked_at: float
    step_index: int
    percent: int
    definition: str | None = None
    """The key of a referenced gate's pinned definition (None: the gate is inline)."""

    def encode(self) -> str:
        payload = {
            "r": self.run_id,
            "n": self.nonce,
            "j": self.job_id,
            "s": round(self.started_at, 3),
            "x": round(self.deadline, 3),
            "d": round(self.due, 3),
            "c": round(self.checked_at, 3),
            "i": self.step_index,
            "p": self.percent,
        }
        if self.definition is not None:
            payload["g"] = self.definition
        raw = json.dumps(payload, separators=(",", ":")).encode()
        text = _PREFIX + b64url(raw)
        if len(text) > MAX_TOKEN_CHARS:  # pragma: no cover - run ids are bounded
            raise ValueError("continuation token too long")
        return text

    @classmethod
    def decode(cls, text: str) -> Token:
        """Parse a token, or raise UnknownTokenError saying it is not one of ours."""
        if not text.startswith(_PREFIX) or len(text) > MAX_TOKEN_CHARS:
            raise UnknownTokenError("unknown continuation token: not issued by this orchestrator")
        body = text[len(_PREFIX) :]
        try:
            raw = json.loads(unb64url(body))
            token = cls(
                run_id=_str(raw["r"]),
                nonce=None if raw["n"] is None else _str(raw["n"]),
                job_id=_str(raw["j"]),
                started_at=float(raw["s"]),
                deadline=float(raw["x"]),
                due=float(raw["d"]),
                checked_at=float(raw["c"]),
                step_index=int(raw["i"]),
                percent=int(raw["p"]),
                definition=None if raw.get("g") is None else _str(raw["g"]),
            )
            numbers = (token.started_at, token.deadline, token.due, token.checked_at)
            if not all(math.isfinite(n) for n in numbers):
                raise ValueError("not finite")
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error):
            raise UnknownTokenError("unknown continuation token: garbled") from None
        return token

    def replace(self, **changes: object) -> Token:
        return Token(**{**asdict(self), **changes})


def new_nonce() -> str:
    """128 random bits."""
    return secrets.token_urlsafe(16)


def _str(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError("bad string")
    return value
