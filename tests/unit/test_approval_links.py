"""Signed links and principal matching: pure functions, no AWS."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from orchestrator.approval import links, principals
from orchestrator.approval.links import BadLink, KeyCache, KeyUnavailable, LinkClaim

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

KEY = SecretStr("k" * 64)
OTHER_KEY = SecretStr("o" * 64)
CLAIM = LinkClaim(
    "run-1", "signoff", "arn:aws:iam::123456789012:user/alice", "approve", 1e10, "nonce"
)


def test_a_signed_claim_verifies_and_round_trips() -> None:
    token = links.sign(CLAIM, KEY)
    assert token.startswith("v1.") and links.verify(token, KEY) == CLAIM
    assert "k" * 16 not in token  # the key itself is nowhere in the token


def _payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


def _with_payload(token: str, payload: dict[str, Any]) -> str:
    version, _, signature = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{version}.{body}.{signature}"


@pytest.mark.parametrize(
    "field",
    [("principal", "arn:aws:iam::123456789012:user/mallory"), ("decision", "reject"),
     ("expires", 9e12), ("run_id", "run-2"), ("step", "other")],
)  # fmt: skip
def test_any_change_to_the_claim_breaks_the_signature(field: tuple[str, Any]) -> None:
    token = links.sign(CLAIM, KEY)
    name, value = field
    tampered = _with_payload(token, {**_payload(token), name: value})
    with pytest.raises(BadLink, match="signature"):
        links.verify(tampered, KEY)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v1.a.b.c", "v2.abc.def", "v1.!!!.abc", "v1.abc.%%%", "x" * 5000],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadLink):
        links.verify(token, KEY)


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(BadLink, match="signature"):
        links.verify(links.sign(CLAIM, OTHER_KEY), KEY)


def test_junk_in_the_signature_is_not_ignored() -> None:
    token = links.sign(CLAIM, KEY)
    with pytest.raises(BadLink):
        links.verify(token[:-2] + "=" + token[-2:], KEY)


def test_mint_gives_two_distinct_links_per_principal() -> None:
    who = ["arn:aws:iam::1:user/a", "arn:aws:iam::1:user/b"]
    minted = links.mint(KEY, "https://x.lambda-url.eu-west-1.on.aws/", "r", "s", who, 1e10)
    assert [(m.principal, m.decision) for m in minted] == [
        (who[0], "approve"),
        (who[0], "reject"),
        (who[1], "approve"),
        (who[1], "reject"),
    ]
    assert len({m.url for m in minted}) == 4
    for link in minted:
        assert link.url.startswith("https://x.lambda-url.eu-west-1.on.aws/?t=v1.")
        claim = links.verify(link.url.split("?t=", 1)[1], KEY)
        assert (claim.principal, claim.decision, claim.expires) == (
            link.principal,
            link.decision,
            1e10,
        )


class FakeSecrets:
    def __init__(self, value: str | None, error: str | None = None) -> None:
        self.value, self.error, self.calls = value, error, 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.calls += 1
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "m"}}, "GetSecretValue")
        return {"SecretString": self.value} if self.value is not None else {}

    def client(self) -> SecretsManagerClient:
        """This fake as the boto3 client it stands in for (the one call it has)."""
        return cast("SecretsManagerClient", self)


def test_the_key_is_read_once_and_cached() -> None:
    cache, fake = KeyCache(), FakeSecrets("s" * 40)
    assert cache.get("arn:k", fake.client()).get_secret_value() == "s" * 40
    assert cache.get("arn:k", fake.client()).get_secret_value() == "s" * 40
    assert fake.calls == 1
    assert "s" * 40 not in repr(cache.get("arn:k", fake.client()))


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (FakeSecrets(None, "AccessDeniedException"), "signing key arn:k: AccessDeniedException"),
        (FakeSecrets("short"), "shorter than 32 characters"),
        (FakeSecrets(None), "missing"),
    ],
)
def test_an_unusable_key_is_reported_by_arn(client: FakeSecrets, message: str) -> None:
    with pytest.raises(KeyUnavailable, match=message):
        KeyCache().get("arn:k", client.client())


ROLE = "arn:aws:iam::111122223333:role/Releasers"
SESSION = "arn:aws:sts::111122223333:assumed-role/Releasers/alice@example.com"


@pytest.mark.parametrize(
    ("principal", "patterns", "expected"),
    [
        (SESSION, [SESSION], True),
        (SESSION, [ROLE], True),  # a session matches its role
        (SESSION, ["arn:aws:iam::111122223333:role/team/Releasers"], True),  # any path
        (SESSION, ["arn:aws:sts::111122223333:assumed-role/Releasers/*"], True),
        (SESSION, ["arn:aws:sts::111122223333:assumed-role/Releasers/bob*"], False),
        (SESSION, ["arn:aws:iam::444455556666:role/Releasers"], False),  # another account
        (ROLE, ["arn:aws:iam::111122223333:role/Release*"], True),
        ("arn:aws:iam::111122223333:role/ReleasersX", [ROLE], False),
        ("arn:aws:iam::111122223333:user/alice", ["arn:aws:iam::111122223333:user/*"], True),
        ("arn:aws:iam::111122223333:user/alice", ["arn:aws:iam::111122223333:user/al?ce"], False),
        ("~notify", ["*"], False),  # reserved keys are never principals
        ("", ["*"], False),
    ],
)
def test_principals_match_patterns(principal: str, patterns: list[str], expected: bool) -> None:
    assert principals.matches(principal, patterns) is expected


def test_normalize_drops_role_paths_and_space_only() -> None:
    assert principals.normalize(" arn:aws:iam::1:role/a/b/Name ") == "arn:aws:iam::1:role/Name"
    assert principals.normalize(SESSION) == SESSION
    assert principals.is_exact(ROLE) and not principals.is_exact("arn:aws:iam::1:role/*")
