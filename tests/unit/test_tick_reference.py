"""The tick with referenced gates, against honest fakes: fetched once, pinned, at the floor."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.exceptions import FailureType, StoreUnavailable
from orchestrator.model import AnswerKind, RunRecord
from orchestrator.services import Services
from orchestrator.tick import TickConfig, Ticker
from orchestrator.token import Token
from tests.fakes import ManualClock, MemorySource, MemoryStore, RecordingReporter
from tests.unit.test_tick import job

REF = "SourceArtifact::gates/prod.json"
GATE = {
    "params": {"service": {"required": True}, "bake": {"default": "10m"}},
    "steps": [
        {"name": "bake", "wait": "${args.bake}"},
        {"name": "soak", "wait": "5m"},
    ],
    "outputs": {"Service": "args.service", "Waited": "steps.bake.waited_seconds"},
    "timeout": "2h",
}
PARAMS = {"gate": REF, "args": {"service": "checkout"}}


class Rig:
    def __init__(self, store: MemoryStore | None = None, source: MemorySource | None = None):
        self.clock = ManualClock()
        self.store = store or MemoryStore()
        self.source = source or MemorySource({REF: json.dumps(GATE)})
        self.reporter = RecordingReporter()
        self.ticker = self.cold()

    def cold(self) -> Ticker:
        """A new process: nothing in memory."""
        return Ticker(
            self.store,
            self.reporter,
            self.clock,
            TickConfig(idle_check_interval=60),
            Services(),
            sources=self.source,
        )

    def tick(
        self, params: Any = PARAMS, token: str | None = None, job_id: str | None = None
    ) -> Any:
        return self.ticker.handle(job(params, token, job_id), lambda: 30.0).answer

    def record(self, run_id: str) -> RunRecord:
        return RunRecord.model_validate_json(self.store.items[run_id])


def test_a_referenced_gate_runs_to_outputs_with_its_args() -> None:
    rig = Rig()
    first = rig.tick()
    assert first.kind is AnswerKind.IN_PROGRESS, first.summary
    rig.clock.t += 600
    second = rig.tick(token=first.token)
    rig.clock.t += 300
    last = rig.tick(token=second.token)
    assert last.kind is AnswerKind.SUCCEEDED, last.summary
    assert last.outputs == {"Service": "checkout", "Waited": "600.0"}
    assert rig.source.fetches == 1
    pin = rig.record(first.run_id).pin
    assert pin is not None and pin.source == REF and pin.version == "1"
    assert rig.record(first.run_id).state.context["args"] == {"service": "checkout", "bake": "10m"}
    assert list(rig.store.definitions) == [pin.definition]
    assert Token.decode(first.token or "").definition == pin.definition


def test_a_changed_source_does_not_change_a_run_in_progress() -> None:
    rig = Rig()
    token = rig.tick().token
    changed = {**GATE, "steps": [{"name": "other", "wait": "1s"}], "outputs": {}}
    rig.source.put(REF, json.dumps(changed))
    rig.ticker = rig.cold()  # even a cold function reads the pinned one, not the source
    rig.clock.t += 600
    token = rig.tick(token=token).token
    rig.clock.t += 300
    last = rig.tick(token=token)
    assert last.kind is AnswerKind.SUCCEEDED and last.outputs is not None
    assert last.outputs["Service"] == "checkout" and rig.source.fetches == 1
    # the source is gone: the run does not care; a new run fails naming the reference
    del rig.source.documents[REF]
    again = rig.tick()
    assert again.kind is AnswerKind.FAILED
    assert again.failure_type is FailureType.CONFIGURATION_ERROR
    assert again.summary == f"gate {REF}: not found (NoSuchKey)"


def test_store_calls_per_tick_are_the_inline_ones_on_a_warm_function() -> None:
    rig = Rig()
    token = rig.tick().token
    # first tick: the run read, the definition written once, the run written
    assert (rig.store.reads, rig.store.writes) == (1, 2)
    rig.clock.t += 30
    token = rig.tick(token=token).token  # idle, fresh hints: nothing at all
    assert (rig.store.reads, rig.store.writes) == (1, 2)
    rig.clock.t += 600
    token = rig.tick(token=token).token  # advancing: one read, one write
    assert (rig.store.reads, rig.store.writes) == (2, 3)
    rig.ticker = rig.cold()
    rig.clock.t += 30
    token = rig.tick(token=token).token  # idle on a cold function: one read (the definition)
    assert (rig.store.reads, rig.store.writes) == (3, 3)
    rig.clock.t += 300
    rig.tick(token=token)  # advancing, warm again: one read, one write
    assert (rig.store.reads, rig.store.writes) == (4, 4)


def test_a_source_outage_on_the_first_tick_persists_nothing() -> None:
    rig = Rig()
    rig.source.down = True
    answer = rig.tick(job_id="11111111-2222-3333-4444-555555555555")
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert answer.summary == f"gate {REF}: unavailable (SlowDown); will retry at the next check"
    assert rig.store.items == {} and rig.store.definitions == {}
    rig.source.down = False
    rig.clock.t += 40
    created = rig.tick(token=answer.token)
    assert created.kind is AnswerKind.IN_PROGRESS and created.run_id == answer.run_id
    state = rig.record(answer.run_id).state
    assert state.deadline - state.started_at == 7200  # the gate's own timeout, from its start


def test_a_store_outage_while_pinning_persists_no_run() -> None:
    rig = Rig()
    rig.store.down = True
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert answer.summary.startswith("state store unavailable")
    rig.store.down = False
    assert rig.store.items == {}


def test_a_repeated_first_delivery_does_not_fetch_again() -> None:
    rig = Rig()
    job_id = "11111111-2222-3333-4444-555555555555"
    first = rig.tick(job_id=job_id)
    del rig.source.documents[REF]
    again = rig.tick(job_id=job_id)
    assert again == first and rig.source.fetches == 1


def test_an_invalid_template_fails_with_every_problem() -> None:
    rig = Rig()
    answer = rig.tick({"gate": REF, "args": {"servce": "x"}})
    assert answer.kind is AnswerKind.FAILED
    assert answer.failure_type is FailureType.CONFIGURATION_ERROR
    assert answer.summary == (
        f"gate {REF}: args.servce: unknown argument (the gate declares: bake, service); "
        f"gate {REF}: args.service: required argument missing"
    )
    assert rig.store.items == {} and rig.store.definitions == {}


def test_a_pinned_run_keeps_its_definition_whatever_user_parameters_say() -> None:
    rig = Rig()
    token = rig.tick().token
    rig.clock.t += 600
    inline = {"steps": [{"name": "other", "wait": "1h"}]}
    answer = rig.tick(inline, token=token)
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert answer.summary.startswith("step 2/2 'soak'")  # the pinned definition's steps
    rig.ticker = rig.cold()
    rig.clock.t += 300
    last = rig.tick({"gate": "ssm:/other", "args": {}}, token=answer.token)
    assert last.kind is AnswerKind.SUCCEEDED and rig.source.fetches == 1


def test_a_reference_cannot_take_over_an_inline_run() -> None:
    rig = Rig()
    inline = {"steps": [{"name": "bake", "wait": "10m"}]}
    token = rig.tick(inline).token
    rig.clock.t += 60
    answer = rig.tick(token=token)
    assert answer.kind is AnswerKind.FAILED
    assert answer.failure_type is FailureType.CONFIGURATION_ERROR
    assert "was started with an inline definition" in answer.summary


def test_concurrent_first_deliveries_create_one_run_on_one_pinned_definition() -> None:
    import threading

    rig = Rig()
    job_id = "11111111-2222-3333-4444-555555555555"
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(rig.tick(job_id=job_id))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert list(rig.store.items) == [job_id]
    pin = rig.record(job_id).pin
    assert pin is not None and list(rig.store.definitions) == [pin.definition]
    assert Token.decode(answers[0].token).definition == pin.definition


def test_a_run_write_lost_after_pinning_is_retried_by_the_next_job() -> None:
    class FailingOnce(MemoryStore):
        failed = False

        def save(
            self, record: RunRecord, expected_version: int | None, *, clear_cancel: bool = False
        ) -> None:
            if not self.failed:
                self.failed = True
                raise StoreUnavailable("run: write failed (InternalServerError)")
            super().save(record, expected_version, clear_cancel=clear_cancel)

    rig = Rig(store=FailingOnce())
    deferred = rig.tick()
    assert deferred.kind is AnswerKind.IN_PROGRESS and rig.store.items == {}
    assert len(rig.store.definitions) == 1  # pinned content, harmless (content-addressed)
    rig.clock.t += 30
    created = rig.tick(token=deferred.token)
    assert created.kind is AnswerKind.IN_PROGRESS and list(rig.store.items) == [deferred.run_id]
    assert rig.source.fetches == 2 and len(rig.store.definitions) == 1


def test_a_source_down_until_the_deadline_fails_naming_it() -> None:
    rig = Rig()
    rig.source.down = True
    answer = rig.tick()
    rig.clock.t += 24 * 3600
    last = rig.tick(token=answer.token)
    assert last.kind is AnswerKind.FAILED and last.failure_type is FailureType.JOB_FAILED
    assert last.summary == (f"gate timed out after 23h45m while gate {REF}: unavailable (SlowDown)")
    assert rig.store.items == {}


def test_the_in_process_cache_is_bounded_and_reads_back_what_it_dropped() -> None:
    from orchestrator.pinning import CACHE_SIZE, Pins
    from orchestrator.reference import Reference, read_user_parameters

    store, source = MemoryStore(), MemorySource()
    pins = Pins(store, source)
    keys = []
    for index in range(CACHE_SIZE + 1):
        source.put(f"ssm:/g{index}", json.dumps({"steps": [{"name": f"s{index}", "wait": "1m"}]}))
        spec = read_user_parameters(json.dumps({"gate": f"ssm:/g{index}"}))
        assert isinstance(spec, Reference)
        _, pin, _ = pins.pin_new(job(PARAMS), spec, 0.0)
        keys.append(pin.definition)
    reads = store.reads
    assert pins.cached(keys[0]) is None and pins.cached(keys[-1]) is not None
    assert pins.pinned(keys[0], "r").steps[0].name == "s0"  # read back from the store
    assert store.reads == reads + 1
