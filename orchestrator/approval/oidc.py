"""OpenID Connect sign-in on the approval page: who decides is who signs in, at decision time.

A link is an invitation; the decider is the identity the issuer vouches for in an ID token:

    GET /?t=LINK          the step, and "Sign in to decide" (a link to /login?t=LINK)
    GET /login?t=LINK     302 to the issuer's authorization endpoint: code flow, PKCE (S256),
                          state and nonce; cookie = sealed {login: state, nonce, verifier, t}
    GET /callback?code&state
                          state == the cookie's; the code (and the PKCE verifier) exchanged at
                          the token endpoint; the ID token verified (signature with the
                          issuer's JWKS, iss, aud = our client id, exp, nonce == the cookie's);
                          cookie = sealed {session: identity}; 302 to /?t=LINK
    POST /  t=LINK        decides as the cookie's identity (web.py)

The identity is `email:<email>` when the issuer says `email_verified`, else
`oidc:<iss>#<sub>`. One cookie, `COOKIE`, holds either the login in progress or the session:
sealed with the approval signing key (HMAC-SHA256, the name of its kind in the MAC so a
login cookie is never a session), `HttpOnly; Secure; SameSite=Lax; Path=/`, and an expiry
inside the sealed payload (so an old cookie replayed after its Max-Age is refused too).

Codes, tokens, cookies and the client secret are never logged or put in a page.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from orchestrator.caching import TtlCache
from orchestrator.exceptions import TerminalError, TransientError
from orchestrator.text import b64url, unb64url

if TYPE_CHECKING:
    from collections.abc import Callable

    import urllib3
    from pydantic import SecretStr

COOKIE = "__Host-approval"
"""`__Host-`: the browser keeps it only if Secure, Path=/ and without Domain."""
LOGIN_SECONDS = 600
SESSION_SECONDS = 900
METADATA_CACHE_SECONDS = 3600.0
SECRET_CACHE_SECONDS = 300.0
SCOPE = "openid email"
MAX_COOKIE_CHARS = 4096
LEEWAY_SECONDS = 30


class Failure(enum.Enum):
    """Why a sign-in is refused: (HTTP status, page title, what to tell the person)."""

    NO_COOKIE = (
        400,
        "Sign-in expired",
        "The sign-in cookie is missing: it expired, or this "
        "browser did not keep it. Open the link again and sign in.",
    )
    BAD_COOKIE = (400, "Sign-in refused", "The sign-in cookie was changed or is not ours.")
    STATE = (
        400,
        "Sign-in refused",
        "The sign-in answer does not belong to this browser's "
        "sign-in (state mismatch). Open the link again and sign in.",
    )
    DENIED = (403, "Sign-in cancelled", "The identity provider did not sign you in.")
    EXCHANGE = (502, "Sign-in failed", "The identity provider refused to exchange the code.")
    SIGNATURE = (403, "Sign-in refused", "The ID token's signature does not verify.")
    EXPIRED = (403, "Sign-in refused", "The ID token has expired.")
    AUDIENCE = (
        403,
        "Sign-in refused",
        "The ID token was issued for another application (wrong audience).",
    )
    ISSUER = (403, "Sign-in refused", "The ID token comes from another issuer (issuer mismatch).")
    NONCE = (403, "Sign-in refused", "The ID token was not issued for this sign-in (wrong nonce).")
    NO_IDENTITY = (403, "Sign-in refused", "The ID token names nobody (no subject).")

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def title(self) -> str:
        return str(self.value[1])

    @property
    def reason(self) -> str:
        return str(self.value[2])


class SignInRefused(TerminalError):
    """A sign-in step that fails; `failure` says why."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.name)
        self.failure = failure


class ProviderUnavailable(TransientError):
    """The issuer's discovery document or keys, or the client secret, could not be read."""


# region cookies


def seal(kind: str, fields: dict[str, Any], key: SecretStr, expires: float) -> str:
    """A cookie value: `<payload>.<mac>`, the MAC over the kind and the payload."""
    payload = b64url(json.dumps({**fields, "exp": expires}, separators=(",", ":")).encode())
    return f"{payload}.{b64url(_mac(key, kind, payload))}"


def unseal(kind: str, value: str, key: SecretStr, now: float) -> dict[str, Any]:
    """The fields of a sealed `kind` cookie; raises SignInRefused(BAD_COOKIE) or NO_COOKIE
    (expired)."""
    parts = value.split(".") if 0 < len(value) <= MAX_COOKIE_CHARS else []
    try:
        if len(parts) != 2 or not hmac.compare_digest(
            unb64url(parts[1]), _mac(key, kind, parts[0])
        ):
            raise SignInRefused(Failure.BAD_COOKIE)
        fields: Any = json.loads(unb64url(parts[0]))
        expires = float(fields["exp"])
    except (ValueError, KeyError, TypeError):
        raise SignInRefused(Failure.BAD_COOKIE) from None
    if not isinstance(fields, dict):
        raise SignInRefused(Failure.BAD_COOKIE)
    if now >= expires:
        raise SignInRefused(Failure.NO_COOKIE)
    return fields


def set_cookie(value: str, max_age: int) -> str:
    """The Set-Cookie header for `COOKIE`."""
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"


def cookie_of(header: str) -> str | None:
    """`COOKIE`'s value in a Cookie request header."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _mac(key: SecretStr, kind: str, payload: str) -> bytes:
    message = f"cookie:{kind}:{payload}".encode()
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).digest()


# endregion


@dataclass(frozen=True)
class Metadata:
    """What discovery tells us (OpenID Connect Discovery 1.0)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class Client:
    """The approval page as a client of one issuer. Built once per process (web.build):
    discovery and the issuer's keys are fetched on first use and cached."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        secret: Callable[[], SecretStr | None],
        http: urllib3.PoolManager | None = None,
    ) -> None:
        import urllib3

        self.issuer, self.client_id, self._secret = issuer.rstrip("/"), client_id, secret
        self._http = http or urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3, read=5), retries=urllib3.Retry(2, redirect=0)
        )
        self._metadata: TtlCache[str, Metadata] = TtlCache(METADATA_CACHE_SECONDS)
        self._jwks: TtlCache[str, Any] = TtlCache(METADATA_CACHE_SECONDS)

    @property
    def origin(self) -> str:
        """The issuer's scheme and host (where sign-in pages are)."""
        scheme, _, rest = self.issuer.partition("://")
        return f"{scheme}://{rest.split('/')[0]}"

    def metadata(self) -> Metadata:
        return self._metadata.get(self.issuer, self._discover)

    def _discover(self) -> Metadata:
        document = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        try:
            found = Metadata(
                issuer=str(document["issuer"]).rstrip("/"),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
            )
        except (KeyError, TypeError):
            raise ProviderUnavailable(f"{self.issuer}: incomplete discovery document") from None
        if found.issuer != self.issuer:
            raise ProviderUnavailable(f"{self.issuer}: discovery names issuer {found.issuer}")
        return found

    def _get_json(self, url: str) -> Any:
        import urllib3

        try:
            response = self._http.request("GET", url)
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from None
        if response.status != 200:
            raise ProviderUnavailable(f"{url}: HTTP {response.status}")
        try:
            return json.loads(response.data)
        except ValueError:
            raise ProviderUnavailable(f"{url}: not JSON") from None

    # region the flow

    def start(self, link_token: str, redirect_uri: str, key: SecretStr, now: float) -> Started:
        """Where to send the browser to sign in, and the cookie that remembers this sign-in."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": SCOPE,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.metadata().authorization_endpoint
        fields = {"state": state, "nonce": nonce, "verifier": verifier, "t": link_token}
        cookie = seal("login", fields, key, now + LOGIN_SECONDS)
        separator = "&" if "?" in endpoint else "?"
        return Started(f"{endpoint}{separator}{query}", set_cookie(cookie, LOGIN_SECONDS))

    def finish(
        self,
        query: dict[str, str],
        cookie: str | None,
        redirect_uri: str,
        key: SecretStr,
        now: float,
    ) -> Finished:
        """The callback: check state, exchange the code, verify the ID token; the session."""
        if not cookie:
            raise SignInRefused(Failure.NO_COOKIE)
        login = unseal("login", cookie, key, now)
        state = query.get("state", "")
        if not state or not _same(state, login.get("state")):
            raise SignInRefused(Failure.STATE)
        if "error" in query or not query.get("code"):
            raise SignInRefused(Failure.DENIED)
        id_token = self._exchange(query["code"], redirect_uri, str(login.get("verifier", "")))
        identity = self.verify(id_token, str(login.get("nonce", "")), now)
        session = seal("session", {"identity": identity}, key, now + SESSION_SECONDS)
        return Finished(str(login.get("t", "")), identity, set_cookie(session, SESSION_SECONDS))

    def _exchange(self, code: str, redirect_uri: str, verifier: str) -> str:
        import urllib3

        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        secret = self._secret()
        if secret is not None:  # client_secret_basic (RFC 6749 2.3.1: form-encoded parts)
            pair = f"{_form(self.client_id)}:{_form(secret.get_secret_value())}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:  # a public client: PKCE is its proof
            form["client_id"] = self.client_id
        try:
            response = self._http.request(
                "POST", self.metadata().token_endpoint, body=urlencode(form), headers=headers
            )
        except urllib3.exceptions.HTTPError:
            raise SignInRefused(Failure.EXCHANGE) from None
        try:
            token = json.loads(response.data)["id_token"] if response.status == 200 else None
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str):
            raise SignInRefused(Failure.EXCHANGE)
        return token

    def verify(self, id_token: str, nonce: str, now: float) -> str:
        """The identity an ID token proves; raises SignInRefused saying what is wrong."""
        import jwt

        try:
            signing_key = self._signing_key(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                signing_key,
                algorithms=["RS256", "ES256", "PS256", "EdDSA"],
                audience=self.client_id,
                issuer=self.metadata().issuer,
                options={"require": ["iss", "aud", "exp", "sub"], "verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            raise SignInRefused(Failure.AUDIENCE) from None
        except jwt.InvalidIssuerError:
            raise SignInRefused(Failure.ISSUER) from None
        except jwt.PyJWTError:
            raise SignInRefused(Failure.SIGNATURE) from None
        # Expiry against the endpoint's clock (the one it checks links with).
        if not isinstance(claims.get("exp"), int | float) or now >= claims["exp"] + LEEWAY_SECONDS:
            raise SignInRefused(Failure.EXPIRED)
        if not nonce or not _same(nonce, claims.get("nonce")):
            raise SignInRefused(Failure.NONCE)
        return identity_of(claims)

    def _signing_key(self, id_token: str) -> Any:
        import jwt

        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
        except jwt.PyJWTError:
            raise SignInRefused(Failure.SIGNATURE) from None
        client = self._jwks.get(self.issuer, self._jwk_client)
        try:
            return client.get_signing_key(kid).key if kid else client.get_signing_keys()[0].key
        except jwt.PyJWKClientConnectionError:
            raise ProviderUnavailable(f"{self.issuer}: JWKS unreachable") from None
        except jwt.PyJWKClientError:
            raise SignInRefused(Failure.SIGNATURE) from None

    def _jwk_client(self) -> Any:
        import jwt

        return jwt.PyJWKClient(self.metadata().jwks_uri, cache_keys=True, timeout=5)

    # endregion

    def identity(self, cookie: str | None, key: SecretStr, now: float) -> str | None:
        """Who the session cookie says is signed in; None without a valid session."""
        if not cookie:
            return None
        try:
            fields = unseal("session", cookie, key, now)
        except SignInRefused:
            return None
        identity = fields.get("identity")
        return identity if isinstance(identity, str) and identity else None


@dataclass(frozen=True)
class Started:
    location: str
    set_cookie: str


@dataclass(frozen=True)
class Finished:
    link_token: str
    identity: str
    set_cookie: str


def identity_of(claims: dict[str, Any]) -> str:
    """`email:<email>` when the issuer verified the email, else `oidc:<iss>#<sub>`."""
    email, verified = claims.get("email"), claims.get("email_verified")
    if isinstance(email, str) and email.strip() and verified in (True, "true"):
        return f"email:{email.strip().lower()}"
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise SignInRefused(Failure.NO_IDENTITY)
    return f"oidc:{claims['iss']}#{sub}"


def read_secret(arn: str, client: Any) -> SecretStr:
    """The client secret stored in secret `arn` (boto3 Secrets Manager `client`)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pydantic import SecretStr

    from orchestrator import aws

    try:
        text = client.get_secret_value(SecretId=arn).get("SecretString")
    except (ClientError, BotoCoreError) as exc:
        raise ProviderUnavailable(f"OIDC client secret {arn}: {aws.describe(exc)}") from None
    if not isinstance(text, str) or not text:
        raise ProviderUnavailable(f"OIDC client secret {arn}: empty")
    return SecretStr(text)


SECRETS: TtlCache[str, SecretStr] = TtlCache(SECRET_CACHE_SECONDS)
"""The process's client secrets by ARN (a rotated secret is picked up within the TTL)."""


def _same(text: str, other: object) -> bool:
    return isinstance(other, str) and hmac.compare_digest(text.encode(), other.encode())


def _form(text: str) -> str:
    from urllib.parse import quote_plus

    return quote_plus(text)
