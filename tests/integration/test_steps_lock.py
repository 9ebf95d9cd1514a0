"""Environment locks end to end: pipeline executions, each a gate run by the CodePipeline
emulator's job loop through the real handler, contend for one lock kept in DynamoDB Local.

An execution's waiting gate runs on a thread of its own; the test moves on once the lock's
item shows it queued (a wait for a state, bounded so that a hang fails, never a timing)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator import handler
from orchestrator.cli import app
from orchestrator.governance import Governance, LockRecord
from orchestrator.model import RunStatus
from orchestrator.store.dynamodb import bind_model, list_key
from orchestrator.store.governance import DynamoGovernanceStore
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from orchestrator.local.driver import ActionResult

LOCK = "prod-eu"
# pipeline execution ids (CodePipeline's are UUIDs)
A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"
C = "cccccccc-0000-4000-8000-00000000000c"
PATIENCE = 120.0  # real seconds before a wait for a state gives up (a hang, not a timing)


@pytest.fixture
def rig(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with gate_rig(table_name, monkeypatch, speed=20) as found:
        yield found


@pytest.fixture
def governance(table_name: str) -> Governance:
    return Governance(DynamoGovernanceStore(bind_model(table_name)))


@pytest.fixture
def background(rig: Rig, governance: Governance) -> Iterator[Callable[..., Background]]:
    """Starts gates on threads; a test that fails leaves none running past it (the lock is
    freed until every waiting gate has taken it and ended)."""
    started: list[Background] = []

    def start(definition: Any, execution: str, **kwargs: Any) -> Background:
        started.append(Background(rig, definition, execution, **kwargs))
        return started[-1]

    yield start
    deadline = time.monotonic() + PATIENCE
    while any(b.running for b in started) and time.monotonic() < deadline:
        governance.force_release(LOCK, "teardown", "test over", time.time() + 86400)
        time.sleep(0.1)


def take(mode: str = "sequential", hold: str = "4h") -> dict[str, Any]:
    return {
        "steps": [{"name": "take", "lock": {"name": LOCK, "mode": mode, "hold": hold}}],
        "outputs": {"Holder": "steps.take.execution"},
    }


FREE = {
    "steps": [{"name": "free", "unlock": LOCK}],
    "outputs": {"Released": "steps.free.released"},
}


class Background:
    """A gate of one execution, run to its end on a thread."""

    def __init__(self, rig: Rig, definition: Any, execution: str, **kwargs: Any) -> None:
        self.result: ActionResult | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = rig.run(definition, pipeline_execution_id=execution, **kwargs)
            except BaseException as exc:  # surfaced by outcome()
                self.error = exc

        self._thread = threading.Thread(target=run, name=f"execution-{execution}")
        self._thread.start()

    def outcome(self) -> ActionResult:
        self._thread.join(PATIENCE)
        assert not self._thread.is_alive(), "the gate did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def until(governance: Governance, holds: Callable[[LockRecord], bool]) -> LockRecord:
    """The lock's record once `holds` is true of it."""
    deadline = time.monotonic() + PATIENCE
    while True:
        record = governance.lock(LOCK)
        if record is not None and holds(record):
            return record
        assert time.monotonic() < deadline, f"the lock never got there: {record}"
        time.sleep(0.05)


def queued(record: LockRecord) -> list[str]:
    return [w.execution for w in record.queue]


def summaries(result: ActionResult) -> list[str]:
    return [
        str(job.answer["params"].get("executionDetails", {}).get("summary", ""))
        for job in result.jobs
        if job.answer is not None
    ]


def events(record: LockRecord) -> list[tuple[str, str]]:
    return [(e.action, e.execution) for e in record.history]


def test_sequential_executions_take_turns_and_unlock_in_a_later_gate_releases(
    rig: Rig, governance: Governance, background: Callable[..., Background]
) -> None:
    first = rig.run(take(), pipeline_execution_id=A)
    assert first.status == "Succeeded", first.failure_message
    assert first.output_variables == {"Holder": A}
    held = governance.lock(LOCK)
    assert held is not None and held.holder is not None  # kept after the gate ended
    assert (held.holder.execution, held.holder.pipeline) == (A, "local-pipeline")
    second = background(take(), B, duplicates="concurrent", concurrency=3)
    until(governance, lambda r: queued(r) == [B])
    third = background(take(), C)
    until(governance, lambda r: queued(r) == [B, C])
    freed = rig.run(FREE, pipeline_execution_id=A, action_name="Unlock")
    assert freed.status == "Succeeded", freed.failure_message
    assert freed.output_variables == {"Released": "true"}
    assert second.outcome().status == "Succeeded"
    assert second.outcome().output_variables == {"Holder": B}
    assert third.running  # B holds it now
    until(governance, lambda r: r.holder is not None and r.holder.execution == B)
    rig.run(FREE, pipeline_execution_id=B, action_name="Unlock")
    result = third.outcome()
    assert result.status == "Succeeded", result.failure_message
    waited = f"step 1/1 'take': waiting for prod-eu: held by execution {A} (local-pipeline) since"
    assert any(
        s.startswith(waited) and s.endswith(", position 2 of 2") for s in summaries(result)
    ), summaries(result)
    final = until(governance, lambda r: True)
    assert events(final) == [
        ("acquired", A),
        ("released", A),
        ("acquired", B),
        ("released", B),
        ("acquired", C),
    ]
    assert final.queue == []


def test_latest_supersedes_the_waiting_execution(
    rig: Rig, governance: Governance, background: Callable[..., Background]
) -> None:
    assert rig.run(take("latest"), pipeline_execution_id=A).status == "Succeeded"
    older = background(take("latest"), B)
    until(governance, lambda r: queued(r) == [B])
    newer = background(take("latest"), C)
    until(governance, lambda r: queued(r) == [C])
    superseded = older.outcome()
    assert superseded.status == "Failed" and superseded.failure_type == "JobFailed"
    assert superseded.failure_message == (
        f"step 'take': superseded by execution {C} (waiting for prod-eu, mode latest)"
    )
    assert newer.running  # A still holds it: latest never takes it from the holder
    rig.run(FREE, pipeline_execution_id=A, action_name="Unlock")
    assert newer.outcome().output_variables == {"Holder": C}
    record = governance.lock(LOCK)
    assert record is not None
    assert ("superseded", B) in events(record)
    assert ("acquired", B) not in events(record)


def test_an_expired_lease_is_taken_over_and_the_late_unlock_releases_nothing(
    rig: Rig, governance: Governance, background: Callable[..., Background]
) -> None:
    assert rig.run(take(hold="5m"), pipeline_execution_id=A).status == "Succeeded"
    waiting = background(take(), B)
    until(governance, lambda r: queued(r) == [B])
    rig.clock.advance(301)  # A crashed, or forgot its unlock: its lease runs out
    result = waiting.outcome()
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Holder": B}
    record = until(governance, lambda r: True)
    assert events(record)[-2:] == [("expired", A), ("acquired", B)]
    late = rig.run(FREE, pipeline_execution_id=A, action_name="Unlock")
    assert late.status == "Succeeded" and late.output_variables == {"Released": "false"}
    after = governance.lock(LOCK)
    assert after is not None and after.holder is not None
    assert after.holder.execution == B


def test_an_operator_forcing_the_unlock_lets_the_waiting_execution_through(
    rig: Rig,
    governance: Governance,
    background: Callable[..., Background],
    moto_endpoint: str,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    assert rig.run(take(), pipeline_execution_id=A).status == "Succeeded"
    waiting = background(take(), B)
    until(governance, lambda r: queued(r) == [B])
    where = ["--table", table_name, "--data-dir", str(tmp_path)]
    command = ["unlock", LOCK, "--force", "--reason", "A is stuck", *where]
    warm = handler._app
    forced = CliRunner().invoke(app, command, catch_exceptions=False)
    assert forced.exit_code == 0, forced.output
    assert handler._app is warm  # an operator command leaves the running function as it was
    result = waiting.outcome()  # the gate running meanwhile, on its own clock, goes on
    assert result.status == "Succeeded" and result.output_variables == {"Holder": B}
    record = governance.lock(LOCK)
    assert record is not None
    assert [(e.action, e.execution, e.by) for e in record.history][-2:] == [
        ("forced", A, "arn:aws:sts::123456789012:user/moto"),
        ("acquired", B, None),
    ]


def test_lock_items_are_not_runs(rig: Rig, table_name: str) -> None:
    result = rig.run(take(), pipeline_execution_id=A)
    item = rig.item(f"lock#{LOCK}")
    assert "status" not in item and "expires_at" not in item  # in no index, never expired
    runs = rig.aws("dynamodb").query(
        TableName=table_name,
        IndexName="by-status-sharded",
        KeyConditionExpression="list_key = :s",
        ExpressionAttributeValues={
            ":s": {"S": list_key(RunStatus.SUCCEEDED, result.jobs[0].job_id)}
        },
    )["Items"]
    assert [r["run_id"]["S"] for r in runs] == [result.jobs[0].job_id]
    assert "list_key" not in item
