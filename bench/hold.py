"""Hold mode: how soon a gate answers once its condition is true, with and without `hold`.

A gate of one `python` check polled every EVERY seconds turns true at a random moment
(seeded); the emulator re-invokes the function 30 s or 60 s after each in-progress answer.
On a virtual clock whose sleeps take no real time, the production handler runs the gate to
its end, `samples` times per row. Reaction: from the condition turning true to the final
answer. Lambda time per gate-hour: each job's span from its creation to its answer on the
gate's clock (a held invocation is billed for its hold); writes per gate-hour: the run's
final version (every advance is one conditional write), priced by bench/scaling.py with the
measured units of an advancing tick.
"""

from __future__ import annotations

import json
import os
import random
import statistics
from typing import IO, TYPE_CHECKING, Any

from bench.rig import REGION
from orchestrator import handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import run_action
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.steps.python import Finish, Wait

if TYPE_CHECKING:
    from bench.rig import Stack
    from orchestrator.steps.python import PythonContext

EVERY = 10.0
HOLD = "2m"
START = 1_800_000_000.0
FLIP_SPAN = (60.0, 900.0)
"""The condition turns true this long after the gate starts (uniformly, seeded)."""


class JumpClock(VirtualClock):
    """A virtual clock whose sleeps take no real time."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


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
    return {
        "reaction": result.ended_at - (START + flip),
        "hours": (result.ended_at - result.started_at) / 3600,
        "jobs": len(result.jobs),
        "busy_seconds": busy,
        "writes": int(item["version"]["N"]),
    }


def measure(stack: Stack, samples: int = 8, seed: int = 19) -> dict[str, Any]:
    table = stack.new_table()
    flips = [random.Random(seed + i).uniform(*FLIP_SPAN) for i in range(samples)]
    rows: list[dict[str, Any]] = []
    with open(os.devnull, "w") as sink:  # the handler's logs, for the whole measurement
        for reinvoke in (30.0, 60.0):
            for hold in (None, HOLD):
                runs = [_one(stack, table, reinvoke, hold, flip, sink) for flip in flips]
                rows.append(_row(reinvoke, hold, runs))
    return {"every": EVERY, "samples": samples, "flip_span": list(FLIP_SPAN), "rows": rows}


def _row(reinvoke: float, hold: str | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
    hours = sum(r["hours"] for r in runs)
    reactions = [r["reaction"] for r in runs]
    return {
        "reinvoke_delay": reinvoke,
        "hold": hold,
        "reaction_p50": round(statistics.median(reactions), 2),
        "reaction_max": round(max(reactions), 2),
        "invocations_per_gate_hour": round(sum(r["jobs"] for r in runs) / hours, 1),
        "lambda_seconds_per_gate_hour": round(sum(r["busy_seconds"] for r in runs) / hours, 1),
        "writes_per_gate_hour": round(sum(r["writes"] for r in runs) / hours, 1),
    }
