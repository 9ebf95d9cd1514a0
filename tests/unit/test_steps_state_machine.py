"""The `state_machine` kind, through the engine, against a small fake of Step Functions that
keeps its start rule: same name and input while running is the same execution; otherwise a
reused name is ExecutionAlreadyExists."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import FailureType
from orchestrator.model import RunState, RunStatus
from orchestrator.steps.state_machine import execution_name
from tests.fakes import ManualClock, client_error
from tests.unit.test_steps_alarms import FakeServices

T0 = 1_800_000_000.0
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:smoke"


class FakeStepFunctions:
    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}
        self.starts = 0
        self.describes = 0
        self.errors: list[Exception] = []

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:
        self.starts += 1
        if self.errors:
            raise self.errors.pop(0)
        if not stateMachineArn.startswith("arn:aws:states:"):
            raise client_error("StateMachineDoesNotExist", operation="StartExecution")
        arn = stateMachineArn.replace(":stateMachine:", ":execution:") + f":{name}"
        existing = self.executions.get(arn)
        if existing is not None:
            if existing["input"] == input and existing["status"] == "RUNNING":
                return {"executionArn": arn}
            raise client_error("ExecutionAlreadyExists", operation="StartExecution")
        self.executions[arn] = {"input": input, "status": "RUNNING", "name": name}
        return {"executionArn": arn}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.describes += 1
        execution = self.executions[executionArn]
        return {"executionArn": executionArn, **execution}

    def finish(self, status: str, **fields: Any) -> None:
        (execution,) = self.executions.values()
        execution.update(status=status, **fields)


class Runner:
    def __init__(self, call: dict[str, Any], run_id: str = "run-1") -> None:
        step = {"name": "smoke", "state_machine": call, "every": "30s"}
        self.definition: GateDefinition = parse_definition(json.dumps({"steps": [step]}))
        self.clock = ManualClock(T0)
        self.sfn = FakeStepFunctions()
        self.state: RunState = engine.start(self.definition, run_id, T0)

    def tick(self, after: float = 0.0, state: RunState | None = None) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        services = FakeServices(stepfunctions=self.sfn)
        current = state if state is not None else self.state
        self.state = engine.advance(self.definition, current, self.clock.now, budget, services)
        return self.state


def test_starts_once_then_polls_until_it_succeeds_with_parsed_output() -> None:
    runner = Runner({"arn": MACHINE, "input": {"run": "${run.id}", "env": "prod"}})
    assert runner.tick().status is RunStatus.RUNNING
    (arn,) = runner.sfn.executions
    assert arn == f"{MACHINE.replace(':stateMachine:', ':execution:')}:run-1-smoke"
    assert json.loads(runner.sfn.executions[arn]["input"]) == {"run": "run-1", "env": "prod"}
    assert engine.summary(runner.definition, runner.state).endswith(
        "execution run-1-smoke RUNNING for 0s"
    )
    runner.tick(30)
    runner.tick(30)
    assert runner.sfn.starts == 1 and runner.sfn.describes == 3
    runner.sfn.finish("SUCCEEDED", output=json.dumps({"ok": True}))
    assert runner.tick(30).status is RunStatus.SUCCEEDED
    assert runner.state.steps[0].result == {
        "execution_arn": arn,
        "name": "run-1-smoke",
        "status": "SUCCEEDED",
        "output": {"ok": True},
    }


def test_a_failed_execution_fails_the_gate_naming_it_with_error_and_cause() -> None:
    runner = Runner({"arn": MACHINE})
    runner.tick()
    runner.sfn.finish("FAILED", error="States.TaskFailed", cause="smoke test 3 failed")
    state = runner.tick(30)
    assert state.status is RunStatus.FAILED and state.failure is not None
    (arn,) = runner.sfn.executions
    assert state.failure.message == (
        f"step 'smoke': execution {arn} FAILED: States.TaskFailed: smoke test 3 failed"
    )


def test_a_lost_write_or_a_sibling_delivery_never_starts_a_second_execution() -> None:
    runner = Runner({"arn": MACHINE, "input": {"a": 1}})
    before = runner.state
    runner.tick()
    # The same tick again from the same stored state (its write was lost, or it ran twice):
    # the same name and input while running is Step Functions' idempotent start...
    assert runner.tick(state=before).status is RunStatus.RUNNING
    # ...and once the execution ended, a reused name is ExecutionAlreadyExists: "started".
    runner.sfn.finish("SUCCEEDED", output="{}")
    assert runner.tick(state=before).status is RunStatus.SUCCEEDED
    assert len(runner.sfn.executions) == 1 and runner.sfn.starts == 3


def test_throttling_is_retried_and_a_missing_machine_is_a_configuration_error() -> None:
    runner = Runner({"arn": MACHINE})
    runner.sfn.errors.append(client_error("ThrottlingException", operation="StartExecution"))
    assert runner.tick().status is RunStatus.RUNNING
    assert (
        runner.state.steps[0].detail == "Step Functions unavailable (ThrottlingException); retrying"
    )
    assert runner.sfn.executions == {}
    runner.tick(30)
    assert len(runner.sfn.executions) == 1
    runner = Runner({"arn": MACHINE})
    runner.sfn.errors.append(client_error("StateMachineDoesNotExist", operation="StartExecution"))
    state = runner.tick()
    assert state.failure is not None
    assert state.failure.type is FailureType.CONFIGURATION_ERROR
    assert state.failure.message == f"step 'smoke': starting {MACHINE}: StateMachineDoesNotExist"


def test_execution_names_are_short_safe_and_deterministic() -> None:
    uuid = "3f2b8c1e-9d4a-4c6b-8e2f-1a2b3c4d5e6f"
    assert execution_name(uuid, "smoke") == f"{uuid}-smoke"
    long_a, long_b = execution_name(uuid, "x" * 60 + "a"), execution_name(uuid, "x" * 60 + "b")
    assert len(long_a) == 80 and long_a != long_b
    assert long_a == execution_name(uuid, "x" * 60 + "a")


@given(st.text(min_size=1, max_size=100), st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
def test_any_run_id_and_step_give_a_valid_execution_name(run_id: str, step: str) -> None:
    name = execution_name(run_id, step)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    assert name == execution_name(run_id, step)
    assert name != execution_name(run_id + "x", step)
