"""`state_machine` end to end: the handler, through the emulator, running real executions on
moto's Step Functions with its ASL interpreter on (`stepfunctions.execute_state_machine`),
so Pass, Wait and Fail states really run, and SUCCEEDED and FAILED come from them."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_steps_rig import StepsRig, moto_config, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

ROLE = "arn:aws:iam::123456789012:role/sfn"
SMOKE = {
    "StartAt": "Settle",
    "States": {
        "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Report"},
        "Report": {
            "Type": "Pass",
            "Parameters": {"run.$": "$.run", "checked.$": "$.checks", "verdict": "green"},
            "End": True,
        },
    },
}
INSTANT = {  # ends within milliseconds: later starts with its name meet a finished execution
    "StartAt": "Report",
    "States": {
        "Report": {
            "Type": "Pass",
            "Parameters": {"verdict": "green", "run.$": "$.run"},
            "End": True,
        }
    },
}
BROKEN = {
    "StartAt": "Boom",
    "States": {"Boom": {"Type": "Fail", "Error": "Smoke.Failed", "Cause": "3 of 12 checks red"}},
}


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    on = {"stepfunctions": {"execute_state_machine": True}}
    off = {"stepfunctions": {"execute_state_machine": False}}
    with (
        moto_config(moto_endpoint, on, off),
        steps_rig(table_name, moto_endpoint, monkeypatch) as built,
    ):
        yield built


def machine(rig: StepsRig, definition: dict[str, Any]) -> str:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    created = rig.aws("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE
    )
    return str(created["stateMachineArn"])


def executions(rig: StepsRig, arn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = rig.aws("stepfunctions").list_executions(stateMachineArn=arn)[
        "executions"
    ]
    return found


def gate(arn: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "smoke",
                "state_machine": {"arn": arn, "input": {"run": "${run.id}", "checks": 12}},
                "every": "30s",
            }
        ],
        "outputs": {"Verdict": "steps.smoke.output.verdict", "Run": "steps.smoke.output.run"},
    }


def test_a_succeeding_execution_passes_the_gate_with_its_output(rig: StepsRig) -> None:
    arn = machine(rig, SMOKE)
    result = rig.run(gate(arn))
    assert result.status == "Succeeded", result.failure_message
    run_id = result.jobs[0].job_id
    assert result.output_variables == {"Verdict": "green", "Run": run_id}
    (execution,) = executions(rig, arn)
    assert execution["name"] == f"{run_id}-smoke" and execution["status"] == "SUCCEEDED"
    assert result.rounds >= 2  # the Wait state kept it RUNNING for a while


def test_a_failing_execution_fails_the_gate_with_error_and_cause(rig: StepsRig) -> None:
    arn = machine(rig, BROKEN)
    result = rig.run(gate(arn))
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    (execution,) = executions(rig, arn)
    assert result.failure_message == (
        f"step 'smoke': execution {execution['executionArn']} FAILED: "
        "Smoke.Failed: 3 of 12 checks red"
    )


def test_a_missing_state_machine_is_a_configuration_error(rig: StepsRig) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:does-not-exist"
    result = rig.run(gate(arn))
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == f"step 'smoke': starting {arn}: StateMachineDoesNotExist"


@pytest.mark.parametrize(
    ("mode", "definition"),
    [("sequential", SMOKE), ("concurrent", SMOKE), ("concurrent", INSTANT)],
    ids=["sequential", "concurrent", "concurrent-instant"],
)
def test_every_job_delivered_twice_still_starts_one_execution(
    rig: StepsRig, mode: str, definition: dict[str, Any]
) -> None:
    arn = machine(rig, definition)
    result = rig.run(gate(arn), duplicates=mode, concurrency=4)
    assert result.status == "Succeeded", result.failure_message
    assert len(executions(rig, arn)) == 1
    copies = 2 if mode == "sequential" else 4
    assert result.invocations == copies * result.rounds
    for job in result.jobs:
        assert job.answer is not None and len(job.rejected) == copies - 1
