"""How `orchestrator run` shows its progress (view.py), and counts said in words."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from orchestrator import engine
from orchestrator.cli.view import ConsoleView
from orchestrator.definition import parse_definition
from orchestrator.model import RunStatus
from orchestrator.text import counted


def view(*, quiet: bool = False) -> tuple[ConsoleView, io.StringIO]:
    out = io.StringIO()
    shown = ConsoleView(Console(file=out, width=300, highlight=False), 60, quiet=quiet)
    shown(
        {
            "event": "action_started",
            "stage": "Gate",
            "action": "change",
            "namespace": None,
            "user_parameters": json.dumps({"steps": [{"name": "bake", "wait": "10m"}]}),
        }
    )
    return shown, out


def round_(number: int, status: str, summary: str, percent: int | None) -> dict[str, Any]:
    return {
        "event": "round",
        "round": number,
        "job_id": f"job-{number:04d}",
        "status": status,
        "summary": summary,
        "percent": percent,
        "run_id": "run-1",
        "elapsed": 60.0 * number,
    }


def rounds(lines: str) -> list[str]:
    return [line for line in lines.splitlines() if line.startswith("round")]


def test_a_failed_answer_keeps_the_last_percentage() -> None:
    shown, out = view()
    shown(round_(1, "InProgress", "step 1/2 'bake': waiting", 40))
    shown(round_(2, "Failed", "step 2/2 'change': HTTP 404", None))
    first, failed = rounds(out.getvalue())
    assert " 40%" in first
    assert " 40%" in failed and "  0%" not in failed
    assert "█" * 8 + "░" * 12 in failed


def test_quiet_shows_only_transitions() -> None:
    events = [
        round_(1, "InProgress", "step 1/2 'bake': waiting 10m", 0),
        round_(2, "InProgress", "step 1/2 'bake': 5m left", 25),
        round_(3, "InProgress", "step 2/2 'change': polled 1 time", 50),
        round_(4, "Succeeded", "all 2 steps done in 10m", 100),
    ]
    loud, loud_out = view()
    quiet, quiet_out = view(quiet=True)
    for event in events:
        loud(event)
        quiet(event)
    assert len(rounds(loud_out.getvalue())) == 4
    first, last = rounds(quiet_out.getvalue())
    assert first.startswith("round    1 ") and "InProgress" in first
    assert last.startswith("round    4 (+2 not shown)") and "Succeeded" in last
    finished = {
        "event": "action_finished",
        "stage": "Gate",
        "action": "change",
        "status": "Succeeded",
        "rounds": 1,
        "elapsed": 600,
    }
    quiet(finished)
    assert "succeeded after 1 round," in quiet_out.getvalue()


def test_counts_are_singular_or_plural() -> None:
    assert counted(1, "step") == "1 step"
    assert counted(0, "step") == "0 steps"
    assert counted(2, "time") == "2 times"
    assert counted(1_200, "byte") == "1,200 bytes"
    assert counted(3, "entry", "entries") == "3 entries"


def test_a_one_step_gate_says_1_step_done() -> None:
    for steps, said in ((1, "1 step done in"), (2, "all 2 steps done in")):
        definition = parse_definition(
            json.dumps({"steps": [{"name": f"s{i}", "wait": "1m"} for i in range(steps)]})
        )
        run = engine.start(definition, "run-1", 1000.0)
        run = run.model_copy(update={"status": RunStatus.SUCCEEDED, "ended_at": 1060.0})
        assert engine.summary(definition, run).startswith(said)
