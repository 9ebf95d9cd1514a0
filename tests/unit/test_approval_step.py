"""The `approval` step through the tick, against the honest in-memory fakes."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.approval import runtime
from orchestrator.approval.decide import Refusal, Refused, decide
from orchestrator.event import Job
from orchestrator.exceptions import FailureType
from orchestrator.model import AnswerKind
from orchestrator.services import HttpResponse
from orchestrator.steps.approval import NOTIFY_KEY
from orchestrator.tick import TickConfig, Ticker
from tests.events import load_event
from tests.fakes import ManualClock, MemoryStore, RecordingReporter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.model import Answer
    from orchestrator.targets import AwsTarget

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:sts::123456789012:assumed-role/Releasers/bob"
MALLORY = "arn:aws:iam::123456789012:user/mallory"


def gate(required: int = 1, notify: bool = True, first: bool = False) -> dict[str, Any]:
    approval: dict[str, Any] = {
        "approvers": [ALICE, "arn:aws:iam::123456789012:role/Releasers"],
        "required": required,
        "message": "Ship build 42?",
    }
    if notify:
        approval["notify"] = {"webhook": "https://chat.example/hook/SECRET-PATH"}
    steps: list[dict[str, Any]] = [{"name": "signoff", "approval": approval, "timeout": "2h"}]
    if not first:
        steps.insert(0, {"name": "bake", "wait": "1m"})
    return {"steps": steps, "outputs": {"By": "steps.signoff.approved_by[0]"}}


@dataclass
class RecordingHttp:
    posts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        with self.lock:
            self.posts.append(json.loads(body or b"{}"))
        return HttpResponse(200, {}, b"ok")


@dataclass
class FakeServices:
    http: RecordingHttp = field(default_factory=RecordingHttp)

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        raise AssertionError(f"no {service} client in this test")


class OverlappingStore(MemoryStore):
    """MemoryStore whose first read in each concurrent delivery waits for all the others:
    every copy of the job reads the run before any of them writes (the worst case)."""

    def __init__(self) -> None:
        super().__init__()
        self.overlap: threading.Barrier | None = None
        self.local = threading.local()

    def load(self, run_id: str) -> Any:
        record = super().load(run_id)
        if self.overlap is not None and getattr(self.local, "first", False):
            self.local.first = False
            self.overlap.wait(timeout=10)
        return record


class Rig:
    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = json.dumps(definition)
        self.clock = ManualClock()
        self.store = OverlappingStore()
        self.services = FakeServices()
        self.ticker = Ticker(
            self.store, RecordingReporter(), self.clock, TickConfig(0), self.services
        )
        self.token: str | None = None
        self.run_id = ""

    def job(self) -> Job:
        event = load_event(
            actionConfiguration={
                "configuration": {"FunctionName": "f", "UserParameters": self.definition}
            },
            continuationToken=self.token,
        )
        event["CodePipeline.job"]["id"] = str(uuid.uuid4())
        return Job.from_event(event)

    def tick(self, copies: int = 1, concurrent: bool = False) -> Answer:
        job = self.job()
        answers: list[Answer] = []
        if concurrent:
            self.store.overlap = threading.Barrier(copies)

            def deliver() -> None:
                self.store.local.first = True
                answers.append(self.ticker.handle(job, lambda: 30.0).answer)

            threads = [threading.Thread(target=deliver) for _ in range(copies)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.store.overlap = None
        else:
            answers = [self.ticker.handle(job, lambda: 30.0).answer for _ in range(copies)]
        answer = answers[0]
        self.run_id = self.run_id or answer.run_id
        self.token = answer.token
        return answer

    def decide(self, who: str, decision: str, comment: str = "") -> None:
        decide(self.store, self.run_id, None, who, decision, comment, self.clock.t, "test")


@pytest.fixture
def rig_for() -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(definition: dict[str, Any]) -> Rig:
        rig = Rig(definition)
        runtime.use(runtime.Runtime())
        rigs.append(rig)
        return rig

    yield make
    runtime.use(None)


def to_signoff(rig: Rig) -> Answer:
    rig.tick()
    rig.clock.t += 61
    return rig.tick()


def test_an_approval_completes_the_step_with_who_and_their_comment(rig_for: Any) -> None:
    rig = rig_for(gate())
    answer = to_signoff(rig)
    assert "'signoff': waiting for approval: 0/1 approvals" in answer.summary
    rig.decide(ALICE, "approve", "looks good")
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.SUCCEEDED, answer.summary
    assert answer.outputs == {"By": ALICE}
    record = rig.store.load(rig.run_id)
    assert record is not None
    assert record.state.steps[1].result == {"approved_by": [ALICE], "comments": ["looks good"]}


def test_a_reject_fails_the_gate_naming_who_and_why(rig_for: Any) -> None:
    rig = rig_for(gate(required=2))
    to_signoff(rig)
    rig.decide(ALICE, "approve")
    rig.decide(BOB, "reject", "error rate too high")
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.FAILED and answer.failure_type is FailureType.JOB_FAILED
    assert answer.summary == f"step 'signoff': rejected by {BOB}: error rate too high"


def test_two_required_show_progress_then_complete(rig_for: Any) -> None:
    rig = rig_for(gate(required=2))
    to_signoff(rig)
    rig.decide(BOB, "approve", "ok")
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert f"waiting for approval: 1/2 approvals ({BOB})" in answer.summary
    with pytest.raises(Refused) as again:
        rig.decide(BOB, "approve")
    assert again.value.refusal is Refusal.ALREADY_DECIDED
    rig.decide(ALICE, "approve", "ship it")
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.SUCCEEDED
    record = rig.store.load(rig.run_id)
    assert record is not None
    result = record.state.steps[1].result
    assert result == {"approved_by": [BOB, ALICE], "comments": ["ok", "ship it"]}


def test_a_principal_outside_the_approvers_is_refused_and_ignored(rig_for: Any) -> None:
    rig = rig_for(gate())
    to_signoff(rig)
    with pytest.raises(Refused) as refused:
        rig.decide(MALLORY, "approve")
    assert refused.value.refusal is Refusal.NOT_APPROVER
    # Written around the check, straight into the store: the step still ignores it.
    entry = {"decision": "reject", "comment": "sabotage", "at": rig.clock.t}
    assert rig.store.record_decision(rig.run_id, "signoff", MALLORY, entry)
    assert rig.store.record_decision(rig.run_id, "signoff", "~forged", entry)
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert "0/1 approvals; ignored 1 decision(s) from outside the approvers" in answer.summary


def test_decisions_are_refused_before_the_step_starts_and_after_the_run(rig_for: Any) -> None:
    rig = rig_for(gate())
    rig.tick()  # still baking
    with pytest.raises(Refused) as early:
        rig.decide(ALICE, "approve")
    assert early.value.refusal is Refusal.NOT_WAITING
    rig.clock.t += 61
    rig.tick()
    rig.decide(ALICE, "approve")
    rig.clock.t += 30
    assert rig.tick().kind is AnswerKind.SUCCEEDED
    with pytest.raises(Refused) as late:
        decide(rig.store, rig.run_id, "signoff", ALICE, "reject", "x", 0.0, "test")
    assert late.value.refusal is Refusal.RUN_OVER
    with pytest.raises(Refused) as unknown:
        decide(rig.store, "nope", None, ALICE, "approve", "", 0.0, "test")
    assert unknown.value.refusal is Refusal.UNKNOWN_RUN


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_repeated_deliveries_notify_once_and_decide_once(rig_for: Any, mode: str) -> None:
    rig = rig_for(gate(first=True))
    concurrent = mode == "concurrent"
    for _ in range(4):  # the step starts at the first tick, before the run is stored
        rig.clock.t += 5
        rig.tick(copies=4, concurrent=concurrent)
    assert len(rig.services.http.posts) == 1
    message = rig.services.http.posts[0]
    assert "Ship build 42?" in message["text"] and message["blocks"]
    rig.decide(ALICE, "approve")
    rig.clock.t += 30
    assert rig.tick(copies=4, concurrent=concurrent).kind is AnswerKind.SUCCEEDED
    record = rig.store.load(rig.run_id)
    assert record is not None
    assert set(record.signals.decisions["signoff"]) == {ALICE}
    assert set(record.signals.claims["signoff"]) == {NOTIFY_KEY}
    assert len(rig.services.http.posts) == 1


def test_without_notify_nothing_is_claimed_or_sent(rig_for: Any) -> None:
    rig = rig_for(gate(notify=False))
    to_signoff(rig)
    rig.clock.t += 30
    rig.tick()
    record = rig.store.load(rig.run_id)
    assert record is not None and record.signals.decisions == record.signals.claims == {}
    assert rig.services.http.posts == []
