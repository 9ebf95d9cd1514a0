"""Measurement rules end to end: an inconclusive check handed to people, decided from the
CLI (moto's STS for the identity), through the handler, the emulator and DynamoDB Local."""

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


def test_an_inconclusive_check_becomes_an_approval_that_a_cli_decision_settles(
    gate: Gate, table_name: str, tmp_path: Path
) -> None:
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    with stub_server([(200, {"error_rate": None})]) as metrics:
        check = {
            "name": "errors",
            "http": {"url": metrics.url},
            "until": "body.error_rate != null && body.error_rate < `0.01`",
            "fail_if": "body.error_rate != null && body.error_rate > `0.05`",
            "every": "30s",
            "max_polls": 3,
            "on_inconclusive": "approve",
            "approvers": [MOTO],
        }
        definition = {
            "steps": [check],
            "outputs": {"By": "steps.errors.approved_by[0]"},
        }
        gate.config = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
        answers: list[dict[str, Any]] = [gate.tick() for _ in range(4)]
        gate.run_id = answers[0]["params"]["executionDetails"]["externalExecutionId"]
        asking = answers[-1]["params"]["executionDetails"]["summary"]
        assert asking.startswith("step 1/1 'errors': inconclusive after 3 polls (last: "), asking
        assert asking.endswith("; waiting for approval: 0/1 approvals")
        assert metrics.hits == 3  # no more checks once people decide
        status = CliRunner().invoke(app, ["status", gate.run_id, *shared])
        assert "inconclusive after 3 polls" in status.output
        decided = CliRunner().invoke(
            app, ["approve", gate.run_id, "--step", "errors", "--comment", "flat", *shared]
        )
        assert decided.exit_code == 0, decided.output
        final = gate.tick()
    assert final["operation"] == "PutJobSuccessResult", final
    assert final["params"]["outputVariables"] == {"By": MOTO}
    assert metrics.hits == 3
