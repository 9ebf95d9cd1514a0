"""Slack buttons over real HTTP: Slack-signed clicks posted to the endpoint's /slack path
(served on loopback as a function URL), runs in DynamoDB Local, the approval key and the Slack
signing secret in moto's Secrets Manager, and a local stub as the click's response_url."""

from __future__ import annotations

import io
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from orchestrator import _log
from orchestrator.approval import links, slack, web
from orchestrator.local.endpoint import EndpointServer
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.integration.test_approval_rig import (
    ALICE,
    CANARY_KEY,
    Webhook,
    http,
    signing_key,
    stored_run,
)
from tests.reliability.canaries import SCANNER

if TYPE_CHECKING:
    from collections.abc import Iterator

    import urllib3

USER = "U0123ABCD"
SIGNING_SECRET = "CANARY-slack-signing-" + "0f1e" * 8
SCANNER.add(SIGNING_SECRET, "the Slack signing secret (tests)")
MESSAGE = [
    {"type": "header", "block_id": "h", "text": {"type": "plain_text", "text": "Approval"}},
    {"type": "actions", "block_id": "b", "elements": []},
]


class Clicks:
    def __init__(self, url: str, store: DynamoRunStore, hook: Webhook, logs: io.StringIO) -> None:
        self.url, self.store, self.hook, self.logs = url, store, hook, logs
        self.now = time.time()

    def run(self, required: int = 2) -> str:
        approval = {"approvers": [ALICE, f"slack:{USER}"], "required": required}
        return stored_run(self.store, approval, self.now)

    def value(
        self, run_id: str, decision: links.Decision = "approve", key: str = CANARY_KEY
    ) -> str:
        claim = links.ButtonClaim(run_id, "signoff", decision, self.now + 3600, "n")
        return links.sign_button(claim, SecretStr(key))

    def body(self, value: str, action: str = "approve", user: str = USER) -> bytes:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "someone", "team_id": "T0"},
            "actions": [{"type": "button", "action_id": action, "value": value}],
            "response_url": self.hook.url,
            "message": {"blocks": MESSAGE},
        }
        return urlencode({"payload": json.dumps(payload)}).encode()

    def signed(
        self, body: bytes, at: float | None = None, secret: str = SIGNING_SECRET
    ) -> dict[str, str]:
        timestamp = str(int(self.now if at is None else at))
        signature = slack.signature(SecretStr(secret), timestamp, body)
        return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}

    def post(self, body: bytes, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return http.request("POST", f"{self.url}slack", body=body, headers=form, redirect=False)

    def decisions(self, run_id: str) -> dict[str, Any]:
        record = self.store.load(run_id)
        assert record is not None
        return record.signals.decisions.get("signoff", {})

    def replay_claims(self, run_id: str) -> list[str]:
        record = self.store.load(run_id)
        assert record is not None
        return [k for k in record.signals.claims.get("signoff", {}) if k.startswith("slack:")]


@pytest.fixture
def clicks(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Clicks]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET_ARN", signing_key(moto_endpoint))
    secret_arn = signing_key(moto_endpoint, SIGNING_SECRET)
    monkeypatch.setenv("ORCHESTRATOR_SLACK_SIGNING_SECRET_ARN", secret_arn)
    logs = io.StringIO()
    _log.unconfigure()
    _log.configure("DEBUG", logs)
    web.use(None)
    try:
        with EndpointServer(web.handler) as server, Webhook() as hook:
            yield Clicks(server.url, DynamoRunStore(bind_model(table_name)), hook, logs)
    finally:
        web.use(None)
        _log.unconfigure()


def _bare(response: urllib3.BaseHTTPResponse, status: int) -> None:
    assert response.status == status, response.data
    assert response.data == b""


def test_a_signed_click_by_a_mapped_user_counts_once_and_updates_the_message(
    clicks: Clicks,
) -> None:
    run_id = clicks.run()
    body = clicks.body(clicks.value(run_id))
    headers = clicks.signed(body)
    _bare(clicks.post(body, headers), 200)
    decision = clicks.decisions(run_id)[f"slack:{USER}"]
    assert (decision["decision"], decision["comment"], decision["via"]) == ("approve", "", "slack")
    assert "source_ip" not in decision
    (update,) = clicks.hook.bodies  # the message, updated in place with who decided
    assert update["replace_original"] is True
    assert [b["block_id"] for b in update["blocks"]] == ["h", "b", slack.STATUS_BLOCK]
    assert "1/2 approvals so far: <@U0123ABCD>." in update["text"]

    _bare(clicks.post(body, headers), 401)  # the same request again: a replay
    assert list(clicks.decisions(run_id)) == [f"slack:{USER}"]
    assert len(clicks.hook.bodies) == 1 and len(clicks.replay_claims(run_id)) == 1

    # A new click by the same user, a second later: signed, but already decided.
    clicks.now += 1
    again = clicks.body(clicks.value(run_id, "reject"), "reject")
    _bare(clicks.post(again, clicks.signed(again)), 200)
    assert clicks.decisions(run_id)[f"slack:{USER}"]["decision"] == "approve"
    ephemeral = clicks.hook.bodies[-1]
    assert ephemeral["response_type"] == "ephemeral" and ephemeral["replace_original"] is False
    assert "Nothing was recorded" in ephemeral["text"] and "already decided" in ephemeral["text"]
    logs = clicks.logs.getvalue()
    assert "approval recorded" in logs and "replayed" in logs
    for secret in (SIGNING_SECRET, CANARY_KEY, headers["X-Slack-Signature"], clicks.hook.url):
        assert secret not in logs


def test_a_reject_settles_the_step_and_takes_the_buttons_away(clicks: Clicks) -> None:
    run_id = clicks.run()
    body = clicks.body(clicks.value(run_id, "reject"), "reject")
    _bare(clicks.post(body, clicks.signed(body)), 200)
    assert clicks.decisions(run_id)[f"slack:{USER}"]["decision"] == "reject"
    (update,) = clicks.hook.bodies
    assert [b["block_id"] for b in update["blocks"]] == ["h", slack.STATUS_BLOCK]
    assert "Rejected by <@U0123ABCD>" in update["text"]


def test_someone_outside_the_approvers_is_answered_privately(clicks: Clicks) -> None:
    run_id = clicks.run()
    body = clicks.body(clicks.value(run_id), user="U999OTHER")
    _bare(clicks.post(body, clicks.signed(body)), 200)
    assert clicks.decisions(run_id) == {}
    (answer,) = clicks.hook.bodies
    assert answer["response_type"] == "ephemeral"
    assert "<@U999OTHER> may not decide step 'signoff'" in answer["text"]
    assert ALICE not in answer["text"]  # the approvers are not listed


def test_unsigned_stale_forged_and_malformed_clicks_are_refused_and_record_nothing(
    clicks: Clicks,
) -> None:
    run_id = clicks.run()
    good = clicks.body(clicks.value(run_id))
    other_run = clicks.body(clicks.value(clicks.run()))
    foreign = clicks.body(clicks.value(run_id, key="x" * 64))  # another deployment's key
    mismatched = clicks.body(clicks.value(run_id, "reject"), "approve")
    junk = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    cases: list[tuple[str, bytes, dict[str, str], int]] = [
        ("unsigned", good, {}, 401),
        ("stale", good, clicks.signed(good, clicks.now - 400), 401),
        ("future", good, clicks.signed(good, clicks.now + 400), 401),
        ("wrong secret", good, clicks.signed(good, secret="y" * 40), 401),
        ("another body's signature", good, clicks.signed(other_run), 401),
        ("malformed payload", junk, clicks.signed(junk), 400),
        ("value signed with another key", foreign, clicks.signed(foreign), 400),
        ("action and value disagree", mismatched, clicks.signed(mismatched), 400),
    ]
    for label, body, headers, status in cases:
        response = clicks.post(body, headers)
        assert response.status == status, label
        assert response.data == b"", label
    assert clicks.decisions(run_id) == {} and clicks.replay_claims(run_id) == []
    assert clicks.hook.bodies == []
    # The good click, properly signed, still counts: nothing above used it up.
    _bare(clicks.post(good, clicks.signed(good)), 200)
    assert f"slack:{USER}" in clicks.decisions(run_id)
