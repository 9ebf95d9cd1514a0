"""`python` end to end: the handler, through the emulator, calling examples/custom_steps.py and
functions of this module by "module:function", as a deployed package would."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.steps.python import Finish, PythonContext, Wait
from tests.integration.test_steps_rig import StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = "tests.integration.test_steps_python"
release = threading.Event()


def raises(context: PythonContext) -> Wait:
    raise ConnectionError(f"ITSM unreachable for run {context.run_id}")


def hangs_once(context: PythonContext) -> Finish:
    """The first call blocks until released; later calls (if any) return at once."""
    if not context.memo.get("seen"):
        release.wait(20)
    return Finish({"hung": True})


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def countdown(polls: int) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "settle",
                "python": {
                    "callable": "examples.custom_steps:countdown",
                    "params": {"polls": polls},
                },
                "every": "1m",
            }
        ],
        "outputs": {"Calls": "steps.settle.calls", "Run": "steps.settle.run"},
    }


def test_a_callable_waits_with_its_memo_then_finishes(rig: StepsRig) -> None:
    result = rig.run(countdown(3))
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Calls": "3", "Run": result.jobs[0].job_id}
    summaries = [j.answer["params"]["executionDetails"]["summary"] for j in result.jobs if j.answer]
    assert "step 1/1 'settle': call 1 of 3" in summaries


def test_a_raising_callable_fails_the_gate_naming_it(rig: StepsRig) -> None:
    result = rig.run({"steps": [{"name": "itsm", "python": {"callable": f"{HERE}:raises"}}]})
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    run_id = result.jobs[0].job_id
    assert result.failure_message == (
        f"step 'itsm': {HERE}:raises raised ConnectionError: ITSM unreachable for run {run_id}"
    )


def test_an_unimportable_callable_is_a_configuration_error(rig: StepsRig) -> None:
    result = rig.run({"steps": [{"name": "x", "python": {"callable": "custom_stepz:check"}}]})
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        "step 'x': cannot import custom_stepz:check: "
        "ModuleNotFoundError: No module named 'custom_stepz'"
    )


def test_a_hanging_callable_never_leaves_the_job_unanswered(rig: StepsRig) -> None:
    release.clear()
    definition = {
        "steps": [
            {"name": "slow", "python": {"callable": f"{HERE}:hangs_once", "call_timeout": "300ms"}}
        ],
        "outputs": {"Hung": "steps.slow.hung"},
    }
    timer = threading.Timer(1.0, release.set)  # the call returns after ~1 s of real time
    timer.start()
    try:
        result = rig.run(definition)
    finally:
        timer.cancel()
        release.set()
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Hung": "true"}
    first = result.jobs[0].answer
    assert first is not None and first["operation"] == "PutJobSuccessResult"
    assert first["params"]["executionDetails"]["summary"] == (
        f"step 1/1 'slow': {HERE}:hangs_once did not return within 0.3s; "
        "still waiting (the call goes on in the background)"
    )
    assert "continuationToken" in first["params"]


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_repeated_deliveries_do_not_double_count_in_the_memo(rig: StepsRig, mode: str) -> None:
    result = rig.run(countdown(3), duplicates=mode, concurrency=3)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables["Calls"] == "3"  # one persisted count per advance
    for job in result.jobs:
        assert job.answer is not None and len(job.rejected) == (1 if mode == "sequential" else 2)
