"""The CLI as a user drives it: `orchestrator run|validate|status|runs|cancel`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.local import dynamodb_local
from tests.http_stub import stub_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def shared(dynamodb: Any, table_name: str, tmp_path: Path) -> list[str]:
    """Options pointing every command at the session's DynamoDB Local and a fresh table."""
    return ["--table", table_name, "--data-dir", str(tmp_path)]


def gate_file(tmp_path: Path, definition: dict[str, Any]) -> str:
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(definition))
    return str(path)


def test_validate_reports_field_paths_and_exit_2(tmp_path: Path) -> None:
    bad = gate_file(
        tmp_path,
        {
            "steps": [
                {"name": "a", "wait": "1m"},
                {"name": "b", "http": {"url": "x"}, "every": "soon"},
            ]
        },
    )
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert "steps[1].every: invalid duration 'soon'" in result.output
    assert "steps[1].http.url: invalid URL 'x'" in result.output
    ok = invoke("validate", str(EXAMPLES / "change-gate.json"))
    assert ok.exit_code == 0 and "valid gate" in ok.output
    pipeline = invoke("validate", str(EXAMPLES / "pipeline-local.json"))
    assert pipeline.exit_code == 0 and "valid pipeline (4 actions)" in pipeline.output


def test_run_rehearses_a_multi_hour_gate_in_seconds_then_status_and_runs(
    shared: list[str], tmp_path: Path
) -> None:
    path = gate_file(
        tmp_path,
        {
            "steps": [{"name": "bake", "wait": "3h"}, {"name": "soak", "wait": "2h"}],
            "outputs": {"Run": "run.id"},
        },
    )
    started = time.monotonic()
    result = invoke("run", path, "--speed", "7200", "--reinvoke-delay", "30s", "--json", *shared)
    wall = time.monotonic() - started
    assert result.exit_code == 0, result.output
    stream = events(result.output)
    finished = stream[-1]
    assert finished["event"] == "finished" and finished["status"] == "Succeeded"
    (run_id,) = finished["run_ids"]
    assert finished["variables"]["Gate"] == {"Run": run_id}
    rounds = [e for e in stream if e["event"] == "round"]
    assert rounds[-1]["elapsed"] >= 5 * 3600 and len(rounds) > 3
    assert wall < 5 * 3600 / 100  # 5 hours of pipeline time, rehearsed far faster

    status = invoke("status", run_id, *shared)
    assert status.exit_code == 0
    assert "SUCCEEDED" in status.output and "bake" in status.output and "soak" in status.output
    listed = invoke("runs", "--status", "succeeded", "--json", *shared)
    assert [r["run_id"] for r in json.loads(listed.output)] == [run_id]
    assert json.loads(invoke("runs", "--status", "RUNNING", "--json", *shared).output) == []


def test_run_exit_codes_and_console_view(shared: list[str], tmp_path: Path) -> None:
    with stub_server([(200, {"state": "rejected"})]) as server:
        path = gate_file(
            tmp_path,
            {
                "steps": [
                    {
                        "name": "change",
                        "http": {"url": server.url},
                        "fail_if": "body.state == 'rejected'",
                    }
                ]
            },
        )
        failed = invoke("run", path, "--speed", "100", *shared)
    assert failed.exit_code == 1
    assert "failed: JobFailed" in failed.output and "fail_if is true" in failed.output
    invalid = invoke("run", gate_file(tmp_path, {"steps": []}), *shared)
    assert invalid.exit_code == 2 and "steps: List should have at least 1 item" in invalid.output


def itsm_stub() -> Any:
    """examples/itsm_stub.py, the demo's change-management API, loaded as a module."""
    spec = importlib.util.spec_from_file_location("itsm_stub", EXAMPLES / "itsm_stub.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_pipeline_resolves_variables_between_actions(shared: list[str]) -> None:
    """`orchestrator run examples/pipeline-local.json` against examples/itsm_stub.py: the
    second action rechecks exactly the change the first one saw approved, by the id the first
    output (`#{Change.ChangeId}` in its URL)."""
    server = itsm_stub().make_server(0, 3, False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        text = (EXAMPLES / "pipeline-local.json").read_text()
        port = server.server_address[1]
        path = Path(shared[-1]) / "pipeline.json"
        path.write_text(text.replace("127.0.0.1:8765", f"127.0.0.1:{port}"))
        result = invoke("run", str(path), "--speed", "3600", "--json", *shared)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.exit_code == 0, result.output
    stream = events(result.output)
    skipped = [(e["stage"], e["action"]) for e in stream if e["event"] == "action_skipped"]
    assert skipped == [("Source", "Source"), ("DeployProduction", "Deploy")]
    variables = stream[-1]["variables"]
    assert variables["Change"] == {"ChangeId": "CHG42"}
    assert variables["Verify"]["Checked"] == "CHG42"  # the URL used #{Change.ChangeId}
    assert server.polls == {"42": 4}  # approved on the 3rd poll, then rechecked once


def test_an_unresolvable_variable_fails_like_codepipeline(
    shared: list[str], tmp_path: Path
) -> None:
    pipeline = {
        "pipeline": {
            "name": "p",
            "stages": [
                {
                    "name": "S",
                    "actions": [
                        {
                            "name": "A",
                            "actionTypeId": {
                                "category": "Invoke",
                                "owner": "AWS",
                                "provider": "Lambda",
                                "version": "1",
                            },
                            "configuration": {"FunctionName": "f", "UserParameters": "#{Nope.Var}"},
                        }
                    ],
                }
            ],
        }
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pipeline))
    result = invoke("run", str(path), *shared)
    assert result.exit_code == 2
    assert "unable to resolve variable #{Nope.Var}" in result.output


def test_cancel_fails_the_running_gate_at_its_next_tick(
    shared: list[str], tmp_path: Path, dynamodb_endpoint: str
) -> None:
    path = gate_file(tmp_path, {"steps": [{"name": "bake", "wait": "8h"}]})
    env = {
        **os.environ,
        "ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS": "0",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
    }
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "run",
            path,
            "--json",
            "--speed",
            "10",
            "--reinvoke-delay",
            "1s",
            *shared,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        run_id = None
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "round":
                run_id = event["run_id"]
                break
        assert run_id is not None
        cancelled = invoke("cancel", run_id, "--by", "alice@example.com", *shared)
        assert cancelled.exit_code == 0
        rest = process.stdout.read()
        assert process.wait(timeout=120) == 1
    assert "cancelled by alice@example.com" in rest
    again = invoke("cancel", run_id, *shared)
    assert again.exit_code == 1 and "not running" in again.output


def test_embedded_store_keeps_runs_for_status(tmp_path: Path, aws_env: None) -> None:
    """No endpoint given: DynamoDB Local with data under --data-dir, readable afterwards."""
    data = ["--data-dir", str(tmp_path / "data")]
    path = gate_file(tmp_path, {"steps": [{"name": "w", "wait": "1m"}]})
    try:
        result = invoke("run", path, "--speed", "600", "--json", *data)
        assert result.exit_code == 0, result.output
        store = events(result.output)[0]
        assert store["kind"] == "dynamodb-local" and store["persistent"] is True
        run_id = events(result.output)[-1]["run_ids"][0]
        status = invoke("status", run_id, "--json", *data)
        assert json.loads(status.output)["status"] == "SUCCEEDED"
    finally:  # the data folder's server outlives the commands, by design
        dynamodb_local.stop_shared(tmp_path / "data")


def test_without_java_an_in_process_emulator_is_used_and_named(
    tmp_path: Path, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb_local, "java", lambda: None)
    path = gate_file(tmp_path, {"steps": [{"name": "w", "wait": "1m"}]})
    result = invoke("run", path, "--speed", "600", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "in-process DynamoDB emulator (moto; no Java found" in result.output


def test_python_dash_m_and_help_for_every_command() -> None:
    for command in ([], ["run"], ["validate"], ["status"], ["runs"], ["cancel"]):
        out = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Usage" in out
