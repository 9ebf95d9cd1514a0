"""Hold mode end to end: the production handler in the CodePipeline emulator, re-invoked
every 60 s of virtual time, against a gate whose condition turns true 25 s after it starts."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator import _log, handler
from orchestrator.clock import JumpClock
from orchestrator.local.driver import run_action
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.steps.python import Finish, Wait

if TYPE_CHECKING:
    from orchestrator.local.driver import ActionResult
    from orchestrator.steps.python import PythonContext

START = 1_800_000_000.0
FLIP = 25.0  # the condition turns true this long after the gate starts
EVERY = 10.0
REINVOKE = 60.0


def ready(context: PythonContext) -> Any:
    """The gate's condition: true from `params.at` on (the gate's clock)."""
    if context.now >= float(context.params["at"]):
        return Finish({"at": context.now})
    return Wait("not yet")


def _ready(at: float, **more: Any) -> dict[str, Any]:
    return {
        "name": "ready",
        "python": {"callable": "tests.integration.test_hold:ready", "params": {"at": at}},
        "every": f"{EVERY:g}s",
        **more,
    }


def _run(
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
    hold: str | None,
    gate: dict[str, Any] | None = None,
) -> ActionResult:
    clock = JumpClock(speed=1.0, start=START)
    gate = gate or {"steps": [_ready(START + FLIP)]}
    if hold:
        gate["hold"] = hold
    logs = io.StringIO()
    _log.configure("INFO", logs)
    with CodePipelineEmulator(clock) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        handler.use(handler.build_app(clock, logs))
        try:
            return run_action(
                emulator,
                handler.lambda_handler,
                {"FunctionName": "orchestrator", "UserParameters": json.dumps(gate)},
                clock=clock,
                reinvoke_delay=REINVOKE,
            )
        finally:
            handler.use(None)
            _log.unconfigure()


def test_a_hold_reacts_within_every_where_without_it_the_gate_waits_for_the_reinvoke(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _run(table_name, monkeypatch, "2m")
    plain = _run(table_name, monkeypatch, None)
    assert held.status == plain.status == "Succeeded", (held, plain)
    flipped = START + FLIP
    # Held: one invocation polls at 0, 10, 20, 30 s and answers at the poll that sees it.
    assert len(held.jobs) == 1
    assert flipped < held.ended_at <= flipped + EVERY + 2
    # Not held: the first job answers at once; the next comes a re-invoke delay later.
    assert len(plain.jobs) == 2
    assert plain.ended_at >= START + REINVOKE > flipped + EVERY + 2


def test_a_hold_ends_at_its_budget_and_the_next_job_goes_on(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 15 s hold covers the polls at 10 s (not at 20 s): the gate finishes on a later job."""
    result = _run(table_name, monkeypatch, "15s")
    assert result.status == "Succeeded"
    assert len(result.jobs) == 2
    first = result.jobs[0]
    assert first.answer is not None and first.answered_at is not None
    assert first.answered_at - START < FLIP  # answered in progress, within its hold
    assert first.answered_at - START >= EVERY  # after holding for the poll at 10 s


def test_a_steps_hold_holds_only_while_that_step_runs(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30 s bake without a hold, then `ready` with one: the first job answers at once (the
    bake's end is not held for), the second holds for `ready`'s polls and reacts within
    `every` of the condition turning true at 95 s."""
    flipped = START + 95
    gate = {"steps": [{"name": "bake", "wait": "30s"}, _ready(flipped, hold="2m")]}
    result = _run(table_name, monkeypatch, None, gate)
    assert result.status == "Succeeded", result
    first, second = result.jobs
    assert first.answered_at is not None and first.answered_at - START < 1  # not held
    assert second.created_at - START >= REINVOKE
    assert flipped < result.ended_at <= flipped + EVERY + 2  # held: polls at 70, 80, 90, 100 s


def test_a_hold_longer_than_ten_minutes_is_refused_with_its_path() -> None:
    from orchestrator.definition import GateDefinition
    from orchestrator.exceptions import DefinitionError

    with pytest.raises(DefinitionError, match="hold: 11m must be more than 0s and at most 10m"):
        GateDefinition.model_validate({"steps": [{"name": "w", "wait": "1m"}], "hold": "11m"})
    with pytest.raises(DefinitionError) as raised:
        GateDefinition.model_validate(
            {
                "steps": [
                    {"name": "g", "parallel": [{"name": "w", "wait": "1m"}, _ready(0, hold="15m")]}
                ],
                "guards": [_ready(0, name="guard", hold="20m")],
            }
        )
    why = "must be more than 0s and at most 10m (an invocation answers within it)"
    assert raised.value.errors == [
        f"steps[0].parallel[1].hold: 15m {why}",
        f"guards[0].hold: 20m {why}",
    ]
