"""Per-tick overhead: the handler against a floor written with raw boto3 making the same calls.

The floor replays what the handler sent, recorded from a warm-up run of the same gate: the
same item (every attribute, so the same size) read with a consistent GetItem and written
with a conditional UpdateItem (PutItem on the first tick), and the same PutJobSuccessResult
(same token length, summary and output variables) on a job of its own. It does no parsing,
no engine, no logging: the fewest bytes and calls a tick can cost.

Handler and floor alternate tick by tick (which one goes first flips each time), so drift
in DynamoDB Local (JIT, garbage collection) or the machine hits both alike.
"""

from __future__ import annotations

import copy
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.rig import KINDS, Stack, tick, walk

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.local.emulator import JobRecord

UPDATED = (
    # what the handler's UpdateItem sets (orchestrator/store/dynamodb.py DynamoRunStore.save)
    "version",
    "status",
    "updated_at",
    "expires_at",
    "nonce",
    "prev_nonce",
    "last_job_id",
    "summary",
    "state",
    "answer",
)


@dataclass
class Recording:
    """What the handler sent in one run: the item after each write, each answer's parameters."""

    items: dict[int, dict[str, Any]] = field(default_factory=dict)  # version -> item
    answers: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def record(stack: Stack, table: str, steps: int) -> Recording:
    """Run one gate through the handler and keep what the floor must replay."""
    recording = Recording()
    run_ids: list[str] = []

    def remember(kind: str, step: int, job: JobRecord) -> None:
        if kind == "first":
            run_ids.append(job.job_id)  # the run id is its first job's id
        tick(job)
        assert job.answer is not None
        recording.answers[(kind, step)] = copy.deepcopy(job.answer["params"])
        if kind in ("first", "advance", "last"):
            item = stack.item(table, run_ids[-1])
            recording.items[int(item["version"]["N"])] = item

    walk(stack, steps, remember)
    return recording


class Floor:
    """Raw boto3: the calls a tick must make, and nothing else (a first tick: the run, its
    job's details and the link from its pipeline execution's action, as bench/calls.py's
    floor counts them)."""

    def __init__(self, stack: Stack, table: str, recording: Recording) -> None:
        self._dynamodb = stack.dynamodb()
        self._codepipeline = stack.codepipeline()
        self._table = table
        self._recording = recording
        self._updates: dict[int, dict[str, Any]] = {}
        for version, item in recording.items.items():
            if version == 1:
                continue
            names = {f"#a{i}": name for i, name in enumerate(UPDATED) if name in item}
            values = {f":v{i}": item[name] for i, name in enumerate(UPDATED) if name in item}
            sets = ", ".join(f"{n} = :v{n[2:]}" for n in names)
            names["#ver"] = "version"
            values[":expected"] = {"N": str(version - 1)}
            self._updates[version] = {
                "UpdateExpression": f"SET {sets}",
                "ConditionExpression": "#ver = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }

    def new_key(self) -> dict[str, Any]:
        return {"run_id": {"S": f"floor-{uuid.uuid4()}"}}

    def do(self, kind: str, step: int, key: dict[str, Any], job_id: str) -> None:
        """One tick's calls, as the handler made them for this kind and step."""
        if kind != "idle":
            self._dynamodb.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if kind == "first":
            # Which execution's action the job is, and the link to its run (resume on retry).
            self._codepipeline.get_job_details(jobId=job_id)
            link = {"run_id": {"S": f"execution#{key['run_id']['S']}"}, "run": key["run_id"]}
            self._dynamodb.put_item(
                TableName=self._table,
                Item={**link, "expires_at": self._recording.items[1]["expires_at"]},
                ConditionExpression="attribute_not_exists(run_id)",
            )
            item = {**self._recording.items[1], **key}
            self._dynamodb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(run_id)",
            )
        elif kind in ("advance", "last"):
            self._dynamodb.update_item(TableName=self._table, Key=key, **self._updates[step + 1])
        params = {**self._recording.answers[(kind, step)], "jobId": job_id}
        self._codepipeline.put_job_success_result(**params)


def measure(
    stack: Stack, samples: int = 300, steps: int = 5, warmup_runs: int = 3
) -> dict[str, Any]:
    """Median handler and floor time per kind of tick, interleaved, `samples` of each."""
    table = stack.new_table()
    stack.fresh_emulator()
    stack.install_handler(table)
    recording = record(stack, table, steps)
    floor = Floor(stack, table, recording)
    times: dict[str, dict[str, list[float]]] = {k: {"handler": [], "floor": []} for k in KINDS}
    flip = False
    measuring = False
    key: dict[str, Any] = {}

    def on_tick(kind: str, step: int, job: JobRecord) -> None:
        nonlocal flip, key
        if kind == "first":
            key = floor.new_key()
        floor_job = stack.job()

        def run_floor() -> float:
            started = time.perf_counter()
            floor.do(kind, step, key, floor_job.job_id)
            return time.perf_counter() - started

        def run_handler() -> float:
            return tick(job)

        order: list[tuple[str, Callable[[], float]]] = [
            ("handler", run_handler),
            ("floor", run_floor),
        ]
        if flip:
            order.reverse()
        flip = not flip
        for who, run in order:
            elapsed = run()
            if measuring:
                times[kind][who].append(elapsed)

    for _ in range(warmup_runs):
        walk(stack, steps, on_tick)
    measuring = True
    runs = -(-samples // (steps - 1))
    started = time.perf_counter()
    for _ in range(runs):
        walk(stack, steps, on_tick)
    wall = time.perf_counter() - started
    rows = []
    for kind in KINDS:
        handler_ms = [t * 1000 for t in times[kind]["handler"]]
        floor_ms = [t * 1000 for t in times[kind]["floor"]]
        h, f = statistics.median(handler_ms), statistics.median(floor_ms)
        rows.append(
            {
                "kind": kind,
                "samples": len(handler_ms),
                "handler_ms": round(h, 3),
                "floor_ms": round(f, 3),
                "ratio": round(h / f, 3),
                "overhead_ms": round(h - f, 3),
                "handler_p90_ms": round(_quantile(handler_ms, 0.9), 3),
                "floor_p90_ms": round(_quantile(floor_ms, 0.9), 3),
            }
        )
    item_bytes = {v: dynamodb_item_size(item) for v, item in recording.items.items()}
    token_chars = sorted(
        {
            len(a["continuationToken"])
            for a in recording.answers.values()
            if "continuationToken" in a
        }
    )
    return {
        "runs": runs,
        "steps": steps,
        "wall_seconds": round(wall, 1),
        "rows": rows,
        "item_bytes": item_bytes,
        "token_chars": [token_chars[0], token_chars[-1]] if token_chars else [],
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute name lengths plus value sizes (UTF-8 bytes)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return len(str(data).lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in data)
    return len(str(data).encode())


_GROUPS = (
    # (substring of the file or builtin name, group), first match wins
    ("orchestrator/", "orchestrator"),
    ("pynamodb/", "pynamodb"),
    ("pydantic", "pydantic"),
    ("botocore/", "botocore"),
    ("urllib3/", "HTTP client"),
    ("/http/", "HTTP client"),
    ("/email/", "HTTP client"),
    ("json", "json"),
    ("copy.py", "copy"),
    ("logging/", "logging"),
    ("_socket.socket", "socket (waiting for the server)"),
)


def _group(where: tuple[str, int, str]) -> str:
    text = f"{where[0]} {where[2]}"
    for needle, name in _GROUPS:
        if needle in text:
            return name
    return "other"


PROFILED = ("advance", "idle")


def profile(stack: Stack, ticks: int = 120, steps: int = 5) -> dict[str, Any]:
    """cProfile own time per tick (advancing and idle), grouped by package, handler minus
    floor: where the handler's extra time goes."""
    import cProfile

    table = stack.new_table()
    stack.fresh_emulator()
    stack.install_handler(table)
    recording = record(stack, table, steps)
    floor = Floor(stack, table, recording)
    profiles = {
        (who, kind): cProfile.Profile() for who in ("handler", "floor") for kind in PROFILED
    }
    key: dict[str, Any] = {}
    count = 0

    def on_tick(kind: str, step: int, job: JobRecord) -> None:
        nonlocal key, count
        if kind == "first":
            key = floor.new_key()
        floor_job = stack.job()
        if kind not in PROFILED:
            tick(job)
            floor.do(kind, step, key, floor_job.job_id)
            return
        count += kind == "advance"
        with profiles[("handler", kind)]:
            tick(job)
        with profiles[("floor", kind)]:
            floor.do(kind, step, key, floor_job.job_id)

    walk(stack, steps, lambda kind, step, job: tick(job))  # warm the handler's clients
    while count < ticks:
        walk(stack, steps, on_tick)
    per_tick: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in PROFILED}
    for (who, kind), prof in profiles.items():
        groups: dict[str, float] = {}
        prof.create_stats()
        for where, (_, _, own, _, _) in prof.stats.items():
            name = _group(where)
            groups[name] = groups.get(name, 0.0) + own * 1000 / count
        per_tick[kind][who] = groups
    extra: dict[str, dict[str, float]] = {}
    for kind, by_who in per_tick.items():
        diff = {
            name: round(ms - by_who["floor"].get(name, 0.0), 2)
            for name, ms in by_who["handler"].items()
        }
        extra[kind] = {
            k: v for k, v in sorted(diff.items(), key=lambda kv: kv[1], reverse=True) if v >= 0.02
        }
    return {"ticks": count, "extra_ms": extra, "per_tick_ms": per_tick}
