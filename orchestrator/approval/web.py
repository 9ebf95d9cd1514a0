"""The approval endpoint: `orchestrator.approval.web.handler`, behind a Lambda function URL.

    GET  /?t=TOKEN              the step a link invites to decide; changes nothing (mail
                                scanners and link previewers fetch links: a GET never decides)
    GET  /login?t=TOKEN         sign in at the OpenID Connect issuer (oidc.py)
    GET  /callback?code&state   back from the issuer: a session cookie, then /?t=TOKEN
    POST /   t=TOKEN&comment=…  records the decision of the signed-in identity, at most once

A link is an invitation, not a credential: the decision counts for the identity proven at
decision time (the session), whoever the link was sent to. Only a step whose memo says
`"links": "bearer"` lets the link's principal decide without signing in (via "link").
Without an issuer configured, signed-in steps are decided with the CLI only.

Every refusal is an HTML page saying why, and changes nothing: a token that is malformed or
not signed with our key (tampered, or minted by another deployment), expired (the step's
deadline or the run's has passed), for a run that is unknown or over or a step that is not
waiting, no session, a sign-in that fails (oidc.Failure), a decider who is not an approver
of the step, or who already decided it (the store takes one decision per principal per
step). Tokens, codes, cookies and keys are never logged; log lines name the run, step,
principal and outcome.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from orchestrator.approval import decide, oidc, pages
from orchestrator.approval.links import TOKEN_PARAM, BadLink, KeyUnavailable, verify
from orchestrator.exceptions import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pydantic import SecretStr

    from orchestrator.approval.links import LinkClaim
    from orchestrator.approval.slack import Slack
    from orchestrator.model import RunRecord, StepState
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
    decide.Refusal.ALREADY_DECIDED: "Already decided",
    decide.Refusal.INVALID: "Invalid request",
    decide.Refusal.SELF_APPROVAL: "You started this release",
    decide.Refusal.SIGN_IN_REQUIRED: "Sign in to decide",
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
    """The endpoint, built once per process: the store, the key, the clock, the issuer."""

    def __init__(
        self,
        store: RunStore,
        key: Callable[[], SecretStr],
        now: Callable[[], float] = time.time,
        signin: oidc.Client | None = None,
        slack: Slack | None = None,
    ) -> None:
        self._store, self._key, self._now, self._signin = store, key, now, signin
        self.slack = slack
        """POST /slack (slack.py); None without a Slack signing secret: 404."""

    def handle(self, request: Request) -> Response:
        if request.path == "/slack":
            from orchestrator.approval import slack

            return slack.handle(self, request)
        if request.path not in ("", "/", "/login", "/callback"):
            return Response(404, pages.refused("Not found", "There is nothing here."))
        allowed = ("GET", "POST") if request.path in ("", "/") else ("GET",)
        if request.method not in allowed:
            page = pages.refused("Method not allowed", "Use the links in the approval message.")
            return Response(405, page, {"Allow": ", ".join(allowed)})
        try:
            if request.path == "/callback":
                return self._callback(request)
            return self._link(request)
        except KeyUnavailable as exc:
            log.error("approval signing key unavailable", extra={"error": str(exc)})
        except oidc.ProviderUnavailable as exc:
            log.error("sign-in provider unavailable", extra={"error": str(exc)})
        return Response(503, pages.refused("Unavailable", "Try again in a minute."))

    def _link(self, request: Request) -> Response:
        """GET and POST /, and GET /login: everything that carries a link token."""
        source = request.form if request.method == "POST" else request.query
        token = source.get(TOKEN_PARAM, "")
        if not token:
            reason = "Open this page from a link in an approval message."
            return Response(400, pages.refused("No link", reason))
        try:
            claim = verify(token, self._key())
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
            step = decide.waiting_step(record, claim.step)
            if step.memo.get("links", "signed-in") == "bearer":
                if request.path == "/login":
                    return Response(404, pages.refused("Not found", "There is nothing here."))
                return self._bearer(request, claim, token, record, now)
            return self._signed_in(request, claim, token, record, step, now)
        except decide.Refused as refused:
            reason = str(refused)
            return self._out(refused.refusal.status, _TITLES[refused.refusal], reason, claim)
        except StoreUnavailable:
            return self._out(503, "Unavailable", "Try again in a minute.", claim)

    def _bearer(
        self, request: Request, claim: LinkClaim, token: str, record: RunRecord, now: float
    ) -> Response:
        """The link is the credential: its principal decides (steps with "links": "bearer")."""
        step = _checked(record, claim.step, claim.principal)
        if request.method == "GET":
            log.info("approval link shown", extra=_fields_of(claim, "confirm"))
            return Response(200, pages.confirm(claim, _message(step), token))
        return self._decide(request, claim, claim.principal, "link", now)

    def _signed_in(
        self,
        request: Request,
        claim: LinkClaim,
        token: str,
        record: RunRecord,
        step: StepState,
        now: float,
    ) -> Response:
        """The link invites; the session's identity decides."""
        if self._signin is None:
            status = 200 if request.method == "GET" and request.path != "/login" else 403
            log.info("approval link shown", extra=_fields_of(claim, "no-sign-in"))
            return Response(status, pages.not_configured(claim, _message(step)))
        if request.path == "/login":
            started = self._signin.start(token, _callback_url(request), self._key(), now)
            log.info("approval sign-in started", extra=_fields_of(claim, "sign-in"))
            headers = {"Location": started.location, "Set-Cookie": started.set_cookie}
            return Response(302, "", headers)
        identity = self._signin.identity(_cookie(request), self._key(), now)
        if identity is None:
            status = 200 if request.method == "GET" else 403
            log.info("approval link shown", extra=_fields_of(claim, "sign-in-needed"))
            return Response(status, pages.sign_in(claim, _message(step), token, request.method))
        _checked(record, claim.step, identity)
        if request.method == "GET":
            log.info("approval link shown", extra=_fields_of(claim, "confirm", identity))
            return Response(200, pages.confirm(claim, _message(step), token, identity))
        return self._decide(request, claim, identity, "oidc", now)

    def _decide(
        self, request: Request, claim: LinkClaim, principal: str, via: str, now: float
    ) -> Response:
        comment = request.form.get("comment", "").strip()
        if claim.decision == "reject" and not comment:
            reason = "Go back and say why: a rejection needs a reason."
            return self._out(400, "A reason is needed", reason, claim, "", principal)
        try:
            _, counted = decide.decide(
                self._store, claim.run_id, claim.step, principal, claim.decision, comment, now,
                via=via, source_ip=request.source_ip,
            )  # fmt: skip
        except decide.Refused as refused:
            raise _without_approvers(refused, principal, claim.step) from None
        summary = (
            "The gate fails at its next check."
            if claim.decision == "reject"
            else f"{len(counted.approved_by)}/{counted.required} approvals so far."
        )
        log.info("approval recorded", extra=_fields_of(claim, "recorded", principal))
        return Response(200, pages.recorded(claim, summary, principal))

    def _callback(self, request: Request) -> Response:
        """Back from the issuer: the session cookie, and back to the link's page."""
        if self._signin is None:
            return Response(404, pages.refused("Not found", "There is nothing here."))
        try:
            done = self._signin.finish(
                request.query, _cookie(request), _callback_url(request), self._key(), self._now()
            )
        except oidc.SignInRefused as refused:
            failure = refused.failure
            log.info("approval sign-in refused", extra={"outcome": failure.name.lower()})
            return Response(failure.status, pages.refused(failure.title, failure.reason))
        log.info("approval signed in", extra={"principal": done.identity, "outcome": "signed-in"})
        location = f"/?{urlencode({TOKEN_PARAM: done.link_token})}"
        return Response(302, "", {"Location": location, "Set-Cookie": done.set_cookie})

    def _out(
        self,
        status: int,
        title: str,
        reason: str,
        claim: LinkClaim | None,
        outcome: str = "",
        principal: str | None = None,
    ) -> Response:
        extra = (
            _fields_of(claim, outcome or title, principal)
            if claim is not None
            else {"outcome": outcome}
        )
        log.info("approval link refused", extra=extra)
        return Response(status, pages.refused(title, reason))


def _checked(record: RunRecord, step: str, principal: str) -> StepState:
    try:
        return decide.check(record, step, principal)
    except decide.Refused as refused:
        raise _without_approvers(refused, principal, step) from None


def _without_approvers(refused: decide.Refused, principal: str, step: str) -> decide.Refused:
    """The refusal, for a page: a NOT_APPROVER one does not list who the approvers are."""
    if refused.refusal is decide.Refusal.NOT_APPROVER:
        return decide.Refused(refused.refusal, f"{principal} may not decide step '{step}'.")
    return refused


def _message(step: StepState) -> str:
    return str(step.memo.get("message", ""))


def _cookie(request: Request) -> str | None:
    return oidc.cookie_of(request.headers.get("cookie", ""))


def _callback_url(request: Request) -> str:
    """Where the issuer sends the browser back: this function URL's /callback (its host, as
    the function URL received it; https unless the front says otherwise, as a test server)."""
    scheme = request.headers.get("x-forwarded-proto", "https")
    return f"{scheme}://{request.headers.get('host', '')}/callback"


def _fields(text: str) -> dict[str, str]:
    """First value of each field of a query string or form body."""
    parsed = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    return {key: values[0] for key, values in parsed.items() if values}


def _fields_of(claim: LinkClaim, outcome: str, principal: str | None = None) -> dict[str, str]:
    fields = {
        "run_id": claim.run_id,
        "step": claim.step,
        "principal": claim.principal,
        "decision": claim.decision,
        "outcome": outcome,
    }
    if principal is not None and principal != claim.principal:
        fields["decider"] = principal
    return fields


_app: App | None = None


def build(settings: Settings | None = None) -> App:
    """The endpoint from `settings` (default: read from the environment, once, here): the
    runs table, the signing key's secret ARN, the OpenID Connect issuer and Slack, if any."""
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

    from orchestrator.approval import slack

    slack_app = slack.build(settings.slack_signing_secret_arn, store, key, client)
    return App(store, key, signin=_signin(settings, client), slack=slack_app)


def _signin(settings: Settings, client: SecretsManagerClient) -> oidc.Client | None:
    """The issuer's client, when one is configured (its secret read by ARN, cached)."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_client_id:
        raise ValueError("ORCHESTRATOR_OIDC_CLIENT_ID is needed with ORCHESTRATOR_OIDC_ISSUER")
    arn = settings.oidc_client_secret_arn

    def secret() -> SecretStr | None:
        return oidc.SECRETS.get(arn, lambda: oidc.read_secret(arn, client)) if arn else None

    return oidc.Client(settings.oidc_issuer, settings.oidc_client_id, secret)


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
