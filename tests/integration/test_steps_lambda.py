"""`lambda` end to end: the handler, through the emulator, invoking functions over a real
socket with boto3, on the local Lambda peer (`tests/lambda_peer.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_steps_rig import StepsRig, steps_rig
from tests.lambda_peer import LambdaPeer, checks

if TYPE_CHECKING:
    from collections.abc import Iterator


def broken(payload: Any) -> tuple[int, dict[str, str], Any]:
    error = {"errorType": "ValueError", "errorMessage": "canary error rate 7% > 1%"}
    return 200, {"X-Amz-Function-Error": "Unhandled"}, error


@pytest.fixture
def peer() -> Iterator[LambdaPeer]:
    with LambdaPeer({"checks": checks, "broken": broken}) as server:
        yield server


@pytest.fixture
def rig(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, peer: LambdaPeer
) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch, {"LAMBDA": peer.url}) as built:
        yield built


def gate(function: str) -> dict[str, Any]:
    return {
        "steps": [
            {"name": "bake", "wait": "2m"},
            {"name": "check", "lambda": {"function": function, "payload": {"run": "${run.id}"}}},
        ],
        "outputs": {"Healthy": "steps.check.healthy"},
    }


def test_the_function_is_invoked_once_and_its_response_kept(
    rig: StepsRig, peer: LambdaPeer
) -> None:
    result = rig.run(gate("checks"))
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Healthy": "true"}
    assert peer.calls == [("checks", {"run": result.jobs[0].job_id}, "RequestResponse")]


def test_a_function_error_fails_the_gate_with_its_message(rig: StepsRig, peer: LambdaPeer) -> None:
    result = rig.run(gate("broken"))
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert result.failure_message == (
        "step 'check': function broken failed: ValueError: canary error rate 7% > 1%"
    )
    assert len(peer.calls) == 1


def test_an_unknown_function_is_a_configuration_error(rig: StepsRig) -> None:
    result = rig.run(gate("nope"))
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        "step 'check': invoking nope: ResourceNotFoundException (Function not found: nope)"
    )


def test_a_job_delivered_twice_in_a_row_invokes_once(rig: StepsRig, peer: LambdaPeer) -> None:
    result = rig.run(gate("checks"), duplicates="sequential")
    assert result.status == "Succeeded", result.failure_message
    assert len(peer.calls) == 1
    for job in result.jobs:
        assert job.answer is not None and len(job.rejected) == 1


def test_concurrent_deliveries_invoke_once(rig: StepsRig, peer: LambdaPeer) -> None:
    """Three deliveries of every job at the same moment: the attempt is claimed in the
    table before invoking, so the function runs once and the run advances once."""
    result = rig.run(gate("checks"), duplicates="concurrent", concurrency=3)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Healthy": "true"}
    assert len(peer.calls) == 1, peer.calls
    for job in result.jobs:
        assert job.answer is not None and len(job.rejected) == 2


def test_a_gate_that_starts_with_a_lambda_step_invokes_on_its_second_tick(
    rig: StepsRig, peer: LambdaPeer
) -> None:
    definition = {"steps": [gate("checks")["steps"][1]], "outputs": {"Run": "steps.check.run"}}
    result = rig.run(definition, duplicates="concurrent", concurrency=2)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Run": result.jobs[0].job_id}
    assert len(peer.calls) == 1, peer.calls
    first = result.jobs[0].answer
    assert first is not None
    assert first["params"]["executionDetails"]["summary"] == (
        "step 1/1 'check': claiming the invocation of checks"
    )
