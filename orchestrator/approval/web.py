"""The approval endpoint: `orchestrator.approval.web.handler`, behind a Lambda function URL.

    GET  /?t=TOKEN              a confirmation page; changes nothing (mail scanners and link
                                previewers fetch links: a GET must never decide)
    POST /   t=TOKEN&comment=…  records the decision, at most once

Every refusal is an HTML page saying why, and changes nothing: a token that is malformed or
not signed with our key (tampered, or minted by another deployment), expired (the step's
deadline or the run's has passed), for a run that is unknown or over or a step that is not
waiting, for a principal who is not an approver of the step, or already used (that
principal already decided the step: the store takes one decision per principal per step).
Tokens and the key are never logged; log lines name the run, step, principal and outcome.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from orchestrator.approval import decide, pages
from orchestrator.approval.links import TOKEN_PARAM, BadLink, KeyUnavailable, verify
from orchestrator.exceptions import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import SecretStr

    from orchestrator.approval.links import LinkClaim
    from orchestrator.ports import RunStore
    from orchestrator.settings import Settings

log = logging.getLogger("orchestrator")

MAX_BODY_BYTES = 16_384
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # The token is in the URL: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_TITLES = {
    decide.Refusal.UNKNOWN_RUN: "Unknown run",
    decide.Refusal.NO_SUCH_STEP: "Unknown step",
    decide.Refusal.NOT_APPROVER: "Not an approver",
    decide.Refusal.RUN_OVER: "This run is over",
    decide.Refusal.NOT_WAITING: "This step is not waiting for a decision",
    decide.Refusal.ALREADY_DECIDED: "This link was already used",
    decide.Refusal.INVALID: "Invalid request",
}


@dataclass(frozen=True)
class Request:
    """The parts of a function URL request (payload format 2.0) the endpoint reads."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case names."""
    body: bytes = b""
    """The raw body (at most MAX_BODY_BYTES; what a signature is computed over)."""
    source_ip: str | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET"))
        query = _fields(str(event.get("rawQueryString") or ""))
        form: dict[str, str] = {}
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw = str(event.get("body") or "")
        data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        if len(data) > MAX_BODY_BYTES:
            data = b""
        if method == "POST" and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = _fields(data.decode("utf-8", errors="replace"))
        source = event.get("requestContext", {}).get("http", {}).get("sourceIp")
        return cls(
            method,
            str(event.get("rawPath") or "/"),
            query,
            form,
            headers,
            data,
            str(source) if source else None,
        )


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {**HEADERS, **self.headers},
            "body": self.body,
            "isBase64Encoded": False,
        }


class App:
    """The endpoint, built once per process: the store, the key, the clock."""

    def __init__(
        self, store: RunStore, key: Callable[[], SecretStr], now: Callable[[], float] = time.time
    ) -> None:
        self._store, self._key, self._now = store, key, now

    def handle(self, request: Request) -> Response:
        if request.path == "/slack":
            from orchestrator.approval import slack

            return slack.handle(self, request)
        if request.path not in ("", "/"):
            return Response(404, pages.refused("Not found", "There is nothing here."))
        if request.method not in ("GET", "POST"):
            page = pages.refused("Method not allowed", "Use the links in the approval message.")
            return Response(405, page, {"Allow": "GET, POST"})
        source = request.query if request.method == "GET" else request.form
        token = source.get(TOKEN_PARAM, "")
        if not token:
            reason = "Open this page from a link in an approval message."
            return Response(400, pages.refused("No link", reason))
        try:
            claim = verify(token, self._key())
        except KeyUnavailable as exc:
            log.error("approval signing key unavailable", extra={"error": str(exc)})
            return Response(503, pages.refused("Unavailable", "Try again in a minute."))
        except BadLink:
            reason = "It was changed, or it was not signed by this orchestrator."
            return self._out(400, "This link is not valid", reason, None, "bad-link")
        now = self._now()
        if now >= claim.expires:
            return self._out(410, "This link has expired", "Its step's deadline passed.", claim)
        try:
            record = self._store.load(claim.run_id)
            if record is None:
                raise decide.Refused(decide.Refusal.UNKNOWN_RUN, "No such run in this table.")
            if now >= record.state.deadline:
                return self._out(410, "This link has expired", "The gate timed out.", claim)
            step = decide.check(record, claim.step, claim.principal)
            if request.method == "GET":
                message = str(step.memo.get("message", ""))
                log.info("approval link shown", extra=_fields_of(claim, "confirm"))
                return Response(200, pages.confirm(claim, message, token))
            comment = request.form.get("comment", "").strip()
            if claim.decision == "reject" and not comment:
                reason = "Go back and say why: a rejection needs a reason."
                return self._out(400, "A reason is needed", reason, claim)
            _, counted = decide.decide(
                self._store, claim.run_id, claim.step, claim.principal,
                claim.decision, comment, now, via="link",
            )  # fmt: skip
        except decide.Refused as refused:
            reason = str(refused)
            if refused.refusal is decide.Refusal.NOT_APPROVER:  # do not list the approvers
                reason = f"{claim.principal} may not decide step '{claim.step}'."
            return self._out(refused.refusal.status, _TITLES[refused.refusal], reason, claim)
        except StoreUnavailable:
            return self._out(503, "Unavailable", "Try again in a minute.", claim)
        summary = (
            "The gate fails at its next check."
            if claim.decision == "reject"
            else f"{len(counted.approved_by)}/{counted.required} approvals so far."
        )
        log.info("approval recorded", extra=_fields_of(claim, "recorded"))
        return Response(200, pages.recorded(claim, summary))

    def _out(
        self, status: int, title: str, reason: str, claim: LinkClaim | None, outcome: str = ""
    ) -> Response:
        extra = _fields_of(claim, outcome or title) if claim is not None else {"outcome": outcome}
        log.info("approval link refused", extra=extra)
        return Response(status, pages.refused(title, reason))


def _fields(text: str) -> dict[str, str]:
    """First value of each field of a query string or form body."""
    parsed = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    return {key: values[0] for key, values in parsed.items() if values}


def _fields_of(claim: LinkClaim, outcome: str) -> dict[str, str]:
    return {
        "run_id": claim.run_id,
        "step": claim.step,
        "principal": claim.principal,
        "decision": claim.decision,
        "outcome": outcome,
    }


_app: App | None = None


def build(settings: Settings | None = None) -> App:
    """The endpoint from `settings` (default: read from the environment, once, here): the
    runs table and the signing key's secret ARN."""
    import boto3

    from orchestrator import _log, aws
    from orchestrator.approval.links import KEYS
    from orchestrator.settings import Settings
    from orchestrator.store.dynamodb import DynamoRunStore, bind_model

    settings = settings or Settings()  # fields come from the environment
    _log.configure(settings.log_level)
    store = DynamoRunStore(bind_model(settings.table_name, settings.region))
    config = aws.client_config(attempts=3, connect_timeout=3, read_timeout=60)
    client = boto3.client("secretsmanager", region_name=settings.region, config=config)
    arn = settings.approval_secret_arn

    def key() -> SecretStr:
        if not arn:
            raise KeyUnavailable("ORCHESTRATOR_APPROVAL_SECRET_ARN is not set")
        return KEYS.get(arn, client)

    return App(store, key)


def use(app: App | None) -> None:
    """Replace the warm app: None rebuilds it from the environment at the next request."""
    global _app  # noqa: PLW0603 - the one per-process cache of a Lambda function
    _app = app


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for the function URL."""
    global _app  # noqa: PLW0603
    if _app is None:
        _app = build()
    try:
        request = Request.from_event(event)
    except (ValueError, TypeError, AttributeError):
        return Response(400, pages.refused("Invalid request", "Malformed request.")).to_event()
    return _app.handle(request).to_event()
