"""`orchestrator runs` at 100,000 runs: the listing's time does not grow with the table.

A table in DynamoDB Local is filled with `runs` generated items, as this release writes them
(running ones in RUNNING#<shard>, ended ones in SUCCEEDED#/FAILED#<shard>), plus `legacy`
items as the previous release wrote them (in the legacy `by-status` index only) and the
items that are not runs (a definition, a freeze, a lock, the governance directory). Then the
store's listing (`DynamoRunStore.recent`, what `orchestrator runs` calls) is timed: newest
20 of every status, newest 20 running, and the 1,000 the CLI resolves run-id prefixes from.
Each result is checked against the generator's own truth (newest first, nothing else listed).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from orchestrator.model import RunStatus
from orchestrator.store.dynamodb import DynamoRunStore, bind_model, list_key

if TYPE_CHECKING:
    from bench.rig import Stack

SUMMARY = "step 2/3 'soak': waiting 40m (until 12:00:00Z)"
STATUSES = (RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED)


def _item(i: int, legacy: bool) -> dict[str, Any]:
    """Run number i: started at second i, every third one running, then succeeded, failed."""
    run_id = f"{'legacy' if legacy else 'run'}-{i:07d}"
    status = STATUSES[i % 3]
    at = float(i)
    item: dict[str, Any] = {
        "run_id": {"S": run_id},
        "status": {"S": status.value},
        "created_at": {"N": str(at)},
        "summary": {"S": SUMMARY},
        "version": {"N": "3"},
        "last_job_id": {"S": run_id},
        "expires_at": {"N": "4102444800"},
    }
    ended = at + 0.5  # an ended run is listed by its end
    if legacy:
        item["updated_at"] = {"N": str(ended if status is not RunStatus.RUNNING else at)}
    else:
        item["ticked_at"] = {"N": str(ended)}
        item["list_key"] = {"S": list_key(status, run_id)}
        item["listed_at"] = {"N": str(at if status is RunStatus.RUNNING else ended)}
    return item


def fill(stack: Stack, table: str, runs: int, legacy: int, threads: int = 4) -> float:
    """Write the items with BatchWriteItem (25 at a time); the seconds it took."""
    client = stack.dynamodb()
    items = [_item(i, legacy=False) for i in range(runs)]
    items += [_item(i, legacy=True) for i in range(0, runs, max(1, runs // max(legacy, 1)))][
        :legacy
    ]
    items += [
        {"run_id": {"S": "definition#abc"}, "definition": {"S": "{}"}},
        {"run_id": {"S": "freeze#prod"}, "version": {"N": "1"}, "document": {"S": "{}"}},
        {"run_id": {"S": "lock#env"}, "version": {"N": "1"}, "document": {"S": "{}"}},
        {"run_id": {"S": "governance#directory"}, "lock_names": {"SS": ["env"]}},
    ]

    def write(chunk: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, (items[i : i + 25] for i in range(0, len(items), 25))))
    return time.perf_counter() - started


def _expected(runs: int, legacy: int, status: RunStatus | None, limit: int) -> list[str]:
    """The generator's truth: newest first by start (running) or end (ended)."""
    entries: dict[str, float] = {}
    for i in range(runs):
        s = STATUSES[i % 3]
        if status in (None, s):
            entries[f"run-{i:07d}"] = i if s is RunStatus.RUNNING else i + 0.5
    step = max(1, runs // max(legacy, 1))
    for i in list(range(0, runs, step))[:legacy]:
        s = STATUSES[i % 3]
        if status in (None, s):
            entries[f"legacy-{i:07d}"] = i if s is RunStatus.RUNNING else i + 0.5
    return sorted(entries, key=lambda r: (entries[r], r), reverse=True)[:limit]


def measure(
    stack: Stack, runs: int = 100_000, legacy: int = 1_000, repeats: int = 5
) -> dict[str, Any]:
    table = stack.new_table()
    fill_seconds = fill(stack, table, runs, legacy)
    stack.install_handler(table)  # the environment the CLI's store would see
    store = DynamoRunStore(bind_model(table, region="us-east-1"))
    store.recent(None, 1)  # the client's first request (connection, credentials) is not timed
    cases: list[dict[str, Any]] = []
    for status, limit in (
        (None, 20),
        (RunStatus.RUNNING, 20),
        (RunStatus.SUCCEEDED, 20),
        (None, 1000),
    ):
        times: list[float] = []
        found: list[str] = []
        for _ in range(repeats):
            started = time.perf_counter()
            found = [r.run_id for r in store.recent(status, limit)]
            times.append((time.perf_counter() - started) * 1000)
        expected = _expected(runs, legacy, status, limit)
        cases.append(
            {
                "status": status.value if status else "any",
                "limit": limit,
                "ms_p50": round(statistics.median(times), 1),
                "ms_max": round(max(times), 1),
                "correct": found == expected,
                "listed": len(found),
            }
        )
    return {
        "runs": runs,
        "legacy_runs": legacy,
        "fill_seconds": round(fill_seconds, 1),
        "repeats": repeats,
        "cases": cases,
    }
