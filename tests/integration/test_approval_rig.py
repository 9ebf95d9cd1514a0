"""What the approval tests share (this module holds no tests): a function URL stand-in for
the endpoint, a chat webhook stand-in, an HTTP client, the signing key in moto, and a run
stored at its approval step as a tick leaves it."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import boto3
import urllib3

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.model import Answer, AnswerKind, RunRecord
from tests.http_stub import Loopback, QuietHandler
from tests.reliability.canaries import SCANNER

if TYPE_CHECKING:
    from orchestrator.store.dynamodb import DynamoRunStore

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:sts::123456789012:assumed-role/Releasers/bob"
MALLORY = "arn:aws:iam::123456789012:user/mallory"
CANARY_KEY = "CANARY-approval-key-" + "7f3a" * 12
SCANNER.add(CANARY_KEY, "the approval signing key (tests)")  # never in a log, item or page


http = urllib3.PoolManager(retries=False)


def get(url: str) -> urllib3.BaseHTTPResponse:
    return http.request("GET", url, redirect=False)


def post(url: str, token: str, comment: str = "") -> urllib3.BaseHTTPResponse:
    return http.request(
        "POST",
        url,
        body=urlencode({"t": token, "comment": comment}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        redirect=False,
    )


def token_of(url: str) -> str:
    return url.split("?t=", 1)[1]


def signing_key(moto_endpoint: str, value: str = CANARY_KEY) -> str:
    """A secret in moto holding `value`; returns its ARN."""
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    name = f"approval-key-{uuid.uuid4().hex[:8]}"
    arn: str = client.create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def stored_run(
    store: DynamoRunStore, approval: dict[str, Any], now: float, extra_steps: int = 0
) -> str:
    """A run at its approval step (started, approvers in memo), as a tick leaves it."""
    steps: list[dict[str, Any]] = [{"name": "signoff", "approval": approval, "timeout": "2h"}]
    steps += [{"name": f"after{i}", "wait": "1m"} for i in range(extra_steps)]
    definition = parse_definition(json.dumps({"steps": steps}))
    run_id = str(uuid.uuid4())
    state = engine.start(definition, run_id, now)
    state = engine.advance(definition, state, lambda: now, engine.Budget(lambda: 30.0))
    assert state.steps[0].memo["approvers"] == approval["approvers"]
    answer = Answer(kind=AnswerKind.IN_PROGRESS, run_id=run_id, summary="waiting", token="t")
    record = RunRecord(
        version=1,
        nonce="n",
        state=state,
        last_job_id=run_id,
        last_answer=answer,
        created_at=now,
        updated_at=now,
        expires_at=int(now + 86400),
    )
    store.save(record, None)
    return run_id


class Webhook(Loopback):
    """A chat webhook stand-in that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                outer.bodies.append(json.loads(self.body()))
                self.reply(200, b"ok", content_type=None)

        super().__init__(Handler, "/hooks/T0/B0/SECRET")
