"""Signing in on the approval page over real HTTP: the endpoint behind a function URL
stand-in, runs in DynamoDB Local, secrets in moto, and an OpenID Connect provider on
loopback (oidc-provider-mock for the real flow; a tiny forging issuer for the refusals)."""

from __future__ import annotations

import io
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest
from pydantic import SecretStr

from orchestrator import _log
from orchestrator.approval import links, oidc, web
from orchestrator.local.endpoint import EndpointServer
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.integration.test_approval_oidc_rig import (
    ALICE_ID,
    BOB_ID,
    CLIENT_SECRET,
    MOCK_PROVIDER_WARNINGS,
    Browser,
    Issuer,
    behind_function_url,
    configure_sign_in,
    mock_provider,
    set_memo,
)
from tests.integration.test_approval_rig import (
    CANARY_KEY,
    signing_key,
    stored_run,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import urllib3


pytestmark = MOCK_PROVIDER_WARNINGS


class Endpoint:
    def __init__(self, url: str, store: DynamoRunStore, logs: io.StringIO) -> None:
        self.url, self.store, self.logs = url, store, logs
        self.now = time.time()

    def run(self, approvers: list[str] | None = None, message: str = "", **memo: Any) -> str:
        approval: dict[str, Any] = {"approvers": approvers or [ALICE_ID, BOB_ID]}
        if message:
            approval["message"] = message
        run_id = stored_run(self.store, approval, self.now)
        if memo:
            set_memo(self.store, run_id, **memo)
        return run_id

    def link(
        self, run_id: str, principal: str = ALICE_ID, decision: links.Decision = "approve"
    ) -> str:
        claim = links.LinkClaim(run_id, "signoff", principal, decision, self.now + 3600, "n")
        return f"{self.url}?t={links.sign(claim, SecretStr(CANARY_KEY))}"

    def decisions(self, run_id: str) -> dict[str, Any]:
        record = self.store.load(run_id)
        assert record is not None
        return record.signals.decisions.get("signoff", {})


def login_url(link: str) -> str:
    return link.replace("/?t=", "/login?t=")


def token_of(link: str) -> str:
    return link.split("?t=", 1)[1]


def approve(browser: Browser, link: str, comment: str = "") -> urllib3.BaseHTTPResponse:
    """The form of the link's page, posted by `browser` (with its cookies)."""
    base = link.split("?", maxsplit=1)[0]
    return browser.go(base, {"t": token_of(link), "comment": comment}, follow=False)


def endpoint_fixture(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, issuer: str | None
) -> Iterator[Endpoint]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET_ARN", signing_key(moto_endpoint))
    if issuer is not None:
        configure_sign_in(monkeypatch, issuer, moto_endpoint)
    logs = io.StringIO()
    _log.unconfigure()
    _log.configure("DEBUG", logs)
    web.use(None)
    try:
        with EndpointServer(behind_function_url(web.handler)) as server:
            yield Endpoint(server.url, DynamoRunStore(bind_model(table_name)), logs)
    finally:
        web.use(None)
        _log.unconfigure()


@pytest.fixture
def provider() -> Iterator[str]:
    with mock_provider() as issuer:
        yield issuer


@pytest.fixture
def endpoint(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, provider: str
) -> Iterator[Endpoint]:
    yield from endpoint_fixture(table_name, moto_endpoint, monkeypatch, provider)


@pytest.fixture
def forging() -> Iterator[Issuer]:
    with Issuer() as issuer:
        yield issuer


@pytest.fixture
def forged_endpoint(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, forging: Issuer
) -> Iterator[Endpoint]:
    yield from endpoint_fixture(table_name, moto_endpoint, monkeypatch, forging.url)


@pytest.fixture
def bare_endpoint(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Endpoint]:
    yield from endpoint_fixture(table_name, moto_endpoint, monkeypatch, None)


def text(response: urllib3.BaseHTTPResponse) -> str:
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "form-action 'self'" in response.headers["Content-Security-Policy"]
    return response.data.decode()


def test_sign_in_as_alice_then_approve_counts_for_alice(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    link = endpoint.link(run_id)
    browser = Browser()
    invitation = browser.go(link)
    assert invitation.status == 200
    html = text(invitation)
    assert "Sign in to decide" in html and "<form" not in html
    assert f'href="/login?t={token_of(link)}"' in html
    signed_in = browser.sign_in(login_url(link), "alice")
    assert signed_in.status == 200 and browser.url == link
    html = text(signed_in)
    assert f"Signed in as <strong>{ALICE_ID}</strong>" in html and '<form method="post">' in html
    assert endpoint.decisions(run_id) == {}  # signing in decides nothing
    (session,) = [c for c in browser.set_cookies if "Max-Age=900" in c]
    attributes = {a.strip() for a in session.split(";")[1:]}
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} <= attributes
    assert session.startswith(f"{oidc.COOKIE}=")
    recorded = approve(browser, link, "looks good")
    assert recorded.status == 200, recorded.data
    assert f"Recorded: <strong>approve</strong> by {ALICE_ID}." in text(recorded)
    assert "1/1 approvals so far." in text(recorded)
    decision = endpoint.decisions(run_id)[ALICE_ID]
    assert (decision["decision"], decision["comment"], decision["via"]) == (
        "approve",
        "looks good",
        "oidc",
    )
    assert decision["source_ip"] == "127.0.0.1"
    assert "approval recorded" in endpoint.logs.getvalue()


def test_alice_on_bobs_link_counts_once_as_alice(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    bobs, alices = endpoint.link(run_id, BOB_ID), endpoint.link(run_id, ALICE_ID)
    browser = Browser()
    assert browser.sign_in(login_url(bobs), "alice").status == 200
    assert f"Signed in as <strong>{ALICE_ID}</strong>" in text(browser.go(bobs))
    recorded = approve(browser, bobs)
    assert recorded.status == 200 and f"by {ALICE_ID}." in text(recorded)
    for link in (alices, bobs):
        again = approve(browser, link)
        assert again.status == 409 and "Already decided" in text(again)
        assert "Nothing was recorded." in text(again)
    assert set(endpoint.decisions(run_id)) == {ALICE_ID}  # bob has not decided


def test_without_a_session_nothing_is_decided(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    link = endpoint.link(run_id)
    refused = approve(Browser(), link)
    assert refused.status == 403
    assert "sign in first" in text(refused) and "Sign in to decide" in text(refused)
    stranger = Browser()
    stranger.cookies[urlsplit(link).netloc] = {oidc.COOKIE: "e30.AAAA"}  # a forged session
    assert approve(stranger, link).status == 403
    assert endpoint.decisions(run_id) == {}


def test_an_identity_outside_the_approvers_is_refused(endpoint: Endpoint) -> None:
    run_id = endpoint.run([BOB_ID])
    link = endpoint.link(run_id, BOB_ID)
    browser = Browser()
    page = browser.sign_in(login_url(link), "alice")
    assert page.status == 403 and f"{ALICE_ID} may not decide" in text(page)
    assert BOB_ID not in text(page)  # the approvers are not listed
    assert approve(browser, link).status == 403
    assert endpoint.decisions(run_id) == {}


def _callback(browser: Browser, link: str) -> str:
    """Sign in at the forging issuer up to (not into) the callback: the callback URL."""
    started = browser.go(login_url(link), follow=False)
    assert started.status == 302
    at_issuer = browser.go(started.headers["Location"], follow=False)
    location: str = at_issuer.headers["Location"]
    return location


def _refused(response: urllib3.BaseHTTPResponse, status: int, why: str) -> None:
    assert response.status == status, response.data
    html = text(response)
    assert why in html and "Nothing was recorded." in html
    assert "Set-Cookie" not in response.headers


def test_the_forging_issuer_signs_in_with_pkce_and_a_client_secret(
    forged_endpoint: Endpoint, forging: Issuer
) -> None:
    run_id = forged_endpoint.run()
    link = forged_endpoint.link(run_id)
    browser = Browser()
    assert "Signed in as" in text(browser.go(login_url(link)))
    (asked,) = forging.authorizations
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert asked["scope"] == "openid email" and asked["client_id"] == "orchestrator-approvals"
    assert asked["redirect_uri"] == f"{forged_endpoint.url}callback"
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert approve(browser, link).status == 200
    assert set(forged_endpoint.decisions(run_id)) == {ALICE_ID}
    # Not verified by the issuer: the subject, not the address.
    forging.user = {"sub": "s-42", "email": "carol@example.com", "email_verified": False}
    carol = Browser()
    page = carol.go(login_url(link))
    assert f"oidc:{forging.url}#s-42 may not decide" in text(page)


@pytest.mark.parametrize(
    ("forge", "why"),
    [
        ({"nonce": "not-the-one-we-sent"}, "wrong nonce"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "has expired"),
        ({"aud": "another-application"}, "wrong audience"),
        ({"iss": "https://issuer.example.com"}, "issuer mismatch"),
        ({"wrong_key": True}, "signature does not verify"),
    ],
)
def test_id_tokens_that_do_not_hold_are_refused(
    forged_endpoint: Endpoint, forging: Issuer, forge: dict[str, Any], why: str
) -> None:
    run_id = forged_endpoint.run()
    link = forged_endpoint.link(run_id)
    forging.wrong_key = bool(forge.pop("wrong_key", False))
    forging.forge = forge
    browser = Browser()
    callback = _callback(browser, link)
    _refused(browser.go(callback), 403, why)
    assert approve(browser, link).status == 403  # no session came of it
    assert forged_endpoint.decisions(run_id) == {}


def test_tampered_state_and_missing_or_tampered_cookies_are_refused(
    forged_endpoint: Endpoint, forging: Issuer
) -> None:
    run_id = forged_endpoint.run()
    link = forged_endpoint.link(run_id)
    browser = Browser()
    callback = _callback(browser, link)
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    tampered = {**query, "state": query["state"][:-2] + "xy"}
    base = callback.split("?", maxsplit=1)[0]
    _refused(browser.go(f"{base}?{urlencode(tampered)}"), 400, "state mismatch")
    _refused(Browser().go(callback), 400, "cookie is missing")  # another browser
    jar = browser.cookies[urlsplit(link).netloc]
    payload, mac = jar[oidc.COOKIE].split(".")
    jar[oidc.COOKIE] = f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{mac}"
    _refused(browser.go(callback), 400, "changed or is not ours")
    assert forged_endpoint.decisions(run_id) == {}
    assert forging.token_requests == []  # no code was ever exchanged


def test_a_step_with_bearer_links_lets_the_link_decide(forged_endpoint: Endpoint) -> None:
    run_id = forged_endpoint.run(links="bearer")
    link = forged_endpoint.link(run_id, BOB_ID)
    assert "Deciding as" in text(Browser().go(link))
    recorded = approve(Browser(), link)
    assert recorded.status == 200 and f"by {BOB_ID}." in text(recorded)
    assert forged_endpoint.decisions(run_id)[BOB_ID]["via"] == "link"


def test_without_an_issuer_links_point_to_the_cli(bare_endpoint: Endpoint) -> None:
    run_id = bare_endpoint.run()
    link = bare_endpoint.link(run_id)
    page = Browser().go(link)
    assert page.status == 200 and "Sign-in is not configured" in text(page)
    assert f"orchestrator approve {run_id} --step signoff" in text(page)
    assert "<form" not in text(page)
    refused = approve(Browser(), link)
    assert refused.status == 403 and "Sign-in is not configured" in text(refused)
    assert Browser().go(login_url(link)).status == 403
    assert Browser().go(f"{bare_endpoint.url}callback?code=c&state=s").status == 404
    assert bare_endpoint.decisions(run_id) == {}


def test_codes_cookies_and_the_client_secret_never_leave(
    forged_endpoint: Endpoint, forging: Issuer
) -> None:
    run_id = forged_endpoint.run()
    link = forged_endpoint.link(run_id)
    browser = Browser()
    pages = [browser.go(login_url(link)).data.decode(), approve(browser, link).data.decode()]
    (exchange,) = forging.token_requests
    cookies = [c.split(";")[0].partition("=")[2] for c in browser.set_cookies]
    item = boto3.client("dynamodb").scan(TableName=forged_endpoint.store._model.Meta.table_name)
    logs = forged_endpoint.logs.getvalue()
    assert "approval signed in" in logs and "approval recorded" in logs
    for where, haystack in (
        ("pages", "".join(pages)),
        ("logs", logs),
        ("items", json.dumps(item["Items"])),
    ):
        for secret in (CLIENT_SECRET, exchange["code"], exchange["code_verifier"], *cookies):
            assert secret and secret not in haystack, where
