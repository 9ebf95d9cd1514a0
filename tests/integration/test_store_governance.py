"""Freezes and locks in the runs table (DynamoGovernanceStore) against DynamoDB Local: writes
conditional on the version, the directory the CLI lists from, executions racing for a lock
on real threads and real conditional writes."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from orchestrator.exceptions import ConflictError, StoreUnavailable
from orchestrator.governance import Claimant, Governance, Held, Kind, LockMode, Verdict, Waiting
from orchestrator.store.dynamodb import bind_model
from orchestrator.store.governance import DynamoGovernanceStore

T0 = 1_800_000_000.0


@pytest.fixture
def store(table_name: str) -> DynamoGovernanceStore:
    return DynamoGovernanceStore(bind_model(table_name))


def test_writes_are_conditional_on_the_version(store: DynamoGovernanceStore) -> None:
    assert store.read(Kind.LOCK, "prod-eu") is None
    store.write(Kind.LOCK, "prod-eu", {"name": "prod-eu", "n": 1}, None)
    with pytest.raises(ConflictError, match="lock prod-eu: changed meanwhile"):
        store.write(Kind.LOCK, "prod-eu", {"name": "prod-eu", "n": 9}, None)  # exists already
    store.write(Kind.LOCK, "prod-eu", {"name": "prod-eu", "n": 2}, 1)
    with pytest.raises(ConflictError):
        store.write(Kind.LOCK, "prod-eu", {"name": "prod-eu", "n": 9}, 1)  # stale
    found = store.read(Kind.LOCK, "prod-eu")
    assert found is not None and (found.version, found.document["n"]) == (2, 2)
    assert store.read(Kind.FREEZE, "prod-eu") is None  # kinds do not share names


def test_the_items_are_in_no_index_and_never_expire(
    store: DynamoGovernanceStore, dynamodb: Any, table_name: str
) -> None:
    store.write(Kind.FREEZE, "payments", {"name": "payments"}, None)
    items = {i["run_id"]["S"]: i for i in dynamodb.scan(TableName=table_name)["Items"]}
    assert sorted(items) == ["freeze#payments", "governance#directory"]
    for item in items.values():
        assert "status" not in item and "expires_at" not in item
    assert items["governance#directory"]["freeze_names"] == {"SS": ["payments"]}


def test_listing_reads_the_directory(store: DynamoGovernanceStore) -> None:
    for name in ("b-lock", "a-lock"):
        store.write(Kind.LOCK, name, {"name": name}, None)
    store.write(Kind.FREEZE, "payments", {"name": "payments"}, None)
    assert [v.document["name"] for v in store.read_all(Kind.LOCK)] == ["a-lock", "b-lock"]
    assert [v.document["name"] for v in store.read_all(Kind.FREEZE)] == ["payments"]


def test_executions_racing_on_threads_get_one_holder_and_one_place_each(
    store: DynamoGovernanceStore,
) -> None:
    governance = Governance(store, attempts=100)
    claimants = [Claimant(f"exec-{i}", f"run-{i}") for i in range(6)]
    barrier = threading.Barrier(len(claimants) * 2)
    verdicts: list[Verdict] = []

    def poll(who: Claimant) -> None:
        barrier.wait()
        verdicts.append(governance.acquire("prod-eu", who, LockMode.SEQUENTIAL, 60, 600, T0))

    threads = [threading.Thread(target=poll, args=(c,)) for c in claimants * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holders = {v.lease.execution for v in verdicts if isinstance(v, Held)}
    assert len(holders) == 1 and len(verdicts) == 12
    record = governance.lock("prod-eu")
    assert record is not None and record.holder is not None
    assert record.holder.execution in holders
    queued = [w.execution for w in record.queue]
    assert sorted(queued) == sorted(c.execution for c in claimants if c.execution not in holders)
    positions = {(v.position, v.waiting) for v in verdicts if isinstance(v, Waiting)}
    assert all(1 <= p <= w <= 5 for p, w in positions)


def test_an_unreachable_table_is_store_unavailable(table_name: str) -> None:
    store = DynamoGovernanceStore(bind_model(table_name, host="http://127.0.0.1:9", retries=0))
    with pytest.raises(StoreUnavailable, match="lock prod-eu: read failed"):
        store.read(Kind.LOCK, "prod-eu")
    with pytest.raises(StoreUnavailable, match="freeze payments: write failed"):
        store.write(Kind.FREEZE, "payments", {}, None)
    with pytest.raises(StoreUnavailable, match="listing locks failed"):
        store.read_all(Kind.LOCK)
