"""Signed one-time approval links.

A link carries a token `v1.<payload>.<signature>`: the payload is base64url JSON naming the
run, the step, the principal the link is for, the decision (approve or reject), the expiry
(epoch seconds: the step's deadline) and a random nonce; the signature is HMAC-SHA256 over
`v1.<payload>` with the signing key. Anyone holding the link may use it, once: the store
records one decision per principal per step, so the first POST uses up both of that
principal's links.

The key is the SecretString of a Secrets Manager secret (template.yaml generates it), read
by ARN and cached in-process for `KEY_CACHE_SECONDS`. It is held as a `SecretStr` and never
logged, stored or put in a message: only signatures derived from it leave the process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from pydantic import SecretStr

from orchestrator import aws
from orchestrator.caching import TtlCache
from orchestrator.exceptions import TerminalError, TransientError
from orchestrator.text import b64url, unb64url

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_secretsmanager import SecretsManagerClient

Decision = Literal["approve", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "reject")
VERSION = "v1"
MAX_TOKEN_CHARS = 4096
KEY_CACHE_SECONDS = 300.0
TOKEN_PARAM = "t"
"""The query parameter (GET) and form field (POST) that carries the token."""


class BadLink(TerminalError):
    """The token is malformed or its signature does not verify with our key."""


class KeyUnavailable(TransientError):
    """The signing key could not be read from Secrets Manager (the message names the ARN)."""


@dataclass(frozen=True)
class LinkClaim:
    """What a link says, once its signature has verified."""

    run_id: str
    step: str
    principal: str
    decision: Decision
    expires: float
    nonce: str


@dataclass(frozen=True)
class Link:
    """One minted link: for whom, which decision, the URL to open."""

    principal: str
    decision: Decision
    url: str


def sign(claim: LinkClaim, key: SecretStr) -> str:
    """The token for `claim`."""
    return _seal(VERSION, asdict(claim), key)


def verify(token: str, key: SecretStr) -> LinkClaim:
    """The claim a token carries; raises BadLink unless our key signed exactly this token."""
    fields = _unseal(VERSION, token, key, "token")
    try:
        claim = LinkClaim(
            run_id=str(fields["run_id"]),
            step=str(fields["step"]),
            principal=str(fields["principal"]),
            decision=fields["decision"],
            expires=float(fields["expires"]),
            nonce=str(fields["nonce"]),
        )
    except (ValueError, KeyError, TypeError):
        raise BadLink("malformed token") from None
    if claim.decision not in DECISIONS:
        raise BadLink("malformed token")
    return claim


def _seal(version: str, fields: dict[str, Any], key: SecretStr) -> str:
    """`version.payload.signature`: compact JSON, base64url, HMAC-SHA256 over both."""
    payload = b64url(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{version}.{payload}"
    return f"{signed}.{b64url(_mac(key, signed))}"


def _unseal(version: str, token: str, key: SecretStr, what: str) -> Any:
    """The fields `_seal` put in `token`; BadLink unless our key signed exactly it."""
    parts = token.split(".") if 0 < len(token) <= MAX_TOKEN_CHARS else []
    if len(parts) != 3 or parts[0] != version:
        raise BadLink(f"malformed {what}")
    try:
        signature = unb64url(parts[2])
    except ValueError:
        raise BadLink(f"malformed {what}") from None
    if not hmac.compare_digest(signature, _mac(key, f"{parts[0]}.{parts[1]}")):
        raise BadLink("signature does not verify")
    try:
        return json.loads(unb64url(parts[1]))
    except ValueError:
        raise BadLink(f"malformed {what}") from None


def mint(
    key: SecretStr,
    base_url: str,
    run_id: str,
    step: str,
    principals: Iterable[str],
    expires: float,
) -> list[Link]:
    """An approve and a reject link for each principal, each with its own nonce."""
    links = []
    for principal in principals:
        for decision in DECISIONS:
            claim = LinkClaim(run_id, step, principal, decision, expires, secrets.token_urlsafe(12))
            query = urlencode({TOKEN_PARAM: sign(claim, key)})
            links.append(Link(principal, decision, f"{base_url.rstrip('/')}/?{query}"))
    return links


class KeyCache:
    """Signing keys by secret ARN, each kept `ttl` seconds (so a rotated key is picked up)."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._keys: TtlCache[str, SecretStr] = TtlCache(ttl)

    def get(self, arn: str, client: SecretsManagerClient) -> SecretStr:
        """The key stored in secret `arn`, read with a boto3 Secrets Manager `client`."""
        return self._keys.get(arn, lambda: _read_key(arn, client))


def _read_key(arn: str, client: SecretsManagerClient) -> SecretStr:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        text = client.get_secret_value(SecretId=arn).get("SecretString")
    except (ClientError, BotoCoreError) as exc:
        raise KeyUnavailable(f"signing key {arn}: {aws.describe(exc)}") from None
    if not isinstance(text, str) or len(text) < 32:
        raise KeyUnavailable(f"signing key {arn}: missing or shorter than 32 characters")
    return SecretStr(text)


KEYS = KeyCache()
"""The process's key cache, shared by the step (minting) and the endpoint (verifying)."""


def _mac(key: SecretStr, message: str) -> bytes:
    return hmac.new(key.get_secret_value().encode(), message.encode(), hashlib.sha256).digest()


# Slack buttons -------------------------------------------------------------------------------
# A button's value names the run, the step and the decision but no principal: Slack proves
# who clicked (the request's signature, orchestrator.approval.slack). A version of its own
# keeps a button value from ever passing for a link token, and the other way round.

BUTTON_VERSION = "s1"


@dataclass(frozen=True)
class ButtonClaim:
    """What a Slack button's value says, once its signature has verified."""

    run_id: str
    step: str
    decision: Decision
    expires: float
    nonce: str


@dataclass(frozen=True)
class Button:
    """One minted Slack button: which decision, the signed value it carries."""

    decision: Decision
    value: str


def sign_button(claim: ButtonClaim, key: SecretStr) -> str:
    """The button value for `claim`, signed like a link token."""
    return _seal(BUTTON_VERSION, asdict(claim), key)


def verify_button(value: str, key: SecretStr) -> ButtonClaim:
    """The claim a button value carries; raises BadLink unless our key signed exactly it."""
    fields = _unseal(BUTTON_VERSION, value, key, "button value")
    try:
        claim = ButtonClaim(
            run_id=str(fields["run_id"]),
            step=str(fields["step"]),
            decision=fields["decision"],
            expires=float(fields["expires"]),
            nonce=str(fields["nonce"]),
        )
    except (ValueError, KeyError, TypeError):
        raise BadLink("malformed button value") from None
    if claim.decision not in DECISIONS:
        raise BadLink("malformed button value")
    return claim


def mint_buttons(key: SecretStr, run_id: str, step: str, expires: float) -> list[Button]:
    """An approve and a reject button for the step, for whoever Slack says clicked."""
    claims = [ButtonClaim(run_id, step, d, expires, secrets.token_urlsafe(12)) for d in DECISIONS]
    return [Button(claim.decision, sign_button(claim, key)) for claim in claims]
