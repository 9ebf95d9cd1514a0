"""Rehearsal speed: a 24-hour gate (waits totalling 23 hours) rehearsed on a virtual clock.

Two ways:

- `orchestrator run GATE --speed 3600 --reinvoke-delay 30s --json`, the command a person
  types (a subprocess; its DynamoDB is the bench's DynamoDB Local, so the JVM's start-up is
  not counted). The virtual clock runs an hour a second, so real time spent in each tick
  also passes 3,600 times faster: the cadence it shows is not exactly 30 s.
- the runner API (`LocalStack` + `rehearse`) with a clock whose sleeps jump instantly, so
  CodePipeline re-invokes exactly every 30 s (and 60 s) of gate time. Its DynamoDB traffic
  goes through the counting proxy: the calls per gate-hour the cost model uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.proxy import CountingProxy
from orchestrator.clock import JumpClock

if TYPE_CHECKING:
    from bench.rig import Stack

GATE_24H = {
    "steps": [{"name": "bake", "wait": "12h"}, {"name": "soak", "wait": "11h"}],
    "outputs": {"RunId": "run.id"},
}
GATE_HOURS = 23.0


def through_cli(stack: Stack, speed: float = 3600.0) -> dict[str, Any]:
    """`orchestrator run` in a subprocess; wall time from start to exit."""
    with tempfile.TemporaryDirectory() as scratch:
        gate_file = Path(scratch) / "gate-24h.json"
        gate_file.write_text(json.dumps(GATE_24H))
        command = [
            str(Path(sys.executable).with_name("orchestrator")),
            "run",
            str(gate_file),
            "--speed",
            f"{speed:g}",
            "--reinvoke-delay",
            "30s",
            "--json",
            "--dynamodb-endpoint",
            stack.dynamodb_url,
            "--data-dir",
            str(Path(scratch) / "data"),
            "--table",
            "bench-rehearsal",
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, cwd=scratch
        )
        wall = time.perf_counter() - started
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finished = [e for e in events if e.get("event") == "action_finished"]
    if done.returncode != 0 or not finished or finished[-1].get("status") != "Succeeded":
        raise RuntimeError(f"orchestrator run failed ({done.returncode}): {done.stderr[-2000:]}")
    return {
        "command": f"orchestrator run {gate_file.name} --speed {speed:g} --reinvoke-delay 30s",
        "speed": speed,
        "gate_hours": round(float(finished[-1]["elapsed"]) / 3600, 2),
        "rounds": int(finished[-1]["rounds"]),
        "wall_seconds": round(wall, 1),
    }


def through_runner(stack: Stack, cadence: float) -> dict[str, Any]:
    """The runner API on a jumping clock, CodePipeline re-invoking every `cadence` seconds."""
    from orchestrator.local.pipeline import Action, Pipeline
    from orchestrator.local.runner import LocalStack, RehearsalOptions, rehearse

    action = Action(
        stage="Gate",
        name="gate-24h",
        type_id=("Invoke", "AWS", "Lambda", "1"),
        configuration={"FunctionName": "orchestrator", "UserParameters": json.dumps(GATE_24H)},
        namespace="Gate",
    )
    pipeline = Pipeline(name="bench", stages=[("Gate", [action])])
    rounds: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        CountingProxy(stack.dynamodb_url) as proxy,
        LocalStack(
            table_name="bench-rehearsal-api",
            dynamodb_endpoint=proxy.url,
            data_dir=Path(scratch),
            clock=JumpClock(1.0),
        ) as local,
    ):
        assert local.emulator is not None
        proxy.mark()  # table creation is not the gate's traffic
        started = time.perf_counter()
        result = rehearse(
            local,
            pipeline,
            RehearsalOptions(reinvoke_delay=cadence),
            lambda event: rounds.append(event) if event.get("event") == "round" else None,
        )
        wall = time.perf_counter() - started
        operations = Counter(r.operation for r in proxy.window())
        codepipeline_calls = len(local.emulator.requests)
    if result.status != "Succeeded":
        raise RuntimeError(f"rehearsal failed: {result.failure_message}")
    gate_seconds = float(rounds[-1]["elapsed"]) if rounds else GATE_HOURS * 3600
    hours = gate_seconds / 3600
    return {
        "cadence_seconds": cadence,
        "gate_hours": round(hours, 2),
        "ticks": len(rounds),
        "wall_seconds": round(wall, 1),
        "operations": dict(sorted(operations.items())),
        "codepipeline_calls": codepipeline_calls,
        "per_gate_hour": {
            "ticks": round(len(rounds) / hours, 1),
            "reads": round(operations["GetItem"] / hours, 1),
            "writes": round((operations["PutItem"] + operations["UpdateItem"]) / hours, 2),
            "codepipeline": round(codepipeline_calls / hours, 1),
        },
    }


def measure(stack: Stack) -> dict[str, Any]:
    return {
        "cli": through_cli(stack),
        "runner": [through_runner(stack, cadence) for cadence in (30.0, 60.0)],
    }
