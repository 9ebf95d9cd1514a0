from __future__ import annotations

import json
from typing import Any

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import FailureType
from orchestrator.model import RunState, RunStatus, Signals
from orchestrator.services import HttpError, Services
from tests.fakes import ManualClock, ScriptedHttp, json_response

T0 = 1_800_000_000.0


def gate(**definition: Any) -> GateDefinition:
    return parse_definition(json.dumps(definition))


def run(
    definition: GateDefinition,
    state: RunState,
    clock: ManualClock,
    http: ScriptedHttp | None = None,
    time_left: float = 60.0,
) -> RunState:
    budget = engine.Budget(lambda: time_left, reserve=1.0)
    return engine.advance(definition, state, clock.now, budget, Services(http=http))


def test_wait_step_completes_after_its_duration_and_reports_progress() -> None:
    definition = gate(steps=[{"name": "bake", "wait": "10m"}], outputs={"Id": "run.id"})
    clock = ManualClock(T0)
    state = run(definition, engine.start(definition, "r1", clock.now()), clock)
    assert state.status is RunStatus.RUNNING
    assert engine.next_due(state) == T0 + 600
    clock.t += 300
    state = run(definition, state, clock)
    assert engine.percent(state, clock.now()) == 50
    assert engine.summary(definition, state).startswith("step 1/1 'bake': waiting 10m (until ")
    clock.t += 300
    state = run(definition, state, clock)
    assert state.status is RunStatus.SUCCEEDED
    assert state.outputs == {"Id": "r1"}
    assert state.steps[0].result == {"waited_seconds": 600.0}


def test_the_input_state_is_not_modified() -> None:
    definition = gate(steps=[{"name": "bake", "wait": "1s"}])
    clock = ManualClock(T0)
    first = engine.start(definition, "r1", clock.now())
    snapshot = first.model_dump()
    clock.t += 5
    run(definition, first, clock)
    assert first.model_dump() == snapshot


def test_http_until_fail_if_and_outputs() -> None:
    definition = gate(
        steps=[
            {
                "name": "change",
                "http": {"url": "http://itsm/42"},
                "until": "body.state == 'approved'",
                "fail_if": "body.state == 'rejected'",
                "every": "30s",
            }
        ],
        outputs={"State": "steps.change.body.state", "Doc": "steps.change.body"},
    )
    http = ScriptedHttp(
        [
            json_response(200, '{"state": "new"}'),
            json_response(503, "busy"),
            HttpError("ConnectTimeoutError from http://itsm"),
            json_response(200, '{"state": "approved", "id": 42}'),
        ]
    )
    clock = ManualClock(T0)
    state = engine.start(definition, "r1", clock.now())
    for expected in (
        "waiting for until (polled 1 time, last HTTP 200)",
        "HTTP 503; retrying (polled 2 times)",
        "no response (ConnectTimeoutError from http://itsm); retrying",
    ):
        state = run(definition, state, clock, http)
        assert state.status is RunStatus.RUNNING
        assert state.steps[0].detail.startswith(expected)
        assert engine.next_due(state) == clock.t + 30
        clock.t += 30
    state = run(definition, state, clock, http)
    assert state.status is RunStatus.SUCCEEDED
    assert state.outputs == {"State": "approved", "Doc": '{"state": "approved", "id": 42}'}
    assert len(http.requests) == 4


def test_fail_if_fails_the_gate_naming_the_step() -> None:
    definition = gate(
        steps=[
            {"name": "change", "http": {"url": "http://x"}, "fail_if": "body.state == 'rejected'"}
        ]
    )
    clock = ManualClock(T0)
    http = ScriptedHttp([json_response(200, '{"state": "rejected"}')])
    state = run(definition, engine.start(definition, "r1", clock.now()), clock, http)
    assert state.status is RunStatus.FAILED
    assert state.failure is not None and state.failure.type is FailureType.JOB_FAILED
    assert "step 'change': fail_if is true" in state.failure.message


def test_step_timeout_and_gate_timeout() -> None:
    definition = gate(steps=[{"name": "h", "http": {"url": "http://x"}, "timeout": "1m"}])
    clock = ManualClock(T0)
    http = ScriptedHttp([json_response(404, "no")])
    state = run(definition, engine.start(definition, "r1", clock.now()), clock, http)
    assert engine.next_due(state) == T0 + 30
    clock.t += 30
    state = run(definition, state, clock, http)
    assert engine.next_due(state) == T0 + 60  # capped by the step's timeout
    clock.t += 30
    state = run(definition, state, clock, http)
    assert state.failure is not None
    assert state.failure.message.startswith("step 'h' timed out after 1m (last: waiting for")

    definition = gate(
        steps=[{"name": "first", "wait": "40m"}, {"name": "w", "wait": "40m"}], timeout="1h"
    )
    state = run(definition, engine.start(definition, "r2", clock.now()), clock)
    clock.t += 2400
    state = run(definition, state, clock)
    clock.t += 1200
    state = run(definition, state, clock)
    assert state.failure is not None
    assert state.failure.message.startswith("gate timed out after 1h at step 'w'")


def test_several_steps_advance_in_one_call_when_due() -> None:
    definition = gate(
        steps=[
            {"name": "a", "wait": "1m"},
            {"name": "b", "wait": "1m"},
            {"name": "c", "http": {"url": "http://x"}},
        ]
    )
    clock = ManualClock(T0)
    http = ScriptedHttp([json_response(204, "")])
    state = run(definition, engine.start(definition, "r1", clock.now()), clock, http)
    clock.t += 60
    state = run(definition, state, clock, http)
    assert state.step_index == 1  # b started now, due in a minute
    clock.t += 60
    state = run(definition, state, clock, http)
    assert state.status is RunStatus.SUCCEEDED
    assert state.steps[2].result["status"] == 204


def test_low_time_budget_stops_before_polling() -> None:
    definition = gate(steps=[{"name": "h", "http": {"url": "http://x"}}])
    clock = ManualClock(T0)
    http = ScriptedHttp([json_response(200, "{}")])
    state = run(definition, engine.start(definition, "r1", clock.now()), clock, http, time_left=0.5)
    assert state.status is RunStatus.RUNNING and http.requests == []


def test_a_step_that_raises_fails_the_gate_with_its_type() -> None:
    definition = gate(steps=[{"name": "h", "http": {"url": "http://x"}}])
    clock = ManualClock(T0)

    class Broken(ScriptedHttp):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise ZeroDivisionError("boom")

    state = run(definition, engine.start(definition, "r1", clock.now()), clock, Broken([]))
    assert state.failure is not None
    assert state.failure.message == "step 'h' raised ZeroDivisionError: boom"


def test_outputs_over_codepipelines_limit_fail_before_sending() -> None:
    definition = gate(
        steps=[{"name": "h", "http": {"url": "http://x"}}],
        outputs={f"O{i}": "steps.h.body" for i in range(3)},
    )
    clock = ManualClock(T0)
    http = ScriptedHttp([json_response(200, json.dumps("x" * 50_000))])
    state = run(definition, engine.start(definition, "r1", clock.now()), clock, http)
    assert state.failure is not None
    assert "over CodePipeline's limit of 122880 bytes" in state.failure.message


def test_cancel_fails_with_who() -> None:
    definition = gate(steps=[{"name": "w", "wait": "1h"}])
    clock = ManualClock(T0)
    state = engine.start(definition, "r1", clock.now())
    signals = Signals(cancel_requested_by="arn:aws:iam::1:user/alice")
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.advance(definition, state, clock.now, budget, Services(), signals=signals)
    assert state.failure is not None
    assert state.failure.message == "cancelled by arn:aws:iam::1:user/alice"


def test_a_step_timeout_asks_the_step_first_and_an_approval_may_approve_by_timeout() -> None:
    """Past its timeout a step gets its own say (`at_deadline`): most kinds none (the gate
    fails as before), an approval with on_timeout 'approve' succeeds, 'reject' fails."""
    approver = "arn:aws:iam::123456789012:user/alice"

    def approval(on_timeout: str) -> GateDefinition:
        spec = {"approvers": [approver], "on_timeout": on_timeout}
        return gate(
            steps=[{"name": "ok", "timeout": "1h", "approval": spec}, {"name": "w", "wait": "1s"}]
        )

    for on_timeout, expected in (("approve", RunStatus.RUNNING), ("reject", RunStatus.FAILED)):
        definition, clock = approval(on_timeout), ManualClock(T0)
        state = run(definition, engine.start(definition, "r1", clock.now()), clock)
        clock.t += 3601
        state = run(definition, state, clock)
        assert state.status is expected, (on_timeout, state.failure)
        if expected is RunStatus.RUNNING:
            assert state.steps[0].result["approved_by_timeout"] is True
            assert state.step_index == 1
        else:
            assert state.failure is not None
            assert "approval timed out after 1h" in state.failure.message
    waiting = gate(steps=[{"name": "w", "http": {"url": "http://x"}, "timeout": "1h"}])
    clock, http = ManualClock(T0), ScriptedHttp([json_response(404, "no")])
    state = run(waiting, engine.start(waiting, "r1", clock.now()), clock, http)
    clock.t += 3601
    state = run(waiting, state, clock, http)
    assert state.failure is not None
    assert state.failure.message.startswith("step 'w' timed out after 1h")
