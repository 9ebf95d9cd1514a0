from __future__ import annotations

import pytest

from orchestrator.exceptions import UnknownTokenError
from orchestrator.token import MAX_TOKEN_CHARS, Token, new_nonce


def make(**changes: object) -> Token:
    token = Token(
        run_id="11111111-abcd-1111-abcd-111111abcdef",
        nonce=new_nonce(),
        job_id="22222222-abcd-1111-abcd-111111abcdef",
        started_at=1.5,
        deadline=86000.25,
        due=60.0,
        checked_at=1.5,
        step_index=3,
        percent=42,
    )
    return token.replace(**changes)


def test_round_trip_and_bounded_length() -> None:
    token = make()
    text = token.encode()
    assert len(text) <= MAX_TOKEN_CHARS
    assert Token.decode(text) == token


def test_nonces_are_unguessable_and_distinct() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(len(n) >= 22 for n in nonces)  # 128 bits in base64url


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A continuation token if continuing job", "not issued by this orchestrator"),
        ("v1.!!!!", "garbled"),
        ("v1.e30", "garbled"),  # {}
        ("v1." + "A" * 3000, "not issued by this orchestrator"),
    ],
)
def test_foreign_tokens_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(UnknownTokenError, match=reason):
        Token.decode(text)
