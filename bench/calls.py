"""Calls per tick, counted on the wire.

DynamoDB requests are counted by the counting proxy in front of DynamoDB Local (operation,
condition, consistency, status); CodePipeline requests by the emulator's own request log.
Each kind of tick is met once per run; several runs show the counts do not vary.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.proxy import CountingProxy
from bench.rig import KINDS, Stack, tick, walk

if TYPE_CHECKING:
    from orchestrator.local.emulator import JobRecord

FLOOR: dict[str, dict[str, int]] = {
    # kind -> the fewest calls that can do the job (the brief's floor)
    # the run, and once per run for resume on retry: which execution's action the job is
    # (GetJobDetails) and the link from that action to the run (a conditional PutItem)
    "first": {"GetItem": 1, "PutItem": 2, "CodePipeline": 2},
    "advance": {"GetItem": 1, "UpdateItem": 1, "CodePipeline": 1},
    "idle": {"CodePipeline": 1},
    "stale": {"GetItem": 1, "CodePipeline": 1},
    "last": {"GetItem": 1, "UpdateItem": 1, "CodePipeline": 1},
}
LABELS = {
    "first": "first tick (creates the run)",
    "advance": "advancing tick",
    "idle": "idle tick, fresh hints",
    "stale": "idle tick, stale hints",
    "last": "last tick (outputs)",
}


def measure(
    stack: Stack, runs: int = 3, steps: int = 5, user_parameters: str | None = None
) -> dict[str, Any]:
    """Count every request of every tick of `runs` runs (of `user_parameters`, default a
    gate of waits); one row per kind of tick."""
    table = stack.new_table()
    seen: dict[str, list[Counter[str]]] = {kind: [] for kind in KINDS}
    flags: dict[str, set[str]] = {kind: set() for kind in KINDS}
    with CountingProxy(stack.dynamodb_url) as proxy:
        emulator = stack.fresh_emulator()
        stack.install_handler(table, dynamodb_url=proxy.url)

        def on_tick(kind: str, step: int, job: JobRecord) -> None:
            proxy.mark()
            before = len(emulator.requests)
            tick(job)
            counts: Counter[str] = Counter()
            for record in proxy.window():
                counts[record.operation] += 1
                if record.operation in ("PutItem", "UpdateItem") and record.conditional:
                    flags[kind].add(f"conditional {record.operation}")
                if record.operation == "GetItem" and record.consistent:
                    flags[kind].add("consistent GetItem")
                if record.status != 200:
                    flags[kind].add(f"HTTP {record.status} on {record.operation}")
            counts["CodePipeline"] = len(emulator.requests) - before
            seen[kind].append(counts)

        for _ in range(runs):
            walk(stack, steps, on_tick, user_parameters)
    rows = []
    for kind in KINDS:
        observed = seen[kind]
        operations = sorted({op for counts in observed for op in counts} | set(FLOOR[kind]))
        measured = {op: _span([counts[op] for counts in observed]) for op in operations}
        rows.append(
            {
                "kind": kind,
                "label": LABELS[kind],
                "ticks": len(observed),
                "measured": measured,
                "floor": FLOOR[kind],
                "at_floor": all(
                    counts.get(op, 0) == FLOOR[kind].get(op, 0)
                    for counts in observed
                    for op in operations
                ),
                "flags": sorted(flags[kind]),
            }
        )
    return {"runs": runs, "steps": steps, "rows": rows}


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def describe(counts: dict[str, Any]) -> str:
    """'1 GetItem + 1 UpdateItem' for a row's DynamoDB part ('none' when empty)."""
    parts = [f"{n} {op}" for op, n in counts.items() if op != "CodePipeline" and n not in ("0", 0)]
    return " + ".join(parts) or "none"
