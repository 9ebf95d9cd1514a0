"""Gate notifications end to end: every event of a run sent once, under concurrent duplicate
deliveries, to a webhook (its URL from a secret reference) and to moto's SNS (read back from
a subscribed SQS queue); a failing webhook never changes the gate."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.http_stub import RoutedStub
from tests.integration.test_approval_rig import Webhook
from tests.reliability.canaries import SCANNER
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    for service in ("SNS", "SQS", "SECRETS_MANAGER"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS", "0")
    with gate_rig(table_name, monkeypatch) as found:
        yield found


def inbox(name: str) -> tuple[str, Any, str]:
    """A topic with an SQS queue subscribed (raw delivery): (topic, sqs client, queue)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=f"gates-{name}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"inbox-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    return topic, sqs, queue


def drained(sqs: Any, queue: str) -> list[str]:
    found: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        found += [m["Body"] for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return found


def test_every_event_is_sent_once_under_concurrent_duplicates(rig: Rig, table_name: str) -> None:
    topic, sqs, queue = inbox(table_name)
    # four deliveries poll the guard each tick: a script long enough that one write sees 404
    health: list[tuple[int, Any]] = [(200, {}), *[(404, {})] * 8, (200, {})]
    with Webhook() as webhook, RoutedStub({"/health": health}) as svc:
        SCANNER.add(webhook.url, "a notification webhook URL (tests)")
        url_secret = boto3.client("secretsmanager").create_secret(
            Name=f"hook-{secrets.token_hex(4)}", SecretString=webhook.url
        )["ARN"]
        result = rig.run(
            {
                "notify": {"webhook": {"secret": url_secret}, "sns": topic},
                "guards": [{"name": "health", "http": {"url": f"{svc.url}/health"},
                            "every": "1m", "on_violation": "hold"}],
                "steps": [
                    {"name": "bake", "wait": "2m"},
                    {"name": "signoff", "timeout": "3m",
                     "approval": {"approvers": [ALICE], "on_timeout": "approve"}},
                    {"name": "extra", "wait": "1m", "when": "run.id == 'not this one'"},
                ],
            },
            duplicates="concurrent",
            concurrency=4,
        )  # fmt: skip
        bodies = list(webhook.bodies)
    assert result.status == "Succeeded", result.failure_message
    titles = sorted(body["text"].splitlines()[0] for body in bodies)
    assert titles == [
        "*Gate guard violated: health*",
        "*Gate skipped: extra*",
        "*Gate succeeded*",
        "*Gate waiting for approval: signoff*",
    ]
    succeeded = next(b["text"] for b in bodies if b["text"].startswith("*Gate succeeded*"))
    assert "all 3 steps over in" in succeeded and f"run `{result.jobs[0].job_id}`" in succeeded
    assert "pipeline " in succeeded and "execution " in succeeded
    assert "console.aws.amazon.com/codesuite/codepipeline/pipelines/" in succeeded
    messages = drained(sqs, queue)
    assert len(messages) == 4
    assert sum("all 3 steps over in" in m for m in messages) == 1


def test_a_failure_is_announced_once_and_a_dead_webhook_never_changes_the_gate(
    rig: Rig, table_name: str
) -> None:
    topic, sqs, queue = inbox(table_name)
    with RoutedStub({"/smoke": [(200, {"failed": True})], "/hook": [(500, {})]}) as svc:
        result = rig.run(
            {
                "notify": {"webhook": f"{svc.url}/hook", "sns": topic, "on": ["failed"]},
                "steps": [{"name": "smoke", "http": {"url": f"{svc.url}/smoke"},
                           "fail_if": "body.failed"}],
            },
            duplicates="concurrent",
            concurrency=4,
        )  # fmt: skip
        posts = svc.count("/hook", "POST")
    assert result.status == "Failed"
    assert result.failure_message == "step 'smoke': fail_if is true (body.failed); HTTP 200"
    assert posts == 1
    (message,) = drained(sqs, queue)
    assert message.startswith("step 'smoke': fail_if is true")
    assert "notification not delivered" in rig.logs.getvalue()
    assert json.dumps(svc.url) not in rig.logs.getvalue()
