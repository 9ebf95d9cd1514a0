"""The tick against honest fakes: answers, idempotency, round trips, outages."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from orchestrator.event import Job
from orchestrator.exceptions import ConflictError, FailureType
from orchestrator.model import Answer, AnswerKind, RunStatus
from orchestrator.services import Services
from orchestrator.tick import TickConfig, Ticker
from orchestrator.token import Token
from tests.events import load_event
from tests.fakes import ManualClock, MemoryStore, RecordingReporter, ScriptedHttp, json_response

WAIT_GATE = {
    "steps": [{"name": "bake", "wait": "10m"}, {"name": "soak", "wait": "5m"}],
    "outputs": {"Run": "run.id", "Waited": "steps.bake.waited_seconds"},
}


def job(definition: Any, token: str | None = None, job_id: str | None = None) -> Job:
    params = definition if isinstance(definition, str) else json.dumps(definition)
    event = load_event(
        actionConfiguration={"configuration": {"FunctionName": "f", "UserParameters": params}},
        continuationToken=token,
    )
    event["CodePipeline.job"]["id"] = job_id or str(uuid.uuid4())
    return Job.from_event(event)


class Rig:
    def __init__(self, http: ScriptedHttp | None = None) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore()
        self.reporter = RecordingReporter()
        self.ticker = Ticker(
            self.store,
            self.reporter,
            self.clock,
            TickConfig(idle_check_interval=60),
            Services(http=http),
        )

    def tick(self, j: Job) -> Answer:
        return self.ticker.handle(j, lambda: 30.0).answer


def test_a_gate_runs_to_outputs_with_a_new_token_each_advance() -> None:
    rig = Rig()
    first = job(WAIT_GATE)
    answer = rig.tick(first)
    tokens = [answer.token]
    assert answer.kind is AnswerKind.IN_PROGRESS and answer.run_id == first.id
    for minutes in (10, 5):
        rig.clock.t += minutes * 60
        answer = rig.tick(job(WAIT_GATE, tokens[-1]))
        tokens.append(answer.token)
    assert answer.kind is AnswerKind.SUCCEEDED and answer.token is None
    assert answer.outputs == {"Run": first.id, "Waited": "600.0"}
    assert tokens[0] != tokens[1] and None not in tokens[:2]
    _, request = answer.to_request("j")
    assert "continuationToken" not in request and request["outputVariables"]["Run"] == first.id


def test_round_trips_per_tick() -> None:
    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    assert (rig.store.reads, rig.store.writes) == (1, 1)  # first tick

    rig.clock.t += 30  # nothing due, token fresh: no DynamoDB at all
    idle = rig.tick(job(WAIT_GATE, token))
    assert (rig.store.reads, rig.store.writes) == (1, 1)
    assert Token.decode(idle.token or "").nonce == Token.decode(token or "").nonce
    assert idle.summary.startswith("step 1/2 'bake': next check in")

    rig.clock.t += 60  # nothing due, token stale: one read (sees cancels), no write
    checked = rig.tick(job(WAIT_GATE, token))
    assert (rig.store.reads, rig.store.writes) == (2, 1)
    assert checked.token != token and checked.percent == 7  # 90s of 10m, step 1 of 2

    rig.clock.t += 600  # due: one read and one conditional write
    rig.tick(job(WAIT_GATE, checked.token))
    assert (rig.store.reads, rig.store.writes) == (3, 2)
    assert rig.reporter.calls == 4  # exactly one CodePipeline call per tick


def test_the_same_job_delivered_twice_in_a_row_advances_once() -> None:
    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    rig.clock.t += 600
    again = job(WAIT_GATE, token)
    first, second = rig.tick(again), rig.tick(again)
    assert first == second  # the recorded answer is re-sent
    assert rig.store.writes == 2
    record = rig.store.load(Token.decode(token or "").run_id)
    assert record is not None and record.version == 2 and record.state.step_index == 1
    assert len(rig.reporter.refused) == 1


def test_the_same_job_delivered_concurrently_advances_once() -> None:
    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    rig.clock.t += 600
    duplicate = job(WAIT_GATE, token)
    barrier = threading.Barrier(8)
    answers: list[Answer] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(rig.tick(duplicate))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = rig.store.load(Token.decode(token or "").run_id)
    assert record is not None and record.version == 2
    assert len({a.token for a in answers}) == 1  # all re-sent the winner's answer
    assert rig.reporter.accepted[duplicate.id] == answers[0]


def test_duplicates_that_answer_differently_still_continue() -> None:
    """One delivery answers without writing (hints stale, nothing due yet); a later delivery
    of the same job finds the step due and advances. CodePipeline accepted the first answer,
    so the next job carries a token whose nonce the advance replaced: it must continue."""
    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    rig.clock.t += 590  # hints stale, bake not done yet
    duplicate = job(WAIT_GATE, token)
    accepted = rig.tick(duplicate)
    assert rig.store.writes == 1  # read-only answer
    rig.clock.t += 15  # the second delivery comes later: bake is done now
    refused = rig.tick(duplicate)
    assert rig.store.writes == 2 and refused.token != accepted.token
    assert rig.reporter.accepted[duplicate.id] == accepted
    rig.clock.t += 300
    nxt = rig.tick(job(WAIT_GATE, accepted.token))
    assert nxt.kind is AnswerKind.SUCCEEDED, nxt.summary
    # The run advanced once per due step, never once per delivery.
    record = rig.store.load(nxt.run_id)
    assert record is not None and record.version == 3


def test_the_successor_of_a_job_whose_sibling_ended_the_run_gets_the_outcome() -> None:
    rig = Rig()
    gate = {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"Run": "run.id"}}
    token = rig.tick(job(gate)).token
    rig.clock.t += 59
    duplicate = job(gate, token)
    accepted = rig.tick(duplicate)  # idle: not due yet, no read
    rig.clock.t += 2
    rig.tick(duplicate)  # due now: the sibling delivery ends the run (its answer is refused)
    final = rig.tick(job(gate, accepted.token))
    assert final.kind is AnswerKind.SUCCEEDED and final.outputs == {"Run": final.run_id}


def test_an_old_token_is_refused_once_the_run_moved_on() -> None:
    rig = Rig()
    first = rig.tick(job(WAIT_GATE)).token
    rig.clock.t += 600
    second = rig.tick(job(WAIT_GATE, first)).token
    rig.clock.t += 10
    rig.tick(job(WAIT_GATE, second))  # read-only
    late = rig.tick(job(WAIT_GATE, first))  # a late duplicate of the second job
    assert late.kind is AnswerKind.FAILED and "stale or forged" in late.summary


def test_first_job_delivered_twice_creates_one_run() -> None:
    rig = Rig()
    first = job(WAIT_GATE)
    a, b = rig.tick(first), rig.tick(first)
    assert a == b and rig.store.writes == 1


def test_invalid_definition_is_a_configuration_error_naming_the_field() -> None:
    rig = Rig()
    bad = job({"steps": [{"name": "x", "http": {"url": "http://h"}, "every": "soon"}]})
    answer = rig.tick(bad)
    assert answer.kind is AnswerKind.FAILED
    assert answer.failure_type is FailureType.CONFIGURATION_ERROR
    assert answer.summary.startswith("steps[0].every: invalid duration 'soon'")
    assert rig.store.writes == 0


@pytest.mark.parametrize(
    "make_token",
    [
        lambda good: "garbage",
        lambda good: Token.decode(good).replace(nonce="forged-nonce-forged", checked_at=0).encode(),
        lambda good: Token.decode(good).replace(run_id="nope", checked_at=0).encode(),
    ],
)
def test_unknown_tokens_fail_the_job_saying_so(make_token: Any) -> None:
    rig = Rig()
    good = rig.tick(job(WAIT_GATE)).token
    answer = rig.tick(job(WAIT_GATE, make_token(good)))
    assert answer.kind is AnswerKind.FAILED
    assert answer.failure_type is FailureType.JOB_FAILED
    assert answer.summary.startswith("unknown continuation token")


def test_store_outage_reports_no_progress_and_loses_nothing() -> None:
    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    rig.clock.t += 600
    rig.store.down = True
    during = rig.tick(job(WAIT_GATE, token))
    assert during.kind is AnswerKind.IN_PROGRESS
    assert during.summary == "state store unavailable; will retry at the next check"
    assert Token.decode(during.token or "").nonce == Token.decode(token or "").nonce
    rig.store.down = False
    after = rig.tick(job(WAIT_GATE, during.token))
    record = rig.store.load(after.run_id)
    assert record is not None and record.state.step_index == 1 and record.version == 2


def test_store_down_on_the_first_tick_creates_the_run_later() -> None:
    rig = Rig()
    first = job(WAIT_GATE)
    rig.store.down = True
    pending = rig.tick(first)
    assert pending.kind is AnswerKind.IN_PROGRESS and pending.run_id == first.id
    rig.store.down = False
    rig.clock.t += 5
    created = rig.tick(job(WAIT_GATE, pending.token))
    record = rig.store.load(first.id)
    assert created.kind is AnswerKind.IN_PROGRESS
    assert record is not None and record.state.started_at == rig.clock.t - 5


def test_a_final_success_is_never_reported_unless_persisted() -> None:
    rig = Rig()
    token = rig.tick(job({"steps": [{"name": "w", "wait": "1m"}]})).token
    rig.clock.t += 60
    rig.store.down = True
    answer = rig.tick(job({"steps": [{"name": "w", "wait": "1m"}]}, token))
    assert answer.kind is AnswerKind.IN_PROGRESS


def test_cancel_is_seen_at_the_next_read() -> None:
    rig = Rig()
    first = job(WAIT_GATE)
    token = rig.tick(first).token
    assert rig.store.request_cancel(first.id, "alice")
    rig.clock.t += 61
    answer = rig.tick(job(WAIT_GATE, token))
    assert answer.kind is AnswerKind.FAILED and answer.summary == "cancelled by alice"
    record = rig.store.load(first.id)
    assert record is not None and record.state.status is RunStatus.FAILED
    assert not rig.store.request_cancel(first.id, "bob")


def test_http_gate_through_the_tick() -> None:
    http = ScriptedHttp(
        [
            json_response(200, '{"state": "new"}'),
            json_response(200, '{"state": "approved", "id": "CHG42"}'),
        ]
    )
    rig = Rig(http)
    gate = {
        "steps": [
            {
                "name": "change",
                "http": {"url": "http://itsm/42"},
                "until": "body.state == 'approved'",
                "every": "30s",
            }
        ],
        "outputs": {"ChangeId": "steps.change.body.id"},
    }
    answer = rig.tick(job(gate))
    assert answer.summary == (
        "step 1/1 'change': waiting for until (polled 1 time, last HTTP 200): "
        'until false: body.state is "new"'
    )
    rig.clock.t += 30
    answer = rig.tick(job(gate, answer.token))
    assert answer.outputs == {"ChangeId": "CHG42"}


def test_losing_the_race_while_the_store_fails_defers_instead_of_failing() -> None:
    class Flaky(MemoryStore):
        def save(
            self, record: Any, expected_version: int | None, *, clear_cancel: bool = False
        ) -> None:
            super().save(
                record.model_copy(update={"last_job_id": "someone-else"}), expected_version
            )  # another writer got there first...
            self.down = True  # ...and then the table stopped answering
            raise ConflictError(record.run_id)

    rig = Rig()
    token = rig.tick(job(WAIT_GATE)).token
    rig.store.__class__ = Flaky
    rig.clock.t += 600
    answer = rig.tick(job(WAIT_GATE, token))
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert answer.summary == "state store unavailable; will retry at the next check"


class RefusingPipelineContext:
    """A JobContext whose GetJobDetails is refused (the role lacks the permission)."""

    def __init__(self) -> None:
        self.asked = 0

    def gather(self, job: Job, definition: Any, state: Any) -> dict[str, Any]:
        return {}

    def finish(self, job: Job, definition: Any, state: Any) -> None:
        return None

    def identify(self, job: Job) -> dict[str, Any] | None:
        from orchestrator.exceptions import GateFailed

        self.asked += 1
        raise GateFailed("GetJobDetails refused (AccessDeniedException)")


def test_a_refused_get_job_details_only_costs_resume_on_retry() -> None:
    """A gate that does not read the pipeline still runs when the role may not ask which
    execution's action a job is: a retry would start over, nothing else changes."""
    rig = Rig()
    refusing = RefusingPipelineContext()
    rig.ticker = Ticker(rig.store, rig.reporter, rig.clock, job_context=refusing)
    answer = rig.tick(job(WAIT_GATE))
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert refusing.asked == 1 and rig.store.executions == {}
