"""The `lambda` kind, through the engine, against a fake Lambda client answering as boto3's
does (a StreamingBody payload, `FunctionError` on a function error, ClientError otherwise)."""

from __future__ import annotations

import copy
import io
import json
import time
from typing import Any

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import FailureType
from orchestrator.model import RunState, RunStatus, Signals
from orchestrator.targets import RoleDenied, RoleUnavailable
from tests.fakes import ManualClock, client_error
from tests.unit.test_steps_alarms import FakeServices

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


class Claims:
    """The store's once-per-key write into a step's claims, as the ticker provides it;
    `lose_answers` claims are written but reported as failed (their response was lost)."""

    def __init__(self) -> None:
        self.claims: dict[str, dict[str, Any]] = {}
        self.lose_answers = 0

    def __call__(self, step: str, key: str, value: dict[str, Any]) -> bool:
        slot = self.claims.setdefault(step, {})
        if key in slot:
            return False
        slot[key] = value
        if self.lose_answers:
            self.lose_answers -= 1
            return False
        return True


class Runner:
    def __init__(
        self, step: dict[str, Any], script: list[Any], claims: Claims | None = None
    ) -> None:
        steps = [{"name": "first", "wait": "1s"}, {"name": "check", **step}]
        self.definition: GateDefinition = parse_definition(json.dumps({"steps": steps}))
        self.clock = ManualClock(T0)
        self.function = FakeLambda(script)
        self.claims = claims
        self.state: RunState = engine.start(self.definition, "run-1", T0)
        self.role_error: Exception | None = None

    def tick(self, after: float = 0.0) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        services = FakeServices(**{"lambda": self.function})
        services.role_error = self.role_error
        signals = None
        if self.claims is not None:  # as the ticker does: the claims stored so far
            signals = Signals(claims=copy.deepcopy(self.claims.claims))
        self.state = engine.advance(
            self.definition, self.state, self.clock.now, budget, services, self.claims, signals
        )
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
        (  # a 502 that no retry mends: Lambda cannot decrypt the function's environment
            client_error("KMSAccessDeniedException", 502, "Invoke"),
            FailureType.PERMISSION_ERROR,
            "step 'check': invoking nope: KMSAccessDeniedException (KMSAccessDeniedException)",
        ),
        (
            ReadTimeoutError(endpoint_url="https://lambda"),
            FailureType.JOB_FAILED,
            "step 'check': no response from function nope (ReadTimeoutError); it may have run",
        ),
        (
            ConnectionClosedError(endpoint_url="https://lambda"),
            FailureType.JOB_FAILED,
            "step 'check': no response from function nope (ConnectionClosedError); it may have run",
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


# -- claims: one invocation per attempt, however many deliveries poll ----------------------


def test_the_attempt_is_claimed_before_invoking_and_its_outcome_recorded() -> None:
    claims = Claims()
    runner = Runner({"lambda": {"function": "checks"}}, [(None, {"ok": 1})], claims)
    runner.tick()
    assert runner.tick(1).status is RunStatus.SUCCEEDED
    assert len(runner.function.invocations) == 1
    recorded = claims.claims["check"]
    assert recorded["invoke-0"]["by"] == runner.state.steps[1].memo["claim"]
    assert recorded["result-0"] == {"result": {"ok": 1}}


def test_an_attempt_claimed_elsewhere_waits_then_takes_the_recorded_outcome() -> None:
    claims = Claims()
    claims.claims["check"] = {"invoke-0": {"at": time.time(), "by": "another-delivery"}}
    runner = Runner({"lambda": {"function": "checks"}}, [], claims)
    runner.tick()
    assert runner.tick(1).status is RunStatus.RUNNING
    assert runner.state.steps[1].detail == "another delivery is invoking checks"
    assert runner.tick(5).status is RunStatus.RUNNING  # not due again before 10 s
    claims.claims["check"]["result-0"] = {"result": {"ok": 2}}
    assert runner.tick(5).status is RunStatus.SUCCEEDED
    assert runner.state.steps[1].result == {"ok": 2}
    assert runner.function.invocations == []


def test_a_claim_that_never_recorded_an_outcome_fails_saying_the_function_may_have_run() -> None:
    claims = Claims()
    claims.claims["check"] = {"invoke-0": {"at": time.time() - 1000, "by": "crashed"}}
    runner = Runner({"lambda": {"function": "checks"}}, [], claims)
    runner.tick()
    state = runner.tick(1)
    assert state.failure is not None
    assert state.failure.message.startswith(
        "step 'check': the invocation of checks claimed 1000s ago never recorded an outcome"
    )
    assert state.failure.message.endswith("; the function may have run")
    assert runner.function.invocations == []


def test_a_claim_whose_answer_was_lost_is_the_runs_own_at_the_next_tick() -> None:
    claims = Claims()
    claims.lose_answers = 1
    runner = Runner({"lambda": {"function": "checks"}}, [(None, {"ok": 3})], claims)
    runner.tick()
    assert runner.tick(1).status is RunStatus.RUNNING
    assert runner.state.steps[1].detail == "claiming the invocation of checks"
    assert runner.function.invocations == []
    assert runner.tick(10).status is RunStatus.SUCCEEDED
    assert len(runner.function.invocations) == 1


def test_a_recorded_retryable_failure_is_retried_under_a_new_claim() -> None:
    claims = Claims()
    claims.claims["check"] = {
        "invoke-0": {"at": time.time(), "by": "another-delivery"},
        "result-0": {"failed": "throttled", "failure_type": None, "retryable": True},
    }
    step = {"lambda": {"function": "checks"}, "retry": {"attempts": 2, "backoff": "5s"}}
    runner = Runner(step, [(None, {"ok": 4})], claims)
    runner.tick()
    assert runner.tick(1).status is RunStatus.RUNNING
    assert runner.state.steps[1].detail == "throttled; retry 1/1 in 5s"
    assert runner.function.invocations == []
    assert runner.tick(5).status is RunStatus.SUCCEEDED
    assert len(runner.function.invocations) == 1
    assert claims.claims["check"]["result-1"] == {"result": {"ok": 4}}


def test_a_recorded_failure_keeps_its_type() -> None:
    claims = Claims()
    claims.claims["check"] = {
        "result-0": {"failed": "denied", "failure_type": "PermissionError", "retryable": False}
    }
    runner = Runner({"lambda": {"function": "checks"}}, [], claims)
    runner.tick()
    state = runner.tick(1)
    assert state.failure is not None
    assert (state.failure.type, state.failure.message) == (FailureType.PERMISSION_ERROR, "denied")


def test_the_role_is_assumed_before_the_attempt_is_claimed() -> None:
    """STS down: nothing is claimed, nothing invoked, the step waits; then it invokes once,
    as the role; a denied role fails without a claim or an invocation."""
    role = "arn:aws:iam::222233334444:role/smoke"
    step = {"lambda": {"function": "checks"}, "role_arn": role, "region": "eu-west-1"}
    claims = Claims()
    runner = Runner(step, [(None, {"healthy": True})], claims)
    runner.tick()
    runner.role_error = RoleUnavailable(f"role {role}: STS unavailable (ServiceUnavailable)")
    runner.tick(1)
    assert runner.state.status is RunStatus.RUNNING
    assert runner.state.steps[1].detail == (
        f"role {role}: STS unavailable (ServiceUnavailable); retrying"
    )
    assert claims.claims == {} and runner.function.invocations == []
    runner.role_error = None
    assert runner.tick(30).status is RunStatus.SUCCEEDED
    assert len(runner.function.invocations) == 1
    assert set(claims.claims["check"]) == {"invoke-0", "result-0"}
    assert runner.state.steps[1].memo["acted_as"]["role_arn"] == role

    denied = Runner(step, [(None, {"healthy": True})], Claims())
    denied.tick()
    denied.role_error = RoleDenied(f"cannot assume role {role} (AccessDenied)")
    assert denied.tick(1).status is RunStatus.FAILED
    assert denied.state.failure is not None
    assert denied.state.failure.type is FailureType.PERMISSION_ERROR
    assert denied.state.failure.message == (
        f"step 'check': cannot assume role {role} (AccessDenied)"
    )
    assert denied.claims is not None and denied.claims.claims == {}
    assert denied.function.invocations == []
