"""`orchestrator skip|pause|resume|retry` on running gates: recorded with the caller's STS
identity (moto's), applied by the real handler at the next poll, shown by `status` and
carried in the AuditTrail output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from typer.testing import CliRunner

from orchestrator.cli import app
from tests.http_stub import stub_server

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.test_approval_cli import Gate

MOTO = "arn:aws:sts::123456789012:user/moto"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def summary(answer: dict[str, Any]) -> str:
    params = answer["params"]
    return str((params.get("executionDetails") or params.get("failureDetails"))["summary"])


def test_skip_pause_and_resume_change_a_running_gate_at_its_next_poll(
    gate: Gate, table_name: str, tmp_path: Path
) -> None:
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    with stub_server([(404, {})]) as broken:
        definition = {
            "steps": [
                {"name": "smoke", "http": {"url": broken.url}, "every": "30s"},
                {"name": "soak", "wait": "1m"},
            ]
        }
        gate.config = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
        first = gate.tick()
        gate.run_id = first["params"]["executionDetails"]["externalExecutionId"]
        paused = cli("pause", gate.run_id[:8], "--reason", "INC-7: smoke host rebooting", *shared)
        assert paused.exit_code == 0, paused.output
        assert f"pause of run {gate.run_id} recorded for {MOTO}" in paused.output
        hits = broken.hits
        held = gate.tick()
        assert summary(held).startswith(f"paused by {MOTO}: INC-7: smoke host rebooting")
        gate.tick()
        assert broken.hits == hits  # nothing polled while paused
        assert cli("resume", gate.run_id, *shared).exit_code == 0
        assert cli("skip", gate.run_id, "--step", "smoke", "--reason", "known-broken", *shared)
        moving = gate.tick()
        assert summary(moving).startswith("step 2/2 'soak'"), summary(moving)
        status = cli("status", gate.run_id, *shared)
        for line in (
            f"audit: pause by {MOTO} at ",
            f"audit: resume by {MOTO} at ",
            f"audit: skip of step 'smoke' by {MOTO} at ",
        ):
            assert line in status.output, status.output
        gate.clock.advance(61)
        final = gate.tick()
    assert final["operation"] == "PutJobSuccessResult", final
    trail = json.loads(final["params"]["outputVariables"]["AuditTrail"])
    assert [(c["action"], c.get("step"), c["by"]) for c in trail] == [
        ("pause", None, MOTO),
        ("resume", None, MOTO),
        ("skip", "smoke", MOTO),
    ]
    assert trail[2]["reason"] == "known-broken"


def test_controls_are_refused_for_unknown_steps_and_runs_that_are_over(
    gate: Gate, table_name: str, tmp_path: Path
) -> None:
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    definition = {"steps": [{"name": "soak", "wait": "1m"}]}
    gate.config = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
    gate.run_id = gate.tick()["params"]["executionDetails"]["externalExecutionId"]
    wrong = cli("skip", gate.run_id, "--step", "sok", "--reason", "typo", *shared)
    assert wrong.exit_code == 2 and "has no step 'sok' (steps: soak)" in wrong.output
    gate.clock.advance(61)
    assert gate.tick()["operation"] == "PutJobSuccessResult"
    late = cli("pause", gate.run_id, "--reason", "too late", *shared)
    assert late.exit_code == 1 and "is not running" in late.output
