"""`orchestrator approve|reject` through typer's CliRunner: the caller's identity from STS
(moto's, a fixed `arn:aws:sts::123456789012:user/moto`), the run in DynamoDB Local, and
the gate advanced by the real handler answering the CodePipeline emulator."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator import handler
from orchestrator.approval.decide import decide
from orchestrator.cli import app
from orchestrator.local.driver import LambdaContext
from orchestrator.store.dynamodb import DynamoRunStore, bind_model

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.clock import VirtualClock
    from orchestrator.local.emulator import CodePipelineEmulator

MOTO = "arn:aws:sts::123456789012:user/moto"
ALICE = "arn:aws:iam::123456789012:user/alice"
runner = CliRunner()


class Gate:
    """One gate, advanced job by job through the handler."""

    def __init__(self, emulator: CodePipelineEmulator, clock: VirtualClock, table: str) -> None:
        self.emulator, self.clock = emulator, clock
        self.store = DynamoRunStore(bind_model(table))
        self.config: dict[str, str] = {}
        self.token: str | None = None
        self.run_id = ""
        self.execution = str(uuid.uuid4())
        self.trigger: dict[str, str] | None = None

    def start(self, approvers: list[str] | None, **policy: Any) -> dict[str, Any]:
        approval = {"message": "Ship it?", **policy}
        if approvers is not None:
            approval["approvers"] = approvers
        steps = [{"name": "bake", "wait": "1m"}, {"name": "signoff", "approval": approval}]
        definition = {"steps": steps, "outputs": {"By": "steps.signoff.approved_by[0]"}}
        self.config = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
        first = self.tick()
        self.run_id = first["params"]["executionDetails"]["externalExecutionId"]
        self.clock.advance(61)
        return self.tick()

    def tick(self) -> dict[str, Any]:
        handler.use(handler.build_app(self.clock))  # the CLI's LocalStack resets the warm app
        job = self.emulator.create_job(
            self.config,
            continuation_token=self.token,
            pipeline_execution_id=self.execution,
            trigger=self.trigger,
        )
        handler.lambda_handler(job.event, LambdaContext(60))
        assert job.answer is not None
        self.token = job.answer["params"].get("continuationToken")
        self.clock.advance(30)
        answer: dict[str, Any] = job.answer
        return answer

    def decisions(self) -> dict[str, Any]:
        record = self.store.load(self.run_id)
        assert record is not None
        return record.signals.decisions.get("signoff", {})


@pytest.fixture
def shared(table_name: str, tmp_path: Path) -> list[str]:
    return ["--table", table_name, "--data-dir", str(tmp_path)]


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_approve_as_the_sts_identity_completes_the_gate(gate: Gate, shared: list[str]) -> None:
    waiting = gate.start([MOTO, ALICE])
    assert "'signoff': waiting for approval: 0/1 approvals" in json.dumps(waiting)
    result = cli("approve", gate.run_id, "--comment", "lgtm", *shared)
    assert result.exit_code == 0, result.output
    assert f"approve of step 'signoff' of run {gate.run_id} recorded for {MOTO}" in result.output
    assert "(1/1 approvals)" in result.output
    decision = gate.decisions()[MOTO]
    assert (decision["decision"], decision["comment"], decision["via"]) == (
        "approve",
        "lgtm",
        "cli",
    )
    final = gate.tick()
    assert final["operation"] == "PutJobSuccessResult", final
    assert final["params"]["outputVariables"] == {"By": MOTO}


def test_reject_fails_the_gate_naming_the_caller_and_the_reason(
    gate: Gate, shared: list[str]
) -> None:
    gate.start(["arn:aws:sts::123456789012:*"])
    result = cli(
        "reject", gate.run_id, "--step", "signoff", "--comment", "not on a Friday", *shared
    )
    assert result.exit_code == 0, result.output
    final = gate.tick()
    assert final["operation"] == "PutJobFailureResult"
    details = final["params"]["failureDetails"]
    assert details["type"] == "JobFailed"
    assert details["message"] == f"step 'signoff': rejected by {MOTO}: not on a Friday"


def test_decisions_that_cannot_count_are_refused(gate: Gate, shared: list[str]) -> None:
    gate.start([ALICE])
    refused = cli("approve", gate.run_id, *shared)
    assert refused.exit_code == 1
    assert f"not recorded: {MOTO} is not an approver of step 'signoff'" in refused.output
    assert gate.decisions() == {}
    for args, reason in (
        (["--step", "bake"], "step 'bake' is not an approval step"),
        (["--step", "nope"], "has no step 'nope'"),
    ):
        result = cli("approve", gate.run_id, *args, *shared)
        assert result.exit_code == 1 and reason in result.output
    unknown = cli("approve", "no-such-run", *shared)
    assert unknown.exit_code == 1 and "run no-such-run is not in the runs table" in unknown.output


def test_one_decision_per_person(gate: Gate, shared: list[str]) -> None:
    gate.start([MOTO, ALICE])
    assert cli("approve", gate.run_id, *shared).exit_code == 0
    again = cli("reject", gate.run_id, "--comment", "changed my mind", *shared)
    assert again.exit_code == 1
    assert f"{MOTO} already decided step 'signoff' (approve)" in again.output
    assert gate.decisions()[MOTO]["decision"] == "approve"


def test_a_reject_needs_a_reason_and_nobody_can_decide_as_someone_else(
    gate: Gate, shared: list[str]
) -> None:
    gate.start([MOTO])
    assert cli("reject", gate.run_id, *shared).exit_code == 2
    blank = cli("reject", gate.run_id, "--comment", "  ", *shared)
    assert blank.exit_code == 2 and "a rejection needs a reason" in blank.output
    impersonate = cli("approve", gate.run_id, "--as", ALICE, *shared)
    assert impersonate.exit_code == 2 and "No such option" in impersonate.output
    assert gate.decisions() == {}


def test_without_sts_nothing_is_recorded(
    gate: Gate, shared: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate.start([MOTO])
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = cli("approve", gate.run_id, *shared)
    assert result.exit_code == 1
    assert "cannot tell who you are: STS GetCallerIdentity failed" in result.output
    assert gate.decisions() == {}


def test_help() -> None:
    for command in ("approve", "reject"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "AWS identity" in result.output


def test_the_initiator_is_refused_and_a_group_quorum_needs_every_group(
    gate: Gate, shared: list[str]
) -> None:
    """exclude_initiator and groups through the real handler, the emulator's
    GetPipelineExecution and DynamoDB Local; the CLI as the initiator (moto's identity)."""
    gate.trigger = {"triggerType": "StartPipelineExecution", "triggerDetail": MOTO}
    groups = {
        "sre": [MOTO, "email:*@sre.example.com"],
        "security": ["slack:U0SEC0001", "email:sec@example.com"],
    }
    waiting = gate.start(
        None,
        groups=groups,
        required={"sre": 1, "security": 1},
        exclude_initiator=True,
    )
    assert waiting["operation"] == "PutJobSuccessResult", waiting
    refused = cli("approve", gate.run_id, "--comment", "my own change", *shared)
    assert refused.exit_code == 1
    assert (
        f"not recorded: {MOTO} started this pipeline execution and cannot decide step "
        "'signoff' (exclude_initiator): ask another approver"
    ) in refused.output
    assert gate.decisions() == {}

    # The page (an OIDC sign-in) and Slack decide through the same decide().
    decide(gate.store, gate.run_id, None, "email:Ann@SRE.example.com", "approve", "sre ok",
           gate.clock.now(), via="oidc", source_ip="203.0.113.7")  # fmt: skip
    two_sre = gate.tick()
    summary = two_sre["params"]["executionDetails"]["summary"]
    assert (
        two_sre["operation"] == "PutJobSuccessResult" and "continuationToken" in two_sre["params"]
    )
    assert summary.endswith(
        "waiting for approval: 1/2 approvals (email:ann@sre.example.com); needs 1 from security"
    ), summary
    decide(gate.store, gate.run_id, None, "slack:U0SEC0001", "approve", "", gate.clock.now(),
           via="slack")  # fmt: skip
    final = gate.tick()
    assert final["operation"] == "PutJobSuccessResult", final
    assert final["params"]["outputVariables"] == {"By": "email:ann@sre.example.com"}
    assert "continuationToken" not in final["params"]

    status = cli("status", gate.run_id, *shared)
    assert status.exit_code == 0, status.output
    lines = [line for line in status.output.splitlines() if line.startswith("decision on")]
    assert len(lines) == 2, status.output
    assert re.fullmatch(
        r"decision on 'signoff': approve by email:ann@sre\.example\.com via oidc at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC from 203\.0\.113\.7: sre ok",
        lines[0],
    ), lines
    assert lines[1].startswith("decision on 'signoff': approve by slack:U0SEC0001 via slack at ")
    as_json = json.loads(cli("status", gate.run_id, "--json", *shared).output)
    assert as_json["decisions"]["signoff"]["slack:U0SEC0001"]["via"] == "slack"
