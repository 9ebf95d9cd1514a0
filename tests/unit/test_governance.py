"""Freezes and the lock queue (orchestrator.governance) over an honest in-memory store that
refuses a write on a stale version, as DynamoDB does; races are staged between a read and
the write that follows it, and run on real threads."""

from __future__ import annotations

import threading

import pytest

from orchestrator.exceptions import StoreUnavailable
from orchestrator.governance import (
    ATTEMPTS,
    MAX_HISTORY,
    Claimant,
    Governance,
    GovernanceBusy,
    Held,
    Kind,
    LockMode,
    LockRecord,
    Superseded,
    Verdict,
    Waiting,
)
from tests.fakes import MemoryGovernanceStore

T0 = 1_800_000_000.0
HOLD = 3600.0
GRACE = 600.0
SEQ, LATEST = LockMode.SEQUENTIAL, LockMode.LATEST
A, B, C = Claimant("exec-a", "run-a"), Claimant("exec-b", "run-b"), Claimant("exec-c", "run-c")


@pytest.fixture
def store() -> MemoryGovernanceStore:
    return MemoryGovernanceStore()


@pytest.fixture
def gov(store: MemoryGovernanceStore) -> Governance:
    return Governance(store)


def ask(gov: Governance, who: Claimant, at: float = T0, mode: LockMode = SEQ) -> Verdict:
    return gov.acquire("prod-eu", who, mode, HOLD, GRACE, at)


def record(gov: Governance) -> LockRecord:
    found = gov.lock("prod-eu")
    assert found is not None
    return found


def line(gov: Governance) -> list[str]:
    return [w.execution for w in record(gov).queue]


def position(verdict: Verdict) -> tuple[int, int]:
    assert isinstance(verdict, Waiting), verdict
    return verdict.position, verdict.waiting


# region the queue


def test_sequential_waiters_are_served_in_order_of_arrival(gov: Governance) -> None:
    held = ask(gov, A)
    assert isinstance(held, Held) and held.lease.execution == "exec-a"
    assert held.lease.expires == T0 + HOLD
    assert position(ask(gov, B, T0 + 1)) == (1, 1)
    third = ask(gov, C, T0 + 2)
    assert position(third) == (2, 2)
    assert isinstance(third, Waiting) and third.holder is not None
    assert third.holder.execution == "exec-a"
    gov.release("prod-eu", "exec-a", T0 + 10)
    # C polls first: the lock is free, but B is first in line
    after = ask(gov, C, T0 + 11)
    assert position(after) == (2, 2)
    assert isinstance(after, Waiting) and after.holder is None
    assert after.first is not None and after.first.execution == "exec-b"
    assert isinstance(ask(gov, B, T0 + 12), Held)
    assert position(ask(gov, C, T0 + 13)) == (1, 1)
    actions = [(e.action, e.execution) for e in record(gov).history]
    assert actions == [("acquired", "exec-a"), ("released", "exec-a"), ("acquired", "exec-b")]


def test_repeated_polls_never_queue_an_execution_twice(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    ask(gov, A)
    for at in range(5):
        assert position(ask(gov, B, T0 + at)) == (1, 1)
    assert line(gov) == ["exec-b"]
    assert record(gov).queue[0].since == T0  # queued once, at its first poll
    assert record(gov).queue[0].seen == T0 + 4


def test_the_holder_asking_again_holds_and_renews_its_lease(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    ask(gov, A)
    again = ask(gov, Claimant("exec-a", "run-a2"), T0 + 600)  # a later gate of the execution
    assert isinstance(again, Held)
    assert again.lease.since == T0 and again.lease.expires == T0 + 600 + HOLD
    assert again.lease.run_id == "run-a2"
    writes = store.writes
    assert isinstance(ask(gov, Claimant("exec-a", "run-a2"), T0 + 600), Held)
    assert store.writes == writes  # nothing changed, nothing written


def test_latest_supersedes_every_waiter_but_never_the_holder(gov: Governance) -> None:
    ask(gov, A, mode=LATEST)
    ask(gov, B, T0 + 1, mode=SEQ)
    ask(gov, C, T0 + 2, mode=LATEST)
    assert line(gov) == ["exec-c"]
    assert record(gov).holder is not None and record(gov).holder.execution == "exec-a"  # type: ignore[union-attr]
    verdict = ask(gov, B, T0 + 3)
    assert verdict == Superseded(by="exec-c", at=T0 + 2)
    assert line(gov) == ["exec-c"]  # a superseded waiter stays out
    events = [(e.action, e.execution, e.by) for e in record(gov).history]
    assert ("superseded", "exec-b", "exec-c") in events
    gov.release("prod-eu", "exec-a", T0 + 4)
    assert isinstance(ask(gov, C, T0 + 5, mode=LATEST), Held)


def test_latest_on_a_free_lock_takes_it_from_a_waiter_that_has_not_polled_since(
    gov: Governance,
) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    gov.release("prod-eu", "exec-a", T0 + 2)
    assert isinstance(ask(gov, C, T0 + 3, mode=LATEST), Held)
    assert isinstance(ask(gov, B, T0 + 4), Superseded)


def test_a_retried_action_of_a_superseded_execution_queues_again(gov: Governance) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    ask(gov, C, T0 + 2, mode=LATEST)
    assert isinstance(ask(gov, B, T0 + 3), Superseded)
    retried = Claimant("exec-b", "run-b-retry")  # "Retry failed actions": a new run
    assert position(ask(gov, retried, T0 + 4)) == (2, 2)


def test_an_expired_lease_is_taken_over_by_the_next_waiter(gov: Governance) -> None:
    ask(gov, A)
    assert position(ask(gov, B, T0 + 10)) == (1, 1)
    verdict = ask(gov, B, T0 + HOLD)
    assert isinstance(verdict, Held)
    assert verdict.took_over is not None and verdict.took_over.execution == "exec-a"
    assert verdict.lease.since == T0 + HOLD
    actions = [(e.action, e.execution) for e in record(gov).history]
    assert actions[-2:] == [("expired", "exec-a"), ("acquired", "exec-b")]
    # A's unlock afterwards ends nothing: B holds
    released = gov.release("prod-eu", "exec-a", T0 + HOLD + 1)
    assert released.released is None and released.holder is not None
    assert released.holder.execution == "exec-b"


def test_an_expired_lease_still_counts_until_someone_polls_but_not_as_held(
    gov: Governance,
) -> None:
    ask(gov, A)
    assert record(gov).held(T0 + HOLD - 1) is not None
    assert record(gov).held(T0 + HOLD) is None


def test_a_waiter_that_stops_polling_leaves_the_line_after_its_grace(gov: Governance) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    assert position(ask(gov, C, T0 + 2)) == (2, 2)
    assert position(ask(gov, C, T0 + 1 + GRACE)) == (1, 1)  # B was last seen at T0 + 1
    assert line(gov) == ["exec-c"]
    assert ("lapsed", "exec-b") in [(e.action, e.execution) for e in record(gov).history]


def test_a_waiter_polling_late_keeps_its_place(gov: Governance) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    assert position(ask(gov, B, T0 + 1 + GRACE * 3)) == (1, 1)


def test_unlock_ends_the_lease_and_leaves_the_line(gov: Governance) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    left = gov.release("prod-eu", "exec-b", T0 + 2)  # an unlock in a failed gate's hooks
    assert left.released is None and left.dequeued
    assert line(gov) == []
    freed = gov.release("prod-eu", "exec-a", T0 + 3)
    assert freed.released is not None and freed.released.since == T0
    assert record(gov).holder is None
    nothing = gov.release("never-taken", "exec-a", T0)
    assert (nothing.released, nothing.dequeued, nothing.holder) == (None, False, None)
    assert gov.lock("never-taken") is None  # nothing changed, nothing written


def test_a_forced_unlock_is_audited(gov: Governance) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    lease = gov.force_release("prod-eu", "arn:aws:sts::1:assumed-role/Ops/bob", "stuck", T0 + 5)
    assert lease is not None and lease.execution == "exec-a"
    event = record(gov).history[-1]
    assert (event.action, event.execution, event.by, event.reason, event.at) == (
        "forced",
        "exec-a",
        "arn:aws:sts::1:assumed-role/Ops/bob",
        "stuck",
        T0 + 5,
    )
    assert gov.force_release("prod-eu", "bob", "again", T0 + 6) is None
    assert isinstance(ask(gov, B, T0 + 7), Held)


def test_the_audit_trail_is_bounded(gov: Governance) -> None:
    for i in range(MAX_HISTORY):
        ask(gov, Claimant(f"exec-{i}", f"run-{i}"), T0 + i)
        gov.release("prod-eu", f"exec-{i}", T0 + i)
    history = record(gov).history
    assert len(history) == MAX_HISTORY
    assert history[-1].execution == f"exec-{MAX_HISTORY - 1}"


# endregion
# region races


def test_two_executions_racing_for_a_free_lock_one_holds_one_waits(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    verdicts: dict[str, Verdict] = {}
    # B reads, then A's whole acquisition lands before B's write: B's write is refused,
    # B reads again and decides again.
    store.between.append(lambda: verdicts.__setitem__("a", ask(gov, A)))
    verdicts["b"] = ask(gov, B)
    assert isinstance(verdicts["a"], Held)
    assert position(verdicts["b"]) == (1, 1)
    assert store.conflicts == 1
    assert record(gov).holder is not None and line(gov) == ["exec-b"]


def test_two_deliveries_of_one_poll_racing_queue_it_once(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    ask(gov, A)
    first: list[Verdict] = []
    store.between.append(lambda: first.append(ask(gov, B, T0 + 1)))
    second = ask(gov, B, T0 + 1)
    assert position(first[0]) == position(second) == (1, 1)
    assert line(gov) == ["exec-b"]


def test_duplicate_deliveries_racing_for_a_free_lock_both_hold_one_lease(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    first: list[Verdict] = []
    store.between.append(lambda: first.append(ask(gov, A)))
    second = ask(gov, A)
    assert isinstance(first[0], Held) and isinstance(second, Held)
    assert first[0].lease == second.lease
    assert [e.action for e in record(gov).history] == ["acquired"]


def test_an_unlock_racing_a_waiters_poll_loses_nothing(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    ask(gov, A)
    ask(gov, B, T0 + 1)
    store.between.append(lambda: gov.release("prod-eu", "exec-a", T0 + 2))
    waiting = ask(gov, B, T0 + 2)  # its read saw A holding; its write lost to the unlock
    assert isinstance(waiting, Held)
    assert [e.action for e in record(gov).history] == ["acquired", "released", "acquired"]


def test_a_change_that_keeps_losing_gives_up_for_this_poll(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    ask(gov, A)
    rivals = iter(range(100))

    def rival() -> None:
        n = next(rivals)
        ask(gov, Claimant(f"rival-{n}", f"run-{n}"), T0 + 1)

    store.between.extend([rival] * ATTEMPTS)
    with pytest.raises(GovernanceBusy, match="lock prod-eu: changed by others at each of 8"):
        ask(gov, B, T0 + 1)
    assert "exec-b" not in line(gov)
    assert position(ask(gov, B, T0 + 2)) == (ATTEMPTS + 1, ATTEMPTS + 1)  # the next poll


def test_many_executions_at_once_on_threads_one_holder_each_queued_once(
    store: MemoryGovernanceStore,
) -> None:
    gov = Governance(store, attempts=1000)
    claimants = [Claimant(f"exec-{i}", f"run-{i}") for i in range(12)]
    barrier = threading.Barrier(len(claimants) * 2)
    verdicts: list[Verdict] = []

    def poll(who: Claimant) -> None:
        barrier.wait()
        verdicts.append(ask(gov, who))

    threads = [threading.Thread(target=poll, args=(c,)) for c in claimants * 2]  # each twice
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = {v.lease.execution for v in verdicts if isinstance(v, Held)}
    assert len(held) == 1
    found = record(gov)
    assert found.holder is not None and found.holder.execution in held
    queued = line(gov)
    assert sorted(queued) == sorted(c.execution for c in claimants if c.execution not in held)
    assert len(set(queued)) == len(queued)


def test_the_store_down_is_said_not_swallowed(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    store.down = True
    with pytest.raises(StoreUnavailable):
        ask(gov, A)
    with pytest.raises(StoreUnavailable):
        gov.active("payments", T0)


# endregion
# region freezes


def test_a_freeze_is_on_until_lifted_and_the_trail_says_who_did_what(gov: Governance) -> None:
    assert gov.active("payments", T0) is None
    _, replaced = gov.freeze("payments", "arn:aws:iam::1:user/alice", "quarter end", None, T0)
    assert replaced is None
    on = gov.active("payments", T0 + 5)
    assert on is not None
    assert (on.by, on.since, on.reason, on.until) == (
        "arn:aws:iam::1:user/alice",
        T0,
        "quarter end",
        None,
    )
    assert on.describe() == (
        "frozen by arn:aws:iam::1:user/alice since 2027-01-15 08:00 UTC: quarter end"
    )
    record, lifted = gov.unfreeze("payments", "arn:aws:iam::1:user/bob", "closed", T0 + 60)
    assert lifted == on
    assert gov.active("payments", T0 + 61) is None
    trail = [(e.action, e.by, e.at, e.reason) for e in record.history]
    assert trail == [
        ("set", "arn:aws:iam::1:user/alice", T0, "quarter end"),
        ("lifted", "arn:aws:iam::1:user/bob", T0 + 60, "closed"),
    ]
    _, nothing = gov.unfreeze("payments", "bob", "", T0 + 70)
    assert nothing is None


def test_a_freeze_with_until_ends_by_itself(gov: Governance) -> None:
    gov.freeze("payments", "alice", "xmas", T0 + 3600, T0)
    on = gov.active("payments", T0 + 3599)
    assert on is not None and on.describe().endswith("until 2027-01-15 09:00 UTC: xmas")
    assert gov.active("payments", T0 + 3600) is None


def test_setting_a_freeze_again_replaces_it(gov: Governance) -> None:
    gov.freeze("payments", "alice", "first", None, T0)
    _, replaced = gov.freeze("payments", "bob", "second", None, T0 + 1)
    assert replaced is not None and replaced.by == "alice"
    on = gov.active("payments", T0 + 2)
    assert on is not None and (on.by, on.reason) == ("bob", "second")


def test_freezes_and_locks_are_listed_by_name(gov: Governance) -> None:
    gov.freeze("payments", "alice", "r", None, T0)
    gov.freeze("checkout", "alice", "r", T0 + 1, T0)
    ask(gov, A)
    assert [f.name for f in gov.freezes()] == ["checkout", "payments"]
    assert [lock.name for lock in gov.locks()] == ["prod-eu"]


def test_stored_documents_are_json_and_versioned(
    gov: Governance, store: MemoryGovernanceStore
) -> None:
    gov.freeze("payments", "alice", "r", None, T0)
    gov.unfreeze("payments", "alice", "", T0 + 1)
    stored = store.documents[Kind.FREEZE, "payments"]
    assert stored.version == 2 and stored.document["current"] is None


# endregion
