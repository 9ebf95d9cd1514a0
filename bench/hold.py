"""Hold mode: how soon a gate answers once its condition is true, with and without `hold`.

A gate of one `python` check polled every EVERY seconds turns true at a moment swept across
one whole cycle of its invocations (a held job and the re-invoke delay after it), every
STEP seconds, so the worst phase is among those measured, not left to chance; the emulator
re-invokes the function 30 s or 60 s after each in-progress answer. On a virtual clock whose
sleeps take no real time, the production handler runs the gate to its end for every phase.
Reaction: from the condition turning true to the final answer, split by where the moment
fell: while a job was open (held: answered within `every`) or between two jobs (no job to
answer until CodePipeline re-invokes the function: the floor of any Lambda invoke action).
Lambda time per gate-hour: each job's span from its creation to its answer on the gate's
clock (a held invocation is billed for its hold); writes per gate-hour: the run's final
version (every advance is one conditional write), priced by bench/scaling.py with the
measured units of an advancing tick.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from typing import IO, TYPE_CHECKING, Any

from bench.rig import REGION
from orchestrator import handler
from orchestrator.clock import JumpClock
from orchestrator.local.driver import run_action
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.steps.python import Finish, Wait

if TYPE_CHECKING:
    from bench.rig import Stack
    from orchestrator.steps.python import PythonContext

EVERY = 10.0
HOLDS = {None: 0.0, "2m": 120.0, "10m": 600.0}
START = 1_800_000_000.0
STEP = 5.0
"""Seconds between two swept moments (half of `every`)."""
OFFSET = 0.37
"""Off the polls' whole seconds, so no moment ties with a poll."""


def ready(context: PythonContext) -> Any:
    """The gate's check: true from `params.at` on, on the gate's clock."""
    if context.now >= float(context.params["at"]):
        return Finish({"at": context.now})
    return Wait("not yet")


def gate(flip_at: float, hold: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "steps": [
            {
                "name": "ready",
                "python": {"callable": "bench.hold:ready", "params": {"at": flip_at}},
                "every": f"{EVERY:g}s",
            }
        ]
    }
    if hold:
        document["hold"] = hold
    return document


def _one(
    stack: Stack, table: str, reinvoke: float, hold: str | None, flip: float, sink: IO[str]
) -> dict[str, Any]:
    clock = JumpClock(speed=1.0, start=START)
    with CodePipelineEmulator(clock, region=REGION) as emulator:
        os.environ["ORCHESTRATOR_TABLE_NAME"] = table
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = stack.dynamodb_url
        os.environ["AWS_ENDPOINT_URL_CODEPIPELINE"] = emulator.endpoint_url
        handler.use(None)
        handler.use(handler.build_app(clock, sink))
        try:
            result = run_action(
                emulator,
                handler.lambda_handler,
                {
                    "FunctionName": "orchestrator",
                    "UserParameters": json.dumps(gate(START + flip, hold)),
                },
                clock=clock,
                reinvoke_delay=reinvoke,
            )
        finally:
            handler.use(None)
    if result.status != "Succeeded":
        raise RuntimeError(f"hold bench gate failed: {result.failure_message}")
    item = stack.item(table, result.jobs[0].job_id)
    busy = sum((job.answered_at or job.created_at) - job.created_at for job in result.jobs)
    held = any(
        job.created_at <= START + flip <= (job.answered_at or job.created_at) for job in result.jobs
    )
    return {
        "reaction": result.ended_at - (START + flip),
        "held": held,
        "hours": (result.ended_at - result.started_at) / 3600,
        "jobs": len(result.jobs),
        "busy_seconds": busy,
        "writes": int(item["version"]["N"]),
    }


def measure(stack: Stack, step: float = STEP) -> dict[str, Any]:
    table = stack.new_table()
    rows: list[dict[str, Any]] = []
    with open(os.devnull, "w") as sink:  # the handler's logs, for the whole measurement
        for reinvoke in (30.0, 60.0):
            for hold, seconds in HOLDS.items():
                # One cycle: the first job (holding up to `seconds`), then the re-invoke delay.
                cycle = seconds + reinvoke
                flips = [EVERY + OFFSET + step * k for k in range(math.ceil(cycle / step))]
                runs = [_one(stack, table, reinvoke, hold, flip, sink) for flip in flips]
                rows.append(_row(reinvoke, hold, runs))
    return {"every": EVERY, "step": step, "rows": rows}


def _row(reinvoke: float, hold: str | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
    hours = sum(r["hours"] for r in runs)
    reactions = [r["reaction"] for r in runs]
    held = [r["reaction"] for r in runs if r["held"]]
    between = [r["reaction"] for r in runs if not r["held"]]
    return {
        "reinvoke_delay": reinvoke,
        "hold": hold,
        "samples": len(runs),
        "held_share": round(len(held) / len(runs), 3),
        "reaction_p50": round(statistics.median(reactions), 2),
        "reaction_max": round(max(reactions), 2),
        "reaction_max_held": round(max(held), 2) if held else None,
        "reaction_max_between": round(max(between), 2) if between else None,
        "invocations_per_gate_hour": round(sum(r["jobs"] for r in runs) / hours, 1),
        "lambda_seconds_per_gate_hour": round(sum(r["busy_seconds"] for r in runs) / hours, 1),
        "writes_per_gate_hour": round(sum(r["writes"] for r in runs) / hours, 1),
    }
