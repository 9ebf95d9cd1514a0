"""What the sign-in tests share (this module holds no tests): OpenID Connect providers on
loopback (oidc-provider-mock, a real one; `Issuer`, a tiny one that signs whatever a test
asks, for the refusals), a browser-like HTTP client that keeps cookies and follows
redirects, and the endpoint's environment for an issuer."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import boto3
import jwt
import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.http_stub import Loopback, QuietHandler
from tests.reliability.canaries import SCANNER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from orchestrator.store.dynamodb import DynamoRunStore

CLIENT_ID = "orchestrator-approvals"
CLIENT_SECRET = "CANARY-oidc-client-secret-" + "9c4e" * 8
SCANNER.add(CLIENT_SECRET, "the OIDC client secret (tests)")
ALICE_EMAIL, BOB_EMAIL = "alice@example.com", "bob@example.com"
ALICE_ID, BOB_ID = f"email:{ALICE_EMAIL}", f"email:{BOB_EMAIL}"
SCANNER.add(CLIENT_SECRET, "the OIDC client secret of the sign-in tests")

MOCK_PROVIDER_WARNINGS = pytest.mark.filterwarnings(
    # oidc-provider-mock 0.3 on the installed authlib: deprecations raised in its own server
    # thread (the warning filters are process-wide, and ours turn warnings into errors).
    "ignore:get_jwt_config:DeprecationWarning",
)
"""Mark the tests that run `mock_provider` with this."""


@contextlib.contextmanager
def mock_provider() -> Iterator[str]:
    """oidc-provider-mock on loopback, with alice and bob (verified e-mails); yields its
    issuer URL. People choose who they are on its authorize page (`Browser.sign_in`)."""
    with warnings.catch_warnings():  # its imports announce authlib's own deprecations
        import authlib.deprecate  # noqa: F401 - adds an "always" filter

        warnings.simplefilter("ignore")
        from oidc_provider_mock import (
            User,
            run_server_in_thread,
        )

    users = [
        User(sub=sub, claims={"email": email, "email_verified": True})
        for sub, email in (("alice", ALICE_EMAIL), ("bob", BOB_EMAIL))
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


class Issuer(Loopback):
    """A tiny OpenID Connect provider: discovery, JWKS, an authorize endpoint that signs in
    `user` at once, and a token endpoint that checks PKCE and signs an ID token with the
    claims of `forge` laid over the right ones (and with `wrong_key`, another key)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.forge: dict[str, Any] = {}
        self.wrong_key = False
        self.user: dict[str, Any] = {"sub": "a1", "email": ALICE_EMAIL, "email_verified": True}
        self.codes: dict[str, dict[str, str]] = {}
        self.authorizations: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str | None]] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self.reply(200, json.dumps(outer.discovery()).encode())
                elif url.path == "/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(outer.key.public_key()))
                    self.reply(200, json.dumps({"keys": [{**jwk, "kid": "k1"}]}).encode())
                elif url.path == "/authorize":
                    outer.authorizations.append(query)
                    code = uuid.uuid4().hex
                    outer.codes[code] = query
                    back = urlencode({"code": code, "state": query.get("state", "")})
                    self.reply(302, b"", {"Location": f"{query['redirect_uri']}?{back}"})
                else:
                    self.reply(404, b"{}")

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
                outer.token_requests.append({**form, "auth": self.headers.get("Authorization")})
                status, body = outer.token(form, self.headers.get("Authorization", ""))
                self.reply(status, json.dumps(body).encode())

        super().__init__(Handler)

    def discovery(self) -> dict[str, str]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
        }

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None:
            return 400, {"error": "invalid_grant"}
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {basic}":
            return 401, {"error": "invalid_client"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if asked.get("code_challenge_method") != "S256" or challenge != asked["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": asked["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": asked.get("nonce"),
            **self.user,
            **self.forge,
        }
        key = self.other_key if self.wrong_key else self.key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        return 200, {"access_token": "at", "token_type": "Bearer", "id_token": token}


def secret_in_moto(moto_endpoint: str, value: str = CLIENT_SECRET) -> str:
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    name = f"oidc-client-{uuid.uuid4().hex[:8]}"
    arn: str = client.create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def configure_sign_in(monkeypatch: pytest.MonkeyPatch, issuer: str, moto_endpoint: str) -> None:
    """The endpoint's environment for `issuer` (read when the endpoint is next built)."""
    monkeypatch.setenv("ORCHESTRATOR_OIDC_ISSUER", issuer)
    monkeypatch.setenv("ORCHESTRATOR_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ORCHESTRATOR_OIDC_CLIENT_SECRET_ARN", secret_in_moto(moto_endpoint))


def set_memo(store: DynamoRunStore, run_id: str, **memo: Any) -> None:
    """Add to the approval step's memo, as the step would have written it when it started."""
    record = store.load(run_id)
    assert record is not None
    step = record.state.steps[0]
    steps = [step.model_copy(update={"memo": {**step.memo, **memo}}), *record.state.steps[1:]]
    state = record.state.model_copy(update={"steps": steps})
    changed = record.model_copy(update={"state": state, "version": record.version + 1})
    store.save(changed, record.version)


def behind_function_url(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`handler` as a function URL calls it: with X-Forwarded-Proto (http: this stand-in
    serves plain HTTP on loopback; a function URL says https)."""

    def call(event: dict[str, Any], context: Any) -> Any:
        headers = {**event.get("headers", {}), "x-forwarded-proto": "http"}
        return handler({**event, "headers": headers}, context)

    return call


class Browser:
    """An HTTP client that keeps cookies per host (Secure ones too: loopback is trusted, as
    browsers trust localhost) and follows redirects like a browser."""

    def __init__(self) -> None:
        self.http = urllib3.PoolManager(retries=False)
        self.cookies: dict[str, dict[str, str]] = {}
        self.set_cookies: list[str] = []
        self.url = ""

    def go(
        self, url: str, form: dict[str, str] | None = None, follow: bool = True
    ) -> urllib3.BaseHTTPResponse:
        method = "POST" if form is not None else "GET"
        body = urlencode(form) if form is not None else None
        for _ in range(10):
            host = urlsplit(url).netloc
            headers = {}
            if self.cookies.get(host):
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies[host].items())
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = self.http.request(method, url, body=body, headers=headers, redirect=False)
            self.url = url
            for header in response.headers.getlist("Set-Cookie"):
                self.set_cookies.append(header)
                SCANNER.add(header.split(";")[0].partition("=")[2], "a sign-in test cookie")
                name, _, rest = header.partition("=")
                value, *attributes = rest.split(";")
                jar = self.cookies.setdefault(host, {})
                if any(a.strip().lower() == "max-age=0" for a in attributes):
                    jar.pop(name, None)
                else:
                    jar[name] = value
            if not follow or response.status not in (301, 302, 303, 307):
                return response
            url = urljoin(url, response.headers["Location"])
            method, body = "GET", None
        raise AssertionError("too many redirects")

    def sign_in(self, login_url: str, sub: str) -> urllib3.BaseHTTPResponse:
        """Open /login, choose `sub` on oidc-provider-mock's page, come back signed in."""
        page = self.go(login_url)
        assert page.status == 200 and "Authorize" in page.data.decode(), page.data[:300]
        return self.go(self.url, {"sub": sub})
