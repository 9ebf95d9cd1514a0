"""Slack buttons: the v0 request signature, the click payload, the message updated in place."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from orchestrator.approval import slack
from orchestrator.approval.decide import Tally
from orchestrator.approval.slack import BadSignature, Click, verify

SECRET = SecretStr("8f742231b10e8888abcd99yyyzzz85a5")
NOW = 1_531_420_618.0
# Slack's published example (docs.slack.dev, "Verifying requests from Slack").
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def headers(signature: str, timestamp: str = "1531420618") -> dict[str, str]:
    return {"x-slack-signature": signature, "x-slack-request-timestamp": timestamp}


def signed(body: bytes, at: float = NOW, secret: SecretStr = SECRET) -> dict[str, str]:
    timestamp = str(int(at))
    return headers(slack.signature(secret, timestamp, body), timestamp)


def test_slacks_published_example_verifies() -> None:
    assert slack.signature(SECRET, "1531420618", DOC_BODY) == DOC_SIGNATURE
    assert verify(SECRET, headers(DOC_SIGNATURE), DOC_BODY, NOW) == DOC_SIGNATURE


def test_a_valid_signature_is_returned_within_five_minutes_either_way() -> None:
    body = b"payload=%7B%7D"
    for skew in (0.0, 299.0, 300.0, -300.0):
        assert verify(SECRET, signed(body, NOW + skew), body, NOW).startswith("v0=")


@pytest.mark.parametrize(
    ("label", "given", "body", "now"),
    [
        ("wrong secret", signed(DOC_BODY, secret=SecretStr("x" * 32)), DOC_BODY, NOW),
        ("stale timestamp", headers(DOC_SIGNATURE), DOC_BODY, NOW + 301),
        ("future timestamp", signed(DOC_BODY, NOW + 301), DOC_BODY, NOW),
        ("body tampered", headers(DOC_SIGNATURE), DOC_BODY.replace(b"U2CER", b"U2CES"), NOW),
        ("body extended", headers(DOC_SIGNATURE), DOC_BODY + b"&user_id=UADMIN", NOW),
        ("timestamp changed", headers(DOC_SIGNATURE, "1531420619"), DOC_BODY, NOW),
        ("no signature", {"x-slack-request-timestamp": "1531420618"}, DOC_BODY, NOW),
        ("no timestamp", {"x-slack-signature": DOC_SIGNATURE}, DOC_BODY, NOW),
        ("no headers", {}, DOC_BODY, NOW),
        ("not v0", headers("v1=" + DOC_SIGNATURE[3:]), DOC_BODY, NOW),
        ("upper-case hex", headers(DOC_SIGNATURE.upper().replace("V0=", "v0=")), DOC_BODY, NOW),
        ("short signature", headers(DOC_SIGNATURE[:-2]), DOC_BODY, NOW),
        ("timestamp not a number", headers(DOC_SIGNATURE, "1531420618.0"), DOC_BODY, NOW),
        ("timestamp empty", headers(DOC_SIGNATURE, ""), DOC_BODY, NOW),
    ],
)
def test_anything_else_is_refused(
    label: str, given: dict[str, str], body: bytes, now: float
) -> None:
    with pytest.raises(BadSignature):
        verify(SECRET, given, body, now)


def payload(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "block_actions",
        "user": {"id": "U0123ABCD", "username": "alice"},
        "actions": [{"action_id": "approve", "value": "s1.a.b", "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T0/1/xyz",
        "message": {"blocks": [{"type": "header"}, {"type": "actions", "elements": []}]},
    }
    return {**base, **changes}


def form(document: object) -> bytes:
    return urlencode({"payload": json.dumps(document)}).encode()


def test_a_click_is_read_from_the_payload_field() -> None:
    click = Click.parse(form(payload()))
    assert click == Click(
        user_id="U0123ABCD",
        action_id="approve",
        value="s1.a.b",
        response_url="https://hooks.slack.com/actions/T0/1/xyz",
        blocks=[{"type": "header"}, {"type": "actions", "elements": []}],
    )
    assert Click.parse(form(payload(message=None))).blocks == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=",
        b"payload=not-json",
        b"nothing=here",
        "payload=\u00e9".encode("latin-1"),
        form([1, 2]),
        form(payload(type="view_submission")),
        form(payload(user={"id": "U0123ABCD> <!channel"})),
        form(payload(user={"id": "u0123abcd"})),
        form(payload(user=None)),
        form(payload(actions=[])),
        form(payload(actions=[{"action_id": "approve", "value": "a"}] * 2)),
        form(payload(actions=[{"action_id": "approve"}])),
        form(payload(response_url="file:///etc/passwd")),
        form(payload(response_url=None)),
    ],
)
def test_a_malformed_click_is_refused(body: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        Click.parse(body)


BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "block_id": "h"},
    {"type": "actions", "block_id": "a"},
    {"type": "context", "block_id": slack.STATUS_BLOCK, "elements": []},
    {"type": "context", "block_id": "c"},
]


def test_the_message_keeps_its_buttons_until_the_step_is_settled() -> None:
    waiting = slack._decided(BLOCKS, Tally(2, ["slack:U0123ABCD"], [""]))
    assert waiting["replace_original"] is True
    ids = [b.get("block_id") for b in waiting["blocks"]]
    assert ids == ["h", "a", "c", slack.STATUS_BLOCK]  # the earlier status line replaced
    assert waiting["blocks"][-1]["elements"][0]["text"].endswith(
        "1/2 approvals so far: <@U0123ABCD>."
    )
    approved = slack._decided(BLOCKS, Tally(1, ["slack:U0123ABCD"], [""]))
    assert [b.get("block_id") for b in approved["blocks"]] == ["h", "c", slack.STATUS_BLOCK]
    assert "Approved (1/1 approvals): <@U0123ABCD>." in approved["text"]
    rejected = slack._decided(BLOCKS, Tally(2, rejected_by="arn:aws:iam::1:user/<b>"))
    assert [b.get("block_id") for b in rejected["blocks"]] == ["h", "c", slack.STATUS_BLOCK]
    assert "Rejected by arn:aws:iam::1:user/&lt;b&gt;" in rejected["text"]
