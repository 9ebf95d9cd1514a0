"""The `lambda` kind, through the engine, against a fake Lambda client answering as boto3's
does (a StreamingBody payload, `FunctionError` on a function error, ClientError otherwise)."""

from __future__ import annotations

import io
import json
from typing import Any

from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.model import FailureType, RunState, RunStatus
from tests.fakes import ManualClock
from tests.unit.test_steps_alarms import FakeServices, client_error

T0 = 1_800_000_000.0


class FakeLambda:
    """Answers from a script, one entry per Invoke: an exception, or (function error, body)."""

    def __init__(self, script: list[Exception | tuple[str | None, Any]]) -> None:
        self.script = script
        self.invocations: list[tuple[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        self.invocations.append((FunctionName, json.loads(Payload)))
        entry = self.script.pop(0)
        if isinstance(entry, Exception):
            raise entry
        error, body = entry
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": StreamingBody(io.BytesIO(raw), len(raw)),
        }
        if error is not None:
            response["FunctionError"] = error
        return response


class Runner:
    def __init__(self, step: dict[str, Any], script: list[Any]) -> None:
        steps = [{"name": "first", "wait": "1s"}, {"name": "check", **step}]
        self.definition: GateDefinition = parse_definition(json.dumps({"steps": steps}))
        self.clock = ManualClock(T0)
        self.function = FakeLambda(script)
        self.state: RunState = engine.start(self.definition, "run-1", T0)

    def tick(self, after: float = 0.0) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        services = FakeServices(**{"lambda": self.function})
        self.state = engine.advance(self.definition, self.state, self.clock.now, budget, services)
        return self.state


def test_invokes_once_with_the_templated_payload_and_keeps_the_response() -> None:
    step = {
        "lambda": {
            "function": "checks",
            "payload": {"run": "${run.id}", "waited": "${steps.first}"},
        }
    }
    runner = Runner(step, [(None, {"healthy": True, "score": 0.98})])
    runner.tick()
    assert runner.tick(1).status is RunStatus.SUCCEEDED
    assert runner.function.invocations == [
        ("checks", {"run": "run-1", "waited": {"waited_seconds": 1.0}})
    ]
    assert runner.state.steps[1].result == {"healthy": True, "score": 0.98}


def test_a_function_error_fails_with_its_message_and_is_not_retried() -> None:
    error = {"errorType": "ValueError", "errorMessage": "canary error rate 7% > 1%"}
    step = {"lambda": {"function": "checks"}, "retry": {"attempts": 3, "backoff": "1s"}}
    runner = Runner(step, [("Unhandled", error)])
    runner.tick()
    state = runner.tick(1)
    assert state.status is RunStatus.FAILED and state.failure is not None
    assert state.failure.message == (
        "step 'check': function checks failed: ValueError: canary error rate 7% > 1%"
    )
    assert len(runner.function.invocations) == 1


def test_throttling_and_5xx_are_retried_when_the_step_has_retry() -> None:
    step = {"lambda": {"function": "checks"}, "retry": {"attempts": 3, "backoff": "10s"}}
    script: list[Any] = [
        client_error("TooManyRequestsException", 429, "Invoke"),
        client_error("ServiceException", 500, "Invoke"),
        (None, {"ok": 1}),
    ]
    runner = Runner(step, script)
    runner.tick()
    assert runner.tick(1).status is RunStatus.RUNNING
    assert runner.state.steps[1].detail.startswith(
        "step 'check': invoking checks: TooManyRequestsException"
    )
    assert runner.state.steps[1].detail.endswith("; retry 1/2 in 10s")
    assert runner.tick(10).status is RunStatus.RUNNING
    assert runner.tick(20).status is RunStatus.SUCCEEDED
    assert len(runner.function.invocations) == 3


def test_other_errors_fail_without_retry_and_with_their_type() -> None:
    step = {"lambda": {"function": "nope"}, "retry": {"attempts": 3}}
    cases: list[tuple[Exception, FailureType, str]] = [
        (
            client_error("ResourceNotFoundException", 404, "Invoke"),
            FailureType.CONFIGURATION_ERROR,
            "step 'check': invoking nope: ResourceNotFoundException (ResourceNotFoundException)",
        ),
        (
            client_error("AccessDeniedException", 403, "Invoke"),
            FailureType.PERMISSION_ERROR,
            "step 'check': invoking nope: AccessDeniedException (AccessDeniedException)",
        ),
        (
            ReadTimeoutError(endpoint_url="https://lambda"),
            FailureType.JOB_FAILED,
            "step 'check': no response from function nope (ReadTimeoutError); it may have run",
        ),
    ]
    for error, failure_type, message in cases:
        runner = Runner(step, [error])
        runner.tick()
        state = runner.tick(1)
        assert state.failure is not None
        assert (state.failure.type, state.failure.message) == (failure_type, message)


def test_an_unreachable_endpoint_is_retryable_and_text_responses_are_kept_as_text() -> None:
    step = {"lambda": {"function": "f"}, "retry": {"attempts": 2, "backoff": "5s"}}
    runner = Runner(step, [EndpointConnectionError(endpoint_url="https://x"), (None, b"plain")])
    runner.tick()
    assert runner.tick(1).status is RunStatus.RUNNING
    assert runner.tick(5).status is RunStatus.SUCCEEDED
    assert runner.state.steps[1].result == "plain"
