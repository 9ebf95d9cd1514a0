"""The `python` kind, through the engine, calling functions of this module (and of
examples/custom_steps.py) as a definition would: by "module:function"."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import FailureType
from orchestrator.model import RunState, RunStatus
from orchestrator.steps.python import Fail, Finish, PythonContext, Wait
from tests.fakes import ManualClock

T0 = 1_800_000_000.0  # a Friday, 08:00 UTC
HERE = "tests.unit.test_steps_python"
release = threading.Event()
seen: list[PythonContext] = []
threads: list[threading.Thread] = []


def fails(context: PythonContext) -> Fail:
    return Fail(f"change window closed for {context.params['service']}")


def raises(context: PythonContext) -> Wait:
    raise RuntimeError("ITSM said 503")


def slow(context: PythonContext) -> Finish:
    seen.append(context)
    threads.append(threading.current_thread())
    release.wait(10)
    return Finish({"slow": True})


def bad_memo(context: PythonContext) -> Wait:
    context.memo["when"] = datetime.now(UTC)
    return Wait("x")


def returns_none(context: PythonContext) -> None:
    seen.append(context)


def tries_to_write_the_run(context: PythonContext) -> Finish:
    context.run["steps"]["x"] = 1
    return Finish()


class Runner:
    def __init__(self, python: dict[str, Any], **step: Any) -> None:
        body = {"name": "custom", "python": python, "every": "1m", **step}
        self.definition: GateDefinition = parse_definition(json.dumps({"steps": [body]}))
        self.clock = ManualClock(T0)
        self.state: RunState = engine.start(self.definition, "run-1", T0)

    def tick(self, after: float = 0.0, time_left: float = 60.0) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: time_left, reserve=0.0)
        self.state = engine.advance(self.definition, self.state, self.clock.now, budget, None)
        return self.state

    @property
    def detail(self) -> str:
        return self.state.steps[0].detail


def test_memo_carries_state_between_polls_until_finish() -> None:
    runner = Runner({"callable": "examples.custom_steps:countdown", "params": {"polls": 3}})
    assert runner.tick().status is RunStatus.RUNNING
    assert runner.detail == "call 1 of 3"
    assert runner.tick(60).status is RunStatus.RUNNING
    assert runner.state.steps[0].memo["python"] == {"calls": 2}
    assert runner.tick(60).status is RunStatus.SUCCEEDED
    assert runner.state.steps[0].result == {"calls": 3, "run": "run-1"}


def test_wait_sets_the_next_check_and_finish_its_result() -> None:
    runner = Runner({"callable": "examples.custom_steps:business_hours", "params": {"start": 9}})
    assert runner.tick().status is RunStatus.RUNNING
    assert runner.detail == "outside the deployment window; opens Fri 09:00Z"
    assert runner.state.steps[0].next_check == T0 + 3600
    assert runner.tick(3600).status is RunStatus.SUCCEEDED
    assert runner.state.steps[0].result == {"opened_at": "2027-01-15T09:00:00Z"}
    assert datetime.fromtimestamp(T0, UTC).weekday() == 4


def test_fail_fails_the_gate_with_its_message() -> None:
    state = Runner({"callable": f"{HERE}:fails", "params": {"service": "checkout"}}).tick()
    assert state.failure is not None
    assert state.failure.message == "step 'custom': change window closed for checkout"


def test_an_exception_fails_the_step_retryably() -> None:
    runner = Runner({"callable": f"{HERE}:raises"}, retry={"attempts": 2, "backoff": "30s"})
    assert runner.tick().status is RunStatus.RUNNING
    assert runner.detail == (
        f"step 'custom': {HERE}:raises raised RuntimeError: ITSM said 503; retry 1/1 in 30s"
    )
    state = runner.tick(30)
    assert state.failure is not None
    assert state.failure.message.endswith("ITSM said 503 (gave up after 2 attempts)")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("no_such_module_xyz:f", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        (f"{HERE}:missing", f"AttributeError: module '{HERE}' has no attribute 'missing'"),
        (f"{HERE}:T0", f"TypeError: {HERE}:T0 is not callable"),
    ],
)
def test_an_import_error_is_a_configuration_error_naming_the_callable(
    target: str, reason: str
) -> None:
    state = Runner({"callable": target}).tick()
    assert state.failure is not None
    assert state.failure.type is FailureType.CONFIGURATION_ERROR
    assert state.failure.message == f"step 'custom': cannot import {target}: {reason}"


def test_a_hanging_call_is_still_waiting_and_a_later_poll_collects_it() -> None:
    release.clear()
    seen.clear()
    threads.clear()
    runner = Runner({"callable": f"{HERE}:slow", "call_timeout": "200ms"})
    started = time.monotonic()
    assert runner.tick().status is RunStatus.RUNNING
    assert time.monotonic() - started < 2
    assert runner.detail == (
        f"{HERE}:slow did not return within 0.2s; "
        "still waiting (the call goes on in the background)"
    )
    (thread,) = threads
    assert thread.name == "python-step-custom" and thread.daemon and thread.is_alive()
    release.set()
    thread.join(5)
    assert runner.tick(60).status is RunStatus.SUCCEEDED
    assert runner.state.steps[0].result == {"slow": True}
    assert len(seen) == 1  # the same call was collected, not a new one made


def test_the_call_never_gets_more_time_than_the_invocation_has() -> None:
    release.clear()
    runner = Runner({"callable": f"{HERE}:slow", "call_timeout": "60s"})
    started = time.monotonic()
    assert runner.tick(time_left=0.3).status is RunStatus.RUNNING
    assert time.monotonic() - started < 2
    release.set()
    assert runner.tick(60).status is RunStatus.SUCCEEDED


def test_results_and_memos_must_be_json_and_the_return_a_known_type() -> None:
    state = Runner({"callable": f"{HERE}:bad_memo"}).tick()
    assert state.failure is not None
    assert state.failure.message.startswith(f"step 'custom': {HERE}:bad_memo left a memo")
    state = Runner({"callable": f"{HERE}:returns_none", "params": {"a": [1]}}).tick()
    assert state.failure is not None
    assert state.failure.message == (
        f"step 'custom': {HERE}:returns_none returned NoneType; expected Wait, Finish or Fail"
    )
    assert seen[-1].params == {"a": [1]} and seen[-1].run["run"]["id"] == "run-1"


def test_the_run_context_is_read_only() -> None:
    state = Runner({"callable": f"{HERE}:tries_to_write_the_run"}).tick()
    assert state.failure is not None
    assert "raised TypeError" in state.failure.message


def test_callables_are_checked_in_the_definition() -> None:
    from orchestrator.exceptions import DefinitionError

    with pytest.raises(DefinitionError) as caught:
        Runner({"callable": "not a callable"})
    assert caught.value.errors[0].startswith("steps[0].python.callable: String should match")
