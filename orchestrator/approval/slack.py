"""Slack interactive buttons on approval messages: POST /slack.

    Slack ── POST /slack  payload=<block_actions JSON>, signed (X-Slack-Signature)
      1. signed?     X-Slack-Signature = "v0=" + hex HMAC-SHA256(app's signing secret,
                     f"v0:{X-Slack-Request-Timestamp}:{raw body}"), the timestamp within
                     5 minutes of now                                   else 401
      2. well-formed? one button, action_id approve|reject, its value a claim signed
                     with the approval key (run, step, decision; no principal)  else 400
      3. first time? "slack:<signature>" claimed once in the run's claims: every Lambda
                     instance shares the table, so a replay within the 5 minutes is
                     caught                                              else 401
      4. decide as `slack:<user id>` (Slack proved who clicked), via "slack"
      5. POST to the interaction's response_url: the message replaced with who decided
                     so far or, when the decision is refused, an ephemeral answer to the
                     clicker only
    ◀─ 200, empty (Slack wants it within 3 seconds: the update has a short timeout)

A 401 or 400 has no body and records nothing. The signing secret and the approval key are
read from Secrets Manager by ARN and cached (`links.KeyCache`); neither, nor a button value,
a signature or a response_url (a bearer URL), is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from orchestrator.approval import decide
from orchestrator.approval.links import BadLink, KeyCache, KeyUnavailable, verify_button
from orchestrator.exceptions import StoreUnavailable
from orchestrator.services import HttpError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pydantic import SecretStr

    from orchestrator.approval.links import ButtonClaim
    from orchestrator.approval.web import App, Request, Response
    from orchestrator.ports import RunStore
    from orchestrator.services import HttpClient

log = logging.getLogger("orchestrator")

MAX_SKEW_SECONDS = 300.0
"""How far a request's timestamp may be from now (Slack's own recommendation: 5 minutes)."""
RESPONSE_TIMEOUT = 1.5
"""Seconds for the response_url update: Slack shows an error after 3 seconds without a 200."""
MAX_BLOCKS = 50
STATUS_BLOCK = "orchestrator-status"
PREFIX = "slack:"
SECRETS = KeyCache()
"""Slack signing secrets by ARN (the process's cache, like `links.KEYS`)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_USER = re.compile(r"[A-Z0-9]{2,32}")
_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}


class BadSignature(Exception):
    """The request is not signed with the Slack app's secret, or not within 5 minutes."""


def signature(secret: SecretStr, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of a request: what `X-Slack-Signature` must say."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.get_secret_value().encode(), base, hashlib.sha256).hexdigest()


def verify(secret: SecretStr, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The request's signature (lower-case header names), if Slack signed exactly this body
    within MAX_SKEW_SECONDS of `now`; raises BadSignature otherwise."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(given):
        raise BadSignature("missing or malformed signature headers")
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise BadSignature("timestamp too far from now")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        raise BadSignature("signature does not verify")
    return given


@dataclass(frozen=True)
class Click:
    """A button click, as the `block_actions` payload tells it."""

    user_id: str
    action_id: str
    value: str
    response_url: str
    blocks: list[dict[str, Any]]
    """The message as it was (what the update replaces)."""

    @classmethod
    def parse(cls, body: bytes) -> Click:
        """The click in a form body `payload=<JSON>`; raises ValueError when malformed."""
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=5)
        (raw,) = fields.get("payload") or [""]
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            raise ValueError("not a block_actions payload")
        user, actions = payload.get("user"), payload.get("actions")
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not _USER.fullmatch(user_id):
            raise ValueError("no user id")
        if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            raise ValueError("not one action")
        action_id, value = actions[0].get("action_id"), actions[0].get("value")
        url = payload.get("response_url")
        if not isinstance(action_id, str) or not isinstance(value, str):
            raise ValueError("no action id or value")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError("no response_url")
        message = payload.get("message")
        blocks = message.get("blocks") if isinstance(message, dict) else None
        kept = [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []
        return cls(user_id, action_id, value, url, kept)


class Slack:
    """The /slack path, built once per process: the store, the approval key, the Slack
    signing secret, the HTTP client for response_url, the clock."""

    def __init__(
        self,
        store: RunStore,
        key: Callable[[], SecretStr],
        secret: Callable[[], SecretStr],
        http: HttpClient,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._key, self._secret, self._http, self._now = store, key, secret, http, now

    def handle(self, request: Request) -> Response:
        from orchestrator.approval.web import Response

        if request.method != "POST":
            return Response(405, "", {**_PLAIN, "Allow": "POST"})
        now = self._now()
        try:
            secret, key = self._secret(), self._key()
        except KeyUnavailable as exc:
            log.error("slack: a key is unavailable", extra={"error": str(exc)})
            return Response(503, "", _PLAIN)
        try:
            signed = verify(secret, request.headers, request.body, now)
        except BadSignature as exc:
            log.info("slack request refused", extra={"outcome": str(exc)})
            return Response(401, "", _PLAIN)
        try:
            click = Click.parse(request.body)
            claim = verify_button(click.value, key)
            if claim.decision != click.action_id:
                raise ValueError("action id and value disagree")
        except (ValueError, UnicodeDecodeError, BadLink) as exc:
            log.info("slack request refused", extra={"outcome": f"malformed: {exc}"})
            return Response(400, "", _PLAIN)
        principal = f"{PREFIX}{click.user_id}"
        fields = _fields(claim, principal)
        try:
            if self._replayed(claim, signed, principal, now):
                log.info("slack request refused", extra={**fields, "outcome": "replayed"})
                return Response(401, "", _PLAIN)
            update = self._decide(claim, click, principal, now)
        except StoreUnavailable:
            return Response(503, "", _PLAIN)
        self._post(click.response_url, update, fields)
        return Response(200, "", _PLAIN)

    def _replayed(self, claim: ButtonClaim, signed: str, principal: str, now: float) -> bool:
        """Claim the signature once; True when it was claimed before (a replay)."""
        key = f"{PREFIX}{signed}"
        entry = {"at": now, "by": principal, "nonce": secrets.token_hex(8)}
        if self._store.claim(claim.run_id, claim.step, key, entry):
            return False
        # Refused: claimed before, or the run is unknown or over (decide() says which).
        record = self._store.load(claim.run_id)
        return record is not None and key in record.signals.claims.get(claim.step, {})

    def _decide(
        self, claim: ButtonClaim, click: Click, principal: str, now: float
    ) -> dict[str, Any]:
        """Record the decision; returns the response_url body that says what happened."""
        fields = _fields(claim, principal)
        if now >= claim.expires:
            return _ephemeral("This button has expired: its step's deadline passed.", fields)
        try:
            record = self._store.load(claim.run_id)
            if record is None:
                raise decide.Refused(decide.Refusal.UNKNOWN_RUN, "No such run in this table.")
            if now >= record.state.deadline:
                return _ephemeral("This button has expired: the gate timed out.", fields)
            _, counted = decide.decide(
                self._store, claim.run_id, claim.step, principal, claim.decision, "", now,
                via="slack", source_ip=None,
            )  # fmt: skip
        except decide.Refused as refused:
            reason = str(refused)
            if refused.refusal is decide.Refusal.NOT_APPROVER:  # do not list the approvers
                reason = f"<@{click.user_id}> may not decide step '{_esc(claim.step)}'."
            return _ephemeral(f"Nothing was recorded: {reason}", fields, refused.refusal.value)
        log.info("approval recorded", extra={**fields, "outcome": "recorded"})
        return _decided(click.blocks, counted)

    def _post(self, url: str, body: dict[str, Any], fields: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json"}
        try:
            response = self._http.request(
                "POST", url, headers, json.dumps(body).encode(), RESPONSE_TIMEOUT
            )
        except HttpError:
            log.warning("slack message not updated", extra={**fields, "error": "no response"})
            return
        if not 200 <= response.status < 300:
            error = f"HTTP {response.status}"
            log.warning("slack message not updated", extra={**fields, "error": error})


def build(
    secret_arn: str | None,
    store: RunStore,
    key: Callable[[], SecretStr],
    client: SecretsManagerClient,
) -> Slack | None:
    """The /slack path of an endpoint (None without a signing secret ARN): its HTTP client,
    built once here, and the secret read through `client`, cached like the key."""
    if not secret_arn:
        return None
    from orchestrator.services import Urllib3Client

    def secret() -> SecretStr:
        return SECRETS.get(secret_arn, client)

    return Slack(store, key, secret, Urllib3Client())


def handle(app: App, request: Request) -> Response:
    """A Slack interaction, if the endpoint was built with a Slack signing secret."""
    from orchestrator.approval import pages
    from orchestrator.approval.web import Response

    if app.slack is None:
        return Response(404, pages.refused("Not found", "There is nothing here."))
    return app.slack.handle(request)


def _decided(blocks: list[dict[str, Any]], counted: decide.Tally) -> dict[str, Any]:
    """The message replaced in place: its blocks, one status line from the tally (replacing
    an earlier one), and no buttons once the step is settled."""
    approvals = f"{len(counted.approved_by)}/{counted.required} approvals"
    names = ", ".join(_who(p) for p in counted.approved_by)
    if counted.rejected_by is not None:
        line = f":x: Rejected by {_who(counted.rejected_by)}: the gate fails at its next check."
    elif counted.approved:
        line = f":white_check_mark: Approved ({approvals}): {names}."
    else:
        line = f":hourglass_flowing_sand: {approvals} so far: {names}."
    settled = counted.rejected_by is not None or counted.approved
    kept = [
        b
        for b in blocks
        if b.get("block_id") != STATUS_BLOCK and not (settled and b.get("type") == "actions")
    ]
    status = {
        "type": "context",
        "block_id": STATUS_BLOCK,
        "elements": [{"type": "mrkdwn", "text": line[:3000]}],
    }
    return {"replace_original": True, "text": line, "blocks": [*kept[: MAX_BLOCKS - 1], status]}


def _ephemeral(text: str, fields: dict[str, str], outcome: str = "expired") -> dict[str, Any]:
    log.info("slack decision refused", extra={**fields, "outcome": outcome})
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def _who(principal: str) -> str:
    """A Slack user as a mention, anyone else by name."""
    if principal.startswith(PREFIX) and _USER.fullmatch(principal[len(PREFIX) :]):
        return f"<@{principal[len(PREFIX) :]}>"
    return _esc(principal)


def _esc(value: str) -> str:
    """Slack mrkdwn escaping: &, < and > only."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fields(claim: ButtonClaim, principal: str) -> dict[str, str]:
    return {
        "run_id": claim.run_id,
        "step": claim.step,
        "principal": principal,
        "decision": claim.decision,
    }
