"""A freeze set from the CLI closes a running gate's window at its next poll, and its lift
reopens it: the function's real handler, the emulator and DynamoDB Local, moto's STS for
the CLI's identity."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator import handler
from orchestrator.cli import app
from orchestrator.local.driver import LambdaContext
from tests.rig import gate_rig

if TYPE_CHECKING:
    from pathlib import Path

MOTO = "arn:aws:sts::123456789012:user/moto"


def answer_of(rig: Any, config: dict[str, str], token: str | None) -> dict[str, Any]:
    job = rig.emulator.create_job(config, continuation_token=token)
    handler.lambda_handler(job.event, LambdaContext(60))
    assert job.answer is not None
    found: dict[str, Any] = job.answer
    return found


@pytest.mark.parametrize("as_guard", [False, True])
def test_a_freeze_from_the_cli_holds_a_running_gate_at_its_next_poll_and_its_lift_frees_it(
    table_name: str,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    as_guard: bool,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS", "0")
    cli = CliRunner()
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    window = {"name": "open", "window": {"timezone": "Europe/Berlin", "freeze": "payments"},
              "every": "1m"}  # fmt: skip
    gate = (
        {"guards": [{**window, "on_violation": "hold"}], "steps": [{"name": "bake", "wait": "3m"}]}
        if as_guard
        else {"steps": [{"name": "bake", "wait": "3m"}, window]}
    )
    config = {"FunctionName": "orchestrator", "UserParameters": json.dumps(gate)}
    with gate_rig(table_name, monkeypatch, speed=1) as rig:
        first = answer_of(rig, config, None)
        token = first["params"]["continuationToken"]
        frozen = cli.invoke(app, ["freeze", "payments", "--reason", "incident 42", *shared])
        assert frozen.exit_code == 0, frozen.output
        rig.clock.advance(181)
        held = answer_of(rig, config, token)
        summary = held["params"]["executionDetails"]["summary"]
        assert held["operation"] == "PutJobSuccessResult" and "continuationToken" in held["params"]
        assert f"freeze 'payments': frozen by {MOTO} since " in summary
        assert summary.endswith(": incident 42") or "incident 42" in summary
        lifted = cli.invoke(app, ["unfreeze", "payments", "--reason", "resolved", *shared])
        assert lifted.exit_code == 0, lifted.output
        rig.clock.advance(61)
        done = answer_of(rig, config, held["params"]["continuationToken"])
    assert done["operation"] == "PutJobSuccessResult", done
    assert "continuationToken" not in done["params"]
