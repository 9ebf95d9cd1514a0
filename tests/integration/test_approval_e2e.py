"""Approval gates end to end: the Lambda handler called by the CodePipeline emulator's job
loop, state in DynamoDB Local, SNS and Secrets Manager in moto, the webhook a local server,
and decisions made through the store, or through the links of the message, over HTTP."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestrator import _log, handler
from orchestrator.approval import web
from orchestrator.approval.decide import decide
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import run_action
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.local.endpoint import EndpointServer
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.integration.test_approval_oidc_rig import (
    ALICE_ID,
    BOB_ID,
    MOCK_PROVIDER_WARNINGS,
    Browser,
    behind_function_url,
    configure_sign_in,
    mock_provider,
)
from tests.integration.test_approval_rig import (
    ALICE,
    BOB,
    CANARY_KEY,
    MALLORY,
    Webhook,
    get,
    post,
    signing_key,
    token_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.model import RunRecord


class Rig:
    def __init__(self, table: str, moto: str, emulator: CodePipelineEmulator, clock: Any) -> None:
        self.table, self.emulator, self.clock = table, emulator, clock
        self.store = DynamoRunStore(bind_model(table))
        self.logs = io.StringIO()
        self.webhook = Webhook()
        sns = boto3.client("sns", endpoint_url=moto)
        sqs = boto3.client("sqs", endpoint_url=moto)
        self.topic = sns.create_topic(Name=f"approvals-{table}")["TopicArn"]
        self.queue = sqs.create_queue(QueueName=f"inbox-{table}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=self.topic,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        self.sqs = sqs

    def gate(self, required: int = 1, **approval: Any) -> dict[str, Any]:
        spec = {
            "approvers": [ALICE, BOB, "arn:aws:iam::123456789012:role/Ops*"],
            "required": required,
            "message": "Ship build 42 to production?",
            "notify": {"sns": self.topic, "webhook": self.webhook.url},
            **approval,
        }
        return {
            "steps": [
                {"name": "bake", "wait": "2m"},
                {"name": "signoff", "approval": spec, "timeout": "6h", "every": "20s"},
            ],
            "outputs": {"By": "steps.signoff.approved_by", "Why": "steps.signoff.comments[0]"},
        }

    def start(
        self, definition: dict[str, Any], **kwargs: Any
    ) -> tuple[threading.Thread, list[Any]]:
        """Run the action in the background, as CodePipeline would; returns (thread, result)."""
        configuration = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
        result: list[Any] = []

        def run() -> None:
            result.append(
                run_action(
                    self.emulator,
                    handler.lambda_handler,
                    configuration,
                    clock=self.clock,
                    reinvoke_delay=5.0,
                    **kwargs,
                )
            )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, result

    def waiting(self, approvals: int = 0, timeout: float = 60.0) -> RunRecord:
        """The run, once it waits at its approval step with this many approvals shown."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            items = boto3.client("dynamodb").scan(TableName=self.table)["Items"]
            for item in items:
                record = self.store.load(item["run_id"]["S"])
                step = record.state.steps[1] if record else None
                if step and step.detail.startswith(f"waiting for approval: {approvals}/"):
                    assert record is not None
                    return record
            time.sleep(0.05)
        raise AssertionError("the run never reached its approval step")

    def sns_messages(self) -> list[str]:
        found = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [m["Body"] for m in found.get("Messages", [])]


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    for service in ("SNS", "SQS", "SECRETS_MANAGER"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET_ARN", signing_key(moto_endpoint))
    monkeypatch.setenv("ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS", "0")
    clock = VirtualClock(speed=120)
    endpoint_server = EndpointServer(behind_function_url(web.handler))
    with CodePipelineEmulator(clock) as emulator, endpoint_server as endpoint:
        monkeypatch.setenv("ORCHESTRATOR_APPROVAL_URL", endpoint.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        rig = Rig(table_name, moto_endpoint, emulator, clock)
        _log.unconfigure()
        _log.configure("DEBUG", rig.logs)
        handler.use(handler.build_app(clock))
        web.use(None)
        try:
            yield rig
        finally:
            handler.use(None)
            web.use(None)
            _log.unconfigure()
            rig.webhook.close()


def finish(thread: threading.Thread, result: list[Any]) -> Any:
    thread.join(timeout=60)
    assert not thread.is_alive() and result, "the action did not end"
    return result[0]


def test_the_links_in_the_message_decide_the_gate(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    thread, result = rig.start(rig.gate(links="bearer"))  # the link is the credential
    record = rig.waiting()
    (body,) = rig.webhook.bodies
    assert "Ship build 42 to production?" in body["text"]
    buttons = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    urls = {(b["text"]["text"], b["url"]) for b in buttons}
    assert len(urls) == 4  # approve + reject for each exact approver; none for the pattern
    (sns_text,) = rig.sns_messages()
    assert sns_text.startswith("Approval needed: Ship build 42 to production?")
    prefix = f"Approve as {ALICE}: "
    alice_approve = next(line for line in sns_text.splitlines() if line.startswith(prefix))
    alice_approve = alice_approve.removeprefix(prefix)
    assert ("Approve", alice_approve) in urls
    pages = [get(alice_approve).data.decode() for _ in range(2)]  # previewers, then a person
    assert "Nothing has been recorded yet" in pages[0]
    after_gets = rig.store.load(record.run_id)
    assert after_gets is not None and set(after_gets.signals.claims["signoff"]) == {"notify"}
    assert after_gets.signals.decisions == {}
    recorded = post(alice_approve.split("?")[0], token_of(alice_approve), "canary deploy is green")
    assert recorded.status == 200
    pages.append(recorded.data.decode())
    outcome = finish(thread, result)
    assert outcome.status == "Succeeded", outcome.failure_message
    assert json.loads(outcome.output_variables["By"]) == [ALICE]
    assert outcome.output_variables["Why"] == "canary deploy is green"
    used = post(alice_approve.split("?")[0], token_of(alice_approve), "again")
    assert used.status == 409
    assert len(rig.webhook.bodies) == 1 and rig.sns_messages() == []
    # The signing key is nowhere: not in logs, items, pages, messages or answers.
    haystacks = {
        "logs": rig.logs.getvalue() + caplog.text,
        "items": json.dumps(boto3.client("dynamodb").scan(TableName=rig.table)["Items"]),
        "pages": "".join(pages) + used.data.decode(),
        "messages": json.dumps(rig.webhook.bodies) + sns_text,
        "answers": "\n".join(rig.emulator.requests),
    }
    assert "answered" in haystacks["logs"]
    for where, text in haystacks.items():
        assert CANARY_KEY not in text, f"the signing key leaked into {where}"
    # Links are capabilities: kept in no log and no item either.
    for where in ("logs", "items"):
        assert token_of(alice_approve) not in haystacks[where], where


def test_a_reject_through_the_store_fails_naming_who_and_why(rig: Rig) -> None:
    thread, result = rig.start(rig.gate(required=2))
    record = rig.waiting()
    decide(rig.store, record.run_id, None, ALICE, "approve", "ok", time.time(), "test")
    rig.waiting(approvals=1)
    decide(rig.store, record.run_id, "signoff", BOB, "reject", "error budget spent", 0, "test")
    outcome = finish(thread, result)
    assert outcome.status == "Failed" and outcome.failure_type == "JobFailed"
    assert outcome.failure_message == f"step 'signoff': rejected by {BOB}: error budget spent"


def test_two_required_show_one_of_two_then_complete(rig: Rig) -> None:
    thread, result = rig.start(rig.gate(required=2))
    record = rig.waiting()
    decide(rig.store, record.run_id, None, BOB, "approve", "first", time.time(), "test")
    shown = rig.waiting(approvals=1)
    assert "1/2 approvals" in shown.last_answer.summary
    session = "arn:aws:iam::123456789012:role/OpsOnCall"
    decide(rig.store, record.run_id, None, session, "approve", "second", time.time(), "test")
    outcome = finish(thread, result)
    assert outcome.status == "Succeeded", outcome.failure_message
    assert json.loads(outcome.output_variables["By"]) == [BOB, session]
    summaries = [
        job.answer["params"].get("executionDetails", {}).get("summary", "")
        for job in outcome.jobs
        if job.answer
    ]
    assert any("'signoff': waiting for approval: 1/2 approvals" in s for s in summaries)


def test_a_decision_from_outside_the_approvers_is_ignored(rig: Rig) -> None:
    thread, result = rig.start(rig.gate())
    record = rig.waiting()
    forged = {"decision": "reject", "comment": "no", "at": time.time()}
    assert rig.store.record_decision(record.run_id, "signoff", MALLORY, forged)
    deadline = time.monotonic() + 30
    while "ignored 1 decision" not in (rig.store.load(record.run_id) or record).last_answer.summary:
        assert time.monotonic() < deadline, "the forged decision was never seen"
        time.sleep(0.05)
    decide(rig.store, record.run_id, None, ALICE, "approve", "", time.time(), "test")
    outcome = finish(thread, result)
    assert outcome.status == "Succeeded"


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_repeated_deliveries_notify_once_and_decide_once(rig: Rig, mode: str) -> None:
    thread, result = rig.start(rig.gate(), duplicates=mode, concurrency=4)
    record = rig.waiting()
    time.sleep(0.5)  # more rounds, every one delivered several times
    decide(rig.store, record.run_id, None, ALICE, "approve", "once", time.time(), "test")
    outcome = finish(thread, result)
    assert outcome.status == "Succeeded", outcome.failure_message
    copies = 2 if mode == "sequential" else 4
    assert outcome.invocations >= copies * outcome.rounds
    assert len(rig.webhook.bodies) == 1
    assert len(rig.sns_messages()) == 1
    final = rig.store.load(record.run_id)
    assert final is not None
    assert set(final.signals.decisions["signoff"]) == {ALICE}
    assert set(final.signals.claims["signoff"]) == {"notify"}
    assert final.state.steps[1].result == {"approved_by": [ALICE], "comments": ["once"]}


def _links(sns_text: str, decision: str = "Approve") -> dict[str, str]:
    """The links of an SNS message, by the principal they were minted for."""
    found = {}
    for line in sns_text.splitlines():
        if line.startswith(f"{decision} as "):
            who, _, url = line.removeprefix(f"{decision} as ").partition(": ")
            found[who] = url
    return found


@MOCK_PROVIDER_WARNINGS
def test_one_person_with_every_link_does_not_pass_a_gate_that_needs_two(
    rig: Rig, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's done-when: `required: 2`, the message (with every approver's links) in a
    shared channel. One person POSTs both approvers' links: not signed in, nothing counts;
    signed in as alice, alice counts once. The gate still waits. Bob signs in: it passes."""
    with mock_provider() as issuer:
        configure_sign_in(monkeypatch, issuer, moto_endpoint)
        web.use(None)
        thread, result = rig.start(rig.gate(required=2, approvers=[ALICE_ID, BOB_ID]))
        record = rig.waiting()
        (sns_text,) = rig.sns_messages()
        approve = _links(sns_text)
        assert set(approve) == {ALICE_ID, BOB_ID}
        assert len(rig.webhook.bodies) == 1  # the shared channel got the same links

        for url in approve.values():  # anyone in the channel, without signing in
            refused = post(url.split("?", 1)[0], token_of(url), "ship it")
            assert refused.status == 403 and "sign in" in refused.data.decode()
        alice = Browser()
        assert alice.sign_in(approve[BOB_ID].replace("/?t=", "/login?t="), "alice").status == 200
        answers = [
            alice.go(url.split("?", 1)[0], {"t": token_of(url), "comment": "me"}, follow=False)
            for url in (approve[BOB_ID], approve[ALICE_ID])
        ]
        assert [a.status for a in answers] == [200, 409]
        shown = rig.waiting(approvals=1)
        assert "1/2 approvals" in shown.last_answer.summary
        time.sleep(1.0)  # several more checks (the clock runs 120 times faster): still waiting
        assert thread.is_alive() and not result
        latest = rig.store.load(record.run_id)
        assert latest is not None and set(latest.signals.decisions["signoff"]) == {ALICE_ID}

        bob = Browser()
        assert bob.sign_in(approve[ALICE_ID].replace("/?t=", "/login?t="), "bob").status == 200
        url = approve[ALICE_ID]
        done = bob.go(url.split("?", 1)[0], {"t": token_of(url), "comment": "me too"}, follow=False)
        assert done.status == 200 and "2/2 approvals so far." in done.data.decode()
        outcome = finish(thread, result)
    assert outcome.status == "Succeeded", outcome.failure_message
    assert json.loads(outcome.output_variables["By"]) == [ALICE_ID, BOB_ID]
    final = rig.store.load(record.run_id)
    assert final is not None
    assert {p: d["via"] for p, d in final.signals.decisions["signoff"].items()} == {
        ALICE_ID: "oidc",
        BOB_ID: "oidc",
    }
