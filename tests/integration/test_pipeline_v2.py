"""`orchestrator run` on a V2 pipeline: pipeline-level variables with defaults and
`--variable` overrides, and what the execution mode makes of a newer execution that starts
while a gate runs (the running gate is never interrupted)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

if TYPE_CHECKING:
    from pathlib import Path

INVOKE = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}
DEPLOY = {"category": "Deploy", "owner": "AWS", "provider": "CloudFormation", "version": "1"}
GATE = json.dumps(
    {
        "steps": [{"name": "bake", "wait": "#{variables.bake}"}],
        "outputs": {"Stage": "'#{variables.stage}'"},
    }
)


@pytest.fixture
def shared(dynamodb: Any, table_name: str, tmp_path: Path) -> list[str]:
    return ["--table", table_name, "--data-dir", str(tmp_path)]


def pipeline_file(tmp_path: Path, mode: str | None = None) -> str:
    declaration: dict[str, Any] = {
        "name": "release",
        "pipelineType": "V2",
        "variables": [{"name": "bake", "defaultValue": "2m"}, {"name": "stage"}],
        "stages": [
            {
                "name": "Gate",
                "actions": [
                    {
                        "name": "Bake",
                        "namespace": "Gate",
                        "actionTypeId": INVOKE,
                        "configuration": {"FunctionName": "orchestrator", "UserParameters": GATE},
                    }
                ],
            },
            {
                "name": "Prod",
                "actions": [
                    {
                        "name": "Deploy",
                        "actionTypeId": DEPLOY,
                        "configuration": {"StackName": "#{variables.stage}"},
                    }
                ],
            },
        ],
    }
    if mode is not None:
        declaration["executionMode"] = mode
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps({"pipeline": declaration}))
    return str(path)


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(app, ["run", *args, "--json"], catch_exceptions=False)
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.output


def test_pipeline_variables_take_their_defaults_and_the_starts_values(
    shared: list[str], tmp_path: Path
) -> None:
    code, events, output = run(
        pipeline_file(tmp_path), "--speed", "3600", "--variable", "stage=prod", *shared
    )
    assert code == 0, output
    (pipeline,) = [e for e in events if e["event"] == "pipeline"]
    assert pipeline["variables"] == {"bake": "2m", "stage": "prod"}
    assert pipeline["execution_mode"] == "SUPERSEDED"
    finished = events[-1]
    assert finished["variables"]["variables"] == {"bake": "2m", "stage": "prod"}
    assert finished["variables"]["Gate"] == {"Stage": "prod"}  # '#{variables.stage}' resolved
    started = [e for e in events if e["event"] == "action_started"]
    assert '"wait": "2m"' in started[0]["user_parameters"]


def test_a_variable_without_default_must_be_given(shared: list[str], tmp_path: Path) -> None:
    code, _, output = run(pipeline_file(tmp_path), *shared)
    assert code == 2
    assert "'stage' has no default" in output
    code, _, output = run(pipeline_file(tmp_path), "--variable", "stge=prod", *shared)
    assert code == 2
    assert "--variable stge: the pipeline declares no such variable" in output


@pytest.mark.parametrize(
    ("mode", "phases"),
    [
        (None, ["arrived", "entered"]),  # SUPERSEDED, CodePipeline's default
        ("QUEUED", ["arrived", "entered"]),
        ("PARALLEL", ["arrived"]),  # no stage lock: nothing waits
    ],
)
def test_a_newer_execution_never_interrupts_the_running_gate(
    shared: list[str], tmp_path: Path, mode: str | None, phases: list[str]
) -> None:
    code, events, output = run(
        pipeline_file(tmp_path, mode),
        "--speed",
        "3600",
        "--variable",
        "stage=prod",
        "--newer-execution-at",
        "30s",
        *shared,
    )
    assert code == 0, output
    kinds = [
        (e["event"], e.get("phase") or e.get("status") or "")
        for e in events
        if e["event"] in ("newer_execution", "action_finished", "action_skipped")
    ]
    expected_mode = mode or "SUPERSEDED"
    newer = [e for e in events if e["event"] == "newer_execution"]
    assert {e["mode"] for e in newer} == {expected_mode}
    assert [e["phase"] for e in newer] == phases
    assert newer[0]["stage"] == "Gate" and newer[0]["elapsed"] >= 30
    assert kinds[0] == ("newer_execution", "arrived")  # while the gate ran
    assert ("action_finished", "Succeeded") in kinds  # and the gate still succeeded
    if "entered" in phases:  # it enters the gate's stage once this execution has left it
        assert kinds.index(("newer_execution", "entered")) > kinds.index(
            ("action_finished", "Succeeded")
        )
