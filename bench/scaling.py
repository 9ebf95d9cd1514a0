"""docs/SCALING.md, generated from measured per-tick figures (no hand-typed numbers).

    python -m bench.scaling                      # render docs/scaling.json into docs/SCALING.md
    python -m bench.scaling --measure            # measure first (capacity, hold; --listing too)
    python -m bench.scaling --measure --listing  # ... and `orchestrator runs` at 100,000 runs

The measurement (docs/scaling.json) holds what bench/capacity.py, bench/hold.py and
bench/listing.py measured against DynamoDB Local and the emulator. Everything else here is a
model input, named and stated in the document: the sizes and cadences asked about, how often
a gate polls and how long it lasts, AWS's published limits, and the prices in bench/cost.py.
tests/unit/test_scaling_doc.py checks that docs/SCALING.md is exactly `render(scaling.json)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cost import LAMBDA_BILLED_MS, LAMBDA_MEMORY_GB, PRICES, PRICES_AS_OF
from orchestrator.durations import parse_duration

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENT = ROOT / "docs" / "scaling.json"
DOCUMENT = ROOT / "docs" / "SCALING.md"

SIZES = (1_000, 100_000, 1_000_000)
"""Concurrently running gates."""
CADENCES = (30.0, 60.0)
"""Seconds between CodePipeline's re-invocations (not documented by AWS; both are shown)."""
POLL_EVERY = 60.0
"""Model gate: it polls (an advancing tick: a read and a write) every 60 s; between polls,
the jobs are idle ticks (no DynamoDB call: the token's hints say nothing is due)."""
KIND_ORDER = ("first", "advance", "idle", "stale", "last")
GATE_HOURS = 1.0
"""Model gate: it lasts an hour, so each second N/3600 runs start and N/3600 end (the only
ticks that write the runs index)."""


@dataclass(frozen=True)
class Limit:
    """A published limit, what it is per, and the setting that lifts it."""

    name: str
    value: float
    unit: str
    lift: str


PARTITION_WCU = Limit(
    "DynamoDB partition writes",
    1_000,
    "WCU/s per partition key",
    "spread the key: the runs index's shard count (LIST_SHARDS in orchestrator/store/dynamodb.py)",
)
PARTITION_RCU = Limit(
    "DynamoDB partition reads",
    3_000,
    "RCU/s per partition key",
    "none needed: each run is its own key",
)
TABLE_WCU = Limit(
    "DynamoDB on-demand table writes (account quota)",
    40_000,
    "WRU/s per table",
    "Service Quotas: raise DynamoDB's table-level write throughput quota for on-demand tables",
)
TABLE_RCU = Limit(
    "DynamoDB on-demand table reads (account quota)",
    40_000,
    "RRU/s per table",
    "Service Quotas: raise DynamoDB's table-level read throughput quota for on-demand tables",
)
LAMBDA_CONCURRENCY = Limit(
    "Lambda concurrent executions (account quota)",
    1_000,
    "per account and region",
    "Service Quotas: raise Lambda's concurrent executions quota (then reserve it for the "
    "function with ReservedConcurrentExecutions)",
)
LIMITS_AS_OF = "2026-11-25"
"""When the limits above were read from AWS's quota pages (defaults; all but the partition
limits are adjustable)."""


# region the model


def rates(capacity: dict[str, Any], gates: float, cadence: float) -> dict[str, Any]:
    """Per-second totals and the hottest key's load, for `gates` running gates."""
    kinds = capacity["kinds"]
    advancing = gates / max(cadence, POLL_EVERY)  # advancing ticks per second
    idle = gates / cadence - advancing
    transitions = gates / (GATE_HOURS * 3600)  # runs started (and ended) per second
    mix = {"advance": advancing, "idle": idle, "first": transitions, "last": transitions}

    def total(field: str, where: str | None = None) -> float:
        return sum(
            n
            * (
                sum(kinds[k][field].values())
                if where is None
                else float(kinds[k][field].get(where, 0))
            )
            for k, n in mix.items()
        )

    index = capacity["list_index"]
    index_wcu = total("wcu", index)
    per_run_wcu = (sum(kinds["advance"]["wcu"].values()) if kinds["advance"]["wcu"] else 0) / max(
        cadence, POLL_EVERY
    )
    per_run_rcu = float(kinds["advance"]["rcu"].get("table", 0)) / max(cadence, POLL_EVERY)
    invocations = gates / cadence
    requests = sum(n * sum(kinds[k]["requests"].values()) for k, n in mix.items())
    legacy = capacity["legacy_advance"]["wcu"].get(capacity["legacy_index"], 0.0)
    return {
        "invocations": invocations,
        "dynamodb_requests": requests,
        "codepipeline_requests": invocations,
        "rcu": total("rcu"),
        "wcu_table": total("wcu", "table"),
        "wcu_index": index_wcu,
        "wcu": total("wcu"),
        "run_key_wcu": per_run_wcu,
        "run_key_rcu": per_run_rcu,
        # A transition writes one entry (start) or moves one (end: a delete and a put, in two
        # keys); counting every unit against one shard's key overstates it, on purpose.
        "index_key_wcu": index_wcu / capacity["list_shards"],
        "legacy_key_wcu": advancing * legacy,  # the previous release: every tick, one key
        "concurrency": invocations * LAMBDA_BILLED_MS / 1000,
    }


def loads(figures: dict[str, Any]) -> list[tuple[Limit, float]]:
    """(limit, fraction of it used) for every limit the model checks."""
    return [
        (
            PARTITION_WCU,
            max(figures["run_key_wcu"], figures["index_key_wcu"]) / PARTITION_WCU.value,
        ),
        (PARTITION_RCU, figures["run_key_rcu"] / PARTITION_RCU.value),
        (TABLE_WCU, figures["wcu"] / TABLE_WCU.value),
        (TABLE_RCU, figures["rcu"] / TABLE_RCU.value),
        (LAMBDA_CONCURRENCY, figures["concurrency"] / LAMBDA_CONCURRENCY.value),
    ]


def first_limit(figures: dict[str, Any]) -> tuple[Limit, float]:
    """The limit closest to (or furthest past) being hit."""
    return max(loads(figures), key=lambda pair: pair[1])


def gate_hour_dollars(capacity: dict[str, Any], cadence: float) -> dict[str, float]:
    """What one gate costs per hour at this cadence (Lambda, DynamoDB), from the rates."""
    figures = rates(capacity, 1.0, cadence)
    invocations = figures["invocations"] * 3600
    lambda_dollars = invocations * PRICES["lambda_request"] + (
        invocations * LAMBDA_BILLED_MS / 1000 * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second_arm64"]
    )
    rru = figures["rcu"] * 3600
    wru = figures["wcu"] * 3600
    dynamodb = rru * PRICES["dynamodb_rru"] + wru * PRICES["dynamodb_wru"]
    return {"lambda": lambda_dollars, "dynamodb": dynamodb, "total": lambda_dollars + dynamodb}


# endregion
# region rendering


def _n(value: float) -> str:
    """A figure for a table: integers with separators, small values with 3 significant digits."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:,.1f}%"


def _units(places: dict[str, float]) -> str:
    return ", ".join(f"{where} {_n(units)}" for where, units in places.items()) or "none"


def render(measurement: dict[str, Any]) -> str:
    capacity = measurement["capacity"]
    kinds = capacity["kinds"]
    index = capacity["list_index"]
    lines = [
        "# Scaling: capacity, limits and cost at 1,000 to 1,000,000 running gates",
        "",
        "<!-- Generated by `python -m bench.scaling` from docs/scaling.json (measured on "
        f"{measurement['date']}); do not edit by hand. -->",
        "",
        "Every figure below is computed by bench/scaling.py from per-tick capacity units that "
        "DynamoDB Local reported (`ReturnConsumedCapacity: INDEXES`, bench/capacity.py) for the "
        "production handler, and from the model inputs stated here.",
        "",
        "## Measured: units per tick",
        "",
        f"Read (RCU) and write (WCU) units per tick, by base table and index; {capacity['runs']} "
        f"runs of {capacity['steps']} waits, the largest figure seen (`varies`: not every tick "
        "of the kind spent the same).",
        "",
        "| tick | DynamoDB requests | RCU | WCU | varies |",
        "|---|---|---|---|---|",
    ]
    for kind in (kinds[k] for k in KIND_ORDER if k in kinds):
        requests = " + ".join(f"{n} {op}" for op, n in kind["requests"].items()) or "none"
        lines.append(
            f"| {kind['label']} | {requests} | {_units(kind['rcu'])} | {_units(kind['wcu'])} | "
            f"{'yes' if kind['varies'] else 'no'} |"
        )
    legacy = capacity["legacy_advance"]
    lines += [
        f"| {legacy['label']} | 1 UpdateItem | - | {_units(legacy['wcu'])} | - |",
        "",
        f"The runs index `{index}` is written by the first and the last tick only; advancing and "
        f"idle ticks write no index. The legacy index `{capacity['legacy_index']}` receives no "
        "write from runs this release starts. Its partition key is "
        f"`<STATUS>#<shard>` with {capacity['list_shards']} shards per status.",
        "",
        "## The model",
        "",
        f"- A gate polls every {_n(POLL_EVERY)} s (an advancing tick); CodePipeline re-invokes the "
        "function every 30 s or 60 s; the jobs between polls are idle ticks.",
        f"- A gate lasts {_n(GATE_HOURS)} h on average, so N/{_n(GATE_HOURS * 3600)} runs start "
        "and as many end each second (first and last ticks).",
        f"- A tick is billed {_n(LAMBDA_BILLED_MS)} ms at {_n(LAMBDA_MEMORY_GB * 1024)} MB arm64 "
        "(bench/cost.py's assumption for AWS); Lambda concurrency = invocations per second x "
        "that duration.",
        f"- Limits ({LIMITS_AS_OF}, defaults): "
        + "; ".join(
            f"{limit.name}: {_n(limit.value)} {limit.unit}"
            for limit in (PARTITION_WCU, PARTITION_RCU, TABLE_WCU, TABLE_RCU, LAMBDA_CONCURRENCY)
        )
        + ".",
        "- Per-partition load: a run's own item is one key; the runs index's hottest key is one "
        "shard of a status, charged every index unit of its shard (an overstatement: an end "
        "deletes in one key and puts in another).",
        "",
        "## Load at each size",
        "",
        "| gates | re-invoke | Lambda invocations/s | Lambda concurrency | DynamoDB requests/s "
        "| RCU/s | WCU/s (table + index) | one run's key (WCU/s, RCU/s) "
        f"| hottest `{index}` key (WCU/s) | previous release's `RUNNING` key (WCU/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for gates in SIZES:
        for cadence in CADENCES:
            f = rates(capacity, gates, cadence)
            lines.append(
                f"| {gates:,} | {_n(cadence)} s | {_n(f['invocations'])} | {_n(f['concurrency'])} "
                f"| {_n(f['dynamodb_requests'])} | {_n(f['rcu'])} "
                f"| {_n(f['wcu'])} ({_n(f['wcu_table'])} + {_n(f['wcu_index'])}) "
                f"| {_n(f['run_key_wcu'])}, {_n(f['run_key_rcu'])} | {_n(f['index_key_wcu'])} "
                f"| {_n(f['legacy_key_wcu'])} |"
            )
    lines += [
        "",
        "## The first limit at each size",
        "",
        "The limit with the highest share in use, and the setting that lifts it.",
        "",
        "| gates | re-invoke | first limit | in use | lifted by | other limits hit "
        "| runs index key in use |",
        "|---|---|---|---|---|---|---|",
    ]
    for gates in SIZES:
        for cadence in CADENCES:
            f = rates(capacity, gates, cadence)
            limit, used = first_limit(f)
            verdict = "hit" if used >= 1 else "not hit"
            others = [
                f"{other.name} ({_pct(share)}; {other.lift})"
                for other, share in loads(f)
                if share >= 1 and other is not limit
            ]
            lines.append(
                f"| {gates:,} | {_n(cadence)} s | {limit.name} ({verdict}) | {_pct(used)} "
                f"| {limit.lift if used >= 1 else '-'} | {'; '.join(others) or 'none'} "
                f"| {_pct(f['index_key_wcu'] / PARTITION_WCU.value)} |"
            )
    biggest = rates(capacity, SIZES[-1], CADENCES[0])
    lines += [
        "",
        f"At {SIZES[-1]:,} gates the previous release's single `RUNNING` index key would take "
        f"{_n(biggest['legacy_key_wcu'])} WCU/s "
        f"({_pct(biggest['legacy_key_wcu'] / PARTITION_WCU.value)} of a partition): its first "
        "limit was the key design. The sharded index written on transitions keeps every key "
        "under its partition limit, so the first limit met is an account quota.",
        "",
        "## Cost per gate-hour",
        "",
        f"Public list prices, us-east-1, as of {PRICES_AS_OF} (bench/cost.py): Lambda "
        f"${PRICES['lambda_request'] * 1e6:.2f} per 1M requests and "
        f"${PRICES['lambda_gb_second_arm64']:.10f} per GB-s (arm64); DynamoDB on-demand "
        f"${PRICES['dynamodb_rru'] * 1e6:.3f} per 1M read and "
        f"${PRICES['dynamodb_wru'] * 1e6:.3f} per 1M write request units. CodePipeline's own "
        "action-minute charge is the same whatever the function does and is not counted.",
        "",
        "| re-invoke | Lambda | DynamoDB | total per gate-hour | 1,000,000 gates for an hour |",
        "|---|---|---|---|---|",
    ]
    for cadence in CADENCES:
        d = gate_hour_dollars(capacity, cadence)
        lines.append(
            f"| {_n(cadence)} s | ${d['lambda']:.6f} | ${d['dynamodb']:.6f} | ${d['total']:.6f} "
            f"| ${d['total'] * SIZES[-1]:,.0f} |"
        )
    lines += _hold(measurement.get("hold"), kinds["advance"])
    lines += _listing(measurement.get("listing"))
    lines += [
        "",
        "## Upgrading from the `by-status` index",
        "",
        "Earlier releases wrote `status` and `updated_at` (the `by-status` index's keys) on every "
        "tick. This release writes `ticked_at` instead and lists runs from "
        f"`{index}`; `orchestrator runs` still reads `by-status` too (while the table has it), "
        "so runs written before the upgrade stay listed, and a running one moves to the new "
        "index on its first write after the upgrade. template.yaml keeps `by-status` (one index "
        "added per deployment, as DynamoDB requires); once RunRetentionDays have passed since "
        "the upgrade, every item in it has expired and a later deployment may drop it.",
        "",
    ]
    return "\n".join(lines)


def _hold_dollars(row: dict[str, Any], advance: dict[str, Any]) -> float:
    """Lambda (requests, held GB-s) and DynamoDB (each write an advancing tick's units)."""
    rru = row["writes_per_gate_hour"] * sum(advance["rcu"].values())
    wru = row["writes_per_gate_hour"] * sum(advance["wcu"].values())
    return float(
        row["invocations_per_gate_hour"] * PRICES["lambda_request"]
        + row["lambda_seconds_per_gate_hour"] * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second_arm64"]
        + rru * PRICES["dynamodb_rru"]
        + wru * PRICES["dynamodb_wru"]
    )


def _hold(hold: dict[str, Any] | None, advance: dict[str, Any]) -> list[str]:
    if not hold:
        return []
    every = hold["every"]
    lines = [
        "",
        "## Hold mode: reaction time and its cost",
        "",
        f"A gate polling every {_n(every)} s whose condition turns true at a moment swept "
        f"across one whole cycle of its invocations (a job, then the re-invoke delay), every "
        f"{_n(hold['step'])} s, on a virtual clock (bench/hold.py: the production handler in "
        "the CodePipeline emulator). Reaction: from the condition turning true to the gate's "
        "final answer, as a ratio to `every`, split by where that moment fell: while a job "
        "was open (*held*) or between two jobs. Lambda seconds per gate-hour are the held "
        "invocations' billed time, measured; each write is priced as an advancing tick "
        "(units above).",
        "",
        "| re-invoke | hold | moments a job was open | reaction p50 (x every) | max, held "
        "(x every) | max, between jobs (x every) | invocations per gate-hour | writes per "
        "gate-hour | Lambda GB-s per gate-hour | added cost per gate-hour |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in hold["rows"]:
        base = next(
            r
            for r in hold["rows"]
            if r["reinvoke_delay"] == row["reinvoke_delay"] and r["hold"] is None
        )
        added = _hold_dollars(row, advance) - _hold_dollars(base, advance)
        held, between = row["reaction_max_held"], row["reaction_max_between"]
        lines.append(
            f"| {_n(row['reinvoke_delay'])} s | {row['hold'] or 'off'} "
            f"| {row['held_share']:.0%} | {row['reaction_p50'] / every:.2f} "
            f"| {'-' if held is None else f'{held / every:.2f}'} "
            f"| {'-' if between is None else f'{between / every:.2f}'} "
            f"| {_n(row['invocations_per_gate_hour'])} | {_n(row['writes_per_gate_hour'])} "
            f"| {_n(row['lambda_seconds_per_gate_hour'] * LAMBDA_MEMORY_GB)} | ${added:.6f} |"
        )
    longest = max(hold["rows"], key=lambda r: (r["reinvoke_delay"], _held_seconds(r["hold"])))
    lines += [
        "",
        "**Held, a gate reacts within `every`** (the *max, held* column: at most 1.0x plus "
        "the tick). **Between two jobs nothing can answer**: CodePipeline creates the next "
        "job only after the re-invoke delay, and a job is the only thing a result can be "
        "given for, so a condition turning true there waits for the next job (the *max, "
        "between jobs* column: the re-invoke delay). That is the floor of every Lambda "
        "invoke action, not of this design; a hold shrinks the share of moments it applies "
        f"to, about re-invoke / (`hold` + re-invoke): {1 - longest['held_share']:.0%} with "
        f"a {longest['hold']} hold at a {_n(longest['reinvoke_delay'])} s delay. A job could "
        "be kept open longer only by handing it from one invocation to another (CodePipeline "
        "allows 20 minutes per job, Lambda 15 per invocation): it would shrink that share "
        "further for a self-invoke permission, and is not built.",
        "",
        "A held invocation occupies one Lambda execution for as long as it holds: with hold on, "
        "Lambda concurrency is about the number of gates holding, not invocations per second "
        "x tick time; size the concurrency quota for it.",
    ]
    return lines


def _held_seconds(hold: str | None) -> float:
    return parse_duration(hold) if hold else 0.0


def _listing(listing: dict[str, Any] | None) -> list[str]:
    if not listing:
        return []
    lines = [
        "",
        f"## `orchestrator runs` at {listing['runs']:,} runs",
        "",
        f"A table of {listing['runs']:,} runs written as this release writes them and "
        f"{listing['legacy_runs']:,} as the previous one did, in DynamoDB Local "
        f"(bench/listing.py); the store's listing, {listing['repeats']} times each. "
        "`correct`: exactly the generator's newest runs, in order.",
        "",
        "| status | limit | p50 ms | max ms | correct |",
        "|---|---|---|---|---|",
    ]
    for case in listing["cases"]:
        lines.append(
            f"| {case['status']} | {case['limit']:,} | {_n(case['ms_p50'])} | {_n(case['ms_max'])} "
            f"| {'yes' if case['correct'] else 'NO'} |"
        )
    return lines


# endregion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--measure", action="store_true", help="measure, then render")
    parser.add_argument("--listing", action="store_true", help="with --measure: 100,000 runs")
    parser.add_argument("--no-hold", action="store_true", help="with --measure: skip hold")
    parser.add_argument(
        "--only-hold", action="store_true", help="with --measure: only hold (keep the rest)"
    )
    args = parser.parse_args(argv)
    if args.measure:
        measure(listing=args.listing, hold=not args.no_hold, capacity=not args.only_hold)
    measurement = json.loads(MEASUREMENT.read_text())
    DOCUMENT.write_text(render(measurement))
    print(f"wrote {DOCUMENT.relative_to(ROOT)}", file=sys.stderr)
    return 0


def measure(listing: bool, hold: bool, capacity: bool = True) -> None:
    """Run the measuring sections and update docs/scaling.json (a section not run is kept)."""
    import logging
    import os
    from datetime import UTC, datetime

    from bench import capacity as capacity_bench
    from bench.rig import Stack

    logging.basicConfig(level=logging.WARNING)
    os.chdir(ROOT)
    previous = json.loads(MEASUREMENT.read_text()) if MEASUREMENT.exists() else {}
    result = dict(previous)
    result["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    with Stack() as stack:
        if capacity:
            result["capacity"] = capacity_bench.measure(stack)
        if hold:
            from bench import hold as hold_bench

            result["hold"] = hold_bench.measure(stack)
        if listing:
            from bench import listing as listing_bench

            result["listing"] = listing_bench.measure(stack)
    MEASUREMENT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
