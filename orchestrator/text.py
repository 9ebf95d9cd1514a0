"""Small text conventions shared across the package, each written once.

    clip(text, limit)          what CodePipeline and messages take: cut, marked with "…"
    counted(n, noun)           "1 step", "2 steps": a count and its noun, singular or plural
    bounded(value, limit)      a step result kept in the run's item, or a marker saying its size
    json_or_text(text)         a body that may be JSON: the document, else the text itself
    b64url / unb64url          unpadded base64url (tokens, signed links)
    format_instant(epoch, …)   one function for every way an instant is shown

Standard library only: the pure core may use it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def counted(number: int, noun: str, plural: str = "") -> str:
    """`3 steps`, `1 step`: the noun takes an s (or `plural`) unless the number is 1."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def too_large(size: int) -> str:
    """What is kept instead of a value too large to keep, saying how large it was."""
    return f"<{size} characters, too large to keep>"


def bounded(value: Any, limit: int) -> Any:
    """`value` when its JSON is at most `limit` characters, else `too_large(...)`."""
    size = len(json.dumps(value))
    return value if size <= limit else too_large(size)


def json_or_text(text: str) -> Any:
    """The JSON document `text` holds, or `text` itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The bytes of unpadded base64url `text`; ValueError when it is not that."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


InstantStyle = Literal["iso", "seconds", "minutes", "time"]
_FORMATS: dict[str, str] = {
    "seconds": "%Y-%m-%d %H:%M:%S UTC",  # the CLI, the approval page
    "minutes": "%Y-%m-%d %H:%M UTC",  # messages to people
    "time": "%H:%M:%SZ",  # inside a one-line summary
}


def format_instant(epoch: float, style: InstantStyle = "seconds") -> str:
    """An instant in UTC: "iso" for documents (RFC 3339, `Z`), the others for people."""
    at = datetime.fromtimestamp(epoch, UTC)
    if style == "iso":
        return at.isoformat().replace("+00:00", "Z")
    return at.strftime(_FORMATS[style])
