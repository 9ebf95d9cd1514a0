"""Cost model: requests and dollars per gate-hour, from the measured call counts.

Prices are public list prices, us-east-1, read from AWS's pricing pages (stored copies, not
re-checked live) on PRICES_AS_OF. The bench multiplies them by what it measured: calls per
tick (on the wire), calls per gate-hour of a rehearsed 23-hour gate at a fixed re-invocation
cadence, and the item size (for request units).
"""

from __future__ import annotations

import math
from typing import Any

PRICES_AS_OF = "2026-11-25"
PRICES = {
    "lambda_request": 0.20 / 1e6,  # $0.20 per 1M requests
    "lambda_gb_second_arm64": 0.0000133334,  # first 7.5B GB-s per month
    "dynamodb_rru": 0.125 / 1e6,  # on-demand, $0.125 per 1M read request units
    "dynamodb_wru": 0.625 / 1e6,  # on-demand, $0.625 per 1M write request units
    "stepfunctions_transition": 0.025 / 1000,  # standard workflows, $0.025 per 1,000
    "codepipeline_v2_action_minute": 0.002,  # all action types but manual approval, custom
}
LAMBDA_MEMORY_GB = 0.25  # template.yaml: MemorySize 256, arm64
LAMBDA_BILLED_MS = 100.0
"""Assumed billed duration per invocation in AWS (calls cross the network there, and 256 MB
gets a fraction of a vCPU); the loopback medians measured here are far lower."""
STEP_FUNCTIONS_TRANSITIONS_PER_POLL = 3  # Wait -> Task (a Lambda check) -> Choice


def request_units(item_bytes: int) -> dict[str, int]:
    """Units per call for an item of this size: a strongly consistent read is 1 RRU per
    4 KB; a write 1 WRU per 1 KB. An advancing UpdateItem writes no index; the run's first
    PutItem adds its `by-status-sharded` entry (1 WRU; its last write moves it: 2, once per
    run, which docs/SCALING.md counts from measured units)."""
    table_wru = math.ceil(item_bytes / 1024)
    return {
        "read_rru": math.ceil(item_bytes / 4096),
        "update_wru": table_wru,
        "put_wru": table_wru + 1,
    }


def _lambda(invocations: float) -> float:
    seconds = invocations * LAMBDA_BILLED_MS / 1000
    return (
        invocations * PRICES["lambda_request"]
        + seconds * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second_arm64"]
    )


def model(rehearsals: list[dict[str, Any]], item_bytes: int) -> dict[str, Any]:
    """Rows per gate-hour: the orchestrator (measured), Step Functions (modelled)."""
    units = request_units(item_bytes)
    rows: list[dict[str, Any]] = []
    for rehearsal in rehearsals:
        per_hour = rehearsal["per_gate_hour"]
        rows.append(
            _orchestrator_row(
                f"orchestrator, wait gate, job every {rehearsal['cadence_seconds']:g} s (measured)",
                per_hour["ticks"],
                per_hour["reads"],
                per_hour["writes"],
                units,
            )
        )
    # A polling gate: an HTTP check every 60 s. Each check is an advancing tick (1 read,
    # 1 conditional write: measured per tick); between checks, jobs are idle (no call).
    for cadence in (30.0, 60.0):
        ticks = 3600 / cadence
        rows.append(
            _orchestrator_row(
                f"orchestrator, HTTP check every 60 s, job every {cadence:g} s",
                ticks,
                60.0,
                60.0,
                units,
            )
        )
    polls = 60.0
    transitions = polls * STEP_FUNCTIONS_TRANSITIONS_PER_POLL
    rows.append(
        {
            "scenario": "Step Functions standard, check every 60 s (Wait, Task, Choice)",
            "requests": f"{transitions:g} transitions + {polls:g} Lambda",
            "dollars": transitions * PRICES["stepfunctions_transition"] + _lambda(polls),
        }
    )
    return {
        "prices_as_of": PRICES_AS_OF,
        "prices": PRICES,
        "lambda_memory_gb": LAMBDA_MEMORY_GB,
        "lambda_billed_ms": LAMBDA_BILLED_MS,
        "item_bytes": item_bytes,
        "units": units,
        "rows": rows,
        "codepipeline_v2_per_gate_hour": 60 * PRICES["codepipeline_v2_action_minute"],
    }


def _orchestrator_row(
    scenario: str, ticks: float, reads: float, writes: float, units: dict[str, int]
) -> dict[str, Any]:
    rru = reads * units["read_rru"]
    wru = writes * units["update_wru"]
    dollars = _lambda(ticks) + rru * PRICES["dynamodb_rru"] + wru * PRICES["dynamodb_wru"]
    return {
        "scenario": scenario,
        "requests": (
            f"{ticks:g} Lambda + {ticks:g} CodePipeline + {reads:g} GetItem + {writes:g} writes"
        ),
        "dollars": dollars,
    }
