"""Capacity per tick: read and write units by base table and by index, as DynamoDB reports them.

The handler reaches DynamoDB Local through the counting proxy in `--capacity INDEXES` mode:
every request asks for `ReturnConsumedCapacity: INDEXES`, and the proxy records the units
spent on the table and on each index. Each kind of tick (bench.rig.KINDS) is met once per
step of a run of waits; several runs show the figures do not vary.

For comparison, the previous release's advancing write (SET of `status`, `updated_at`,
`summary`, `version`, `last_job_id`: the legacy `by-status` index's key and projection) is
replayed with raw boto3 on a run's item, asking for the same report.

The result is what bench/scaling.py turns into docs/SCALING.md (`python -m bench.scaling`).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bench.calls import LABELS
from bench.proxy import CountingProxy
from bench.rig import KINDS, tick, walk
from orchestrator.store.dynamodb import LEGACY_INDEX, LIST_INDEX, LIST_SHARDS

if TYPE_CHECKING:
    from bench.proxy import Record
    from bench.rig import Stack
    from orchestrator.local.emulator import JobRecord

READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan"})
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})


def measure(stack: Stack, runs: int = 3, steps: int = 4) -> dict[str, Any]:
    """Units per tick kind: {"kinds": {kind: {"rcu": {where: u}, "wcu": {where: u}, ...}}}."""
    table = stack.new_table()
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    run_ids: list[str] = []
    with CountingProxy(stack.dynamodb_url, capacity="INDEXES") as proxy:
        emulator = stack.fresh_emulator()
        stack.install_handler(table, dynamodb_url=proxy.url)

        def on_tick(kind: str, step: int, job: JobRecord) -> None:
            proxy.mark()
            before = len(emulator.requests)
            seconds = tick(job)
            sample = _sample(proxy.window())
            sample["codepipeline"] = len(emulator.requests) - before
            sample["ms"] = seconds * 1000
            seen[kind].append(sample)

        for _ in range(runs):
            run_ids.append(walk(stack, steps, on_tick))
    kinds = {kind: _summarise(kind, seen[kind]) for kind in KINDS}
    return {
        "runs": runs,
        "steps": steps,
        "list_index": LIST_INDEX,
        "legacy_index": LEGACY_INDEX,
        "list_shards": LIST_SHARDS,
        "kinds": kinds,
        "legacy_advance": _legacy_advance(stack, table, run_ids[0]),
    }


def _sample(records: list[Record]) -> dict[str, Any]:
    """One tick's requests and units, by where they were spent."""
    requests: dict[str, int] = defaultdict(int)
    rcu: dict[str, float] = defaultdict(float)
    wcu: dict[str, float] = defaultdict(float)
    for record in records:
        if record.status != 200:
            raise RuntimeError(f"HTTP {record.status} on {record.operation}")
        requests[record.operation] += 1
        target = rcu if record.operation in READS else wcu
        for where, units in (record.capacity or {}).items():
            target[where] += units
    return {"requests": dict(requests), "rcu": dict(rcu), "wcu": dict(wcu)}


def _summarise(kind: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest figure seen for each request and each place (they do not vary here)."""

    def most(field: str) -> dict[str, float]:
        places = sorted({where for s in samples for where in s[field]})
        return {w: max(s[field].get(w, 0) for s in samples) for w in places}

    return {
        "label": LABELS[kind],
        "ticks": len(samples),
        "requests": most("requests"),
        "rcu": most("rcu"),
        "wcu": most("wcu"),
        "varies": any(
            s[field] != samples[0][field] for s in samples for field in ("requests", "rcu", "wcu")
        ),
        "codepipeline": max(s["codepipeline"] for s in samples),
        "loopback_ms_p50": round(statistics.median(s["ms"] for s in samples), 2),
    }


def _legacy_advance(stack: Stack, table: str, run_id: str) -> dict[str, Any]:
    """The previous release's advancing UpdateItem, replayed on a copy of a real run's item."""
    client = stack.dynamodb()
    item = stack.item(table, run_id)
    copy = {**item, "run_id": {"S": f"{run_id}-legacy"}, "status": {"S": "RUNNING"}}
    for name in ("list_key", "listed_at", "ticked_at"):
        copy.pop(name, None)
    copy["updated_at"] = {"N": str(time.time())}
    client.put_item(TableName=table, Item=copy)
    answer = client.update_item(
        TableName=table,
        Key={"run_id": copy["run_id"]},
        UpdateExpression="SET #s = :s, updated_at = :u, summary = :m, version = :v, "
        "last_job_id = :j",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "RUNNING"},
            ":u": {"N": str(time.time() + 60)},
            ":m": {"S": "step 2/4 'wait-1': waiting 5m"},
            ":v": {"N": "99"},
            ":j": {"S": "legacy-job"},
        },
        ReturnConsumedCapacity="INDEXES",
    )
    consumed = answer["ConsumedCapacity"]
    wcu = {"table": float(consumed["Table"]["CapacityUnits"])}
    for name, spent in consumed.get("GlobalSecondaryIndexes", {}).items():
        wcu[name] = float(spent["CapacityUnits"])
    return {"label": "advancing tick of the previous release (replayed)", "wcu": wcu}
