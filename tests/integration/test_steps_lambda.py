"""`lambda` end to end: the handler, through the emulator, invoking functions over a real
socket with boto3.

moto can invoke without docker only through its "simple" backend, which always succeeds
(it cannot return a function error). So the functions here live in a small local server
speaking Lambda's Invoke REST API (`POST /2015-03-31/functions/{name}/invocations`,
`X-Amz-Function-Error` on a function error, `x-amzn-ErrorType` on an API error), with
AWS_ENDPOINT_URL_LAMBDA pointed at it: a real peer for botocore, not a mock of our code."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest

from tests.http_stub import Loopback, QuietHandler
from tests.integration.test_steps_rig import StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PREFIX = "/2015-03-31/functions/"


class LambdaPeer(Loopback):
    """Functions by name, each `payload -> (status, extra headers, body)`; records every call."""

    def __init__(self, functions: dict[str, Callable[[Any], tuple[int, dict[str, str], Any]]]):
        self.functions = functions
        self.calls: list[tuple[str, Any, str]] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.body() or b"null")
                name = unquote(self.path.removeprefix(PREFIX).split("/invocations")[0])
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                with peer._lock:
                    peer.calls.append((name, payload, kind))
                function = peer.functions.get(name)
                if not self.path.startswith(PREFIX) or function is None:
                    status, headers, body = (
                        404,
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                        {"Type": "User", "message": f"Function not found: {name}"},
                    )
                else:
                    status, headers, body = function(payload)
                self.reply(status, json.dumps(body).encode(), headers)

        super().__init__(Handler)


def checks(payload: Any) -> tuple[int, dict[str, str], Any]:
    return 200, {"X-Amz-Executed-Version": "$LATEST"}, {"healthy": True, "run": payload["run"]}


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
