"""`validate` and `run` with referenced gates: the 1,000-character limit, strict inline JSON,
gate files with params and args, and input artifacts given as folders or zips."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.exceptions import FailureType
from orchestrator.model import AnswerKind
from tests.integration.test_cli import events, invoke
from tests.unit.test_tick import Rig as TickRig
from tests.unit.test_tick import job

TEMPLATE = """\
# one gate for every service and stage
params:
  service: {required: true}
  stage: {default: prod}
  bake: {default: 10m}
steps:
  - name: bake
    wait: ${args.bake}
outputs:
  Service: args.service
  Stage: args.stage
"""


@pytest.fixture
def shared(dynamodb: Any, table_name: str, tmp_path: Path) -> list[str]:
    """Options pointing every command at the session's DynamoDB Local and a fresh table."""
    return ["--table", table_name, "--data-dir", str(tmp_path / "data")]


def lambda_action(name: str, user_parameters: str, inputs: list[str] | None = None) -> Any:
    return {
        "name": name,
        "namespace": name,
        "actionTypeId": {
            "category": "Invoke",
            "owner": "AWS",
            "provider": "Lambda",
            "version": "1",
        },
        "inputArtifacts": [{"name": n} for n in inputs or []],
        "configuration": {"FunctionName": "orchestrator", "UserParameters": user_parameters},
    }


def pipeline_file(tmp_path: Path, *actions: Any) -> str:
    path = tmp_path / f"pipeline-{uuid.uuid4().hex[:6]}.json"
    stages = [{"name": f"S{i}", "actions": [action]} for i, action in enumerate(actions)]
    path.write_text(json.dumps({"pipeline": {"name": "p", "stages": stages}}))
    return str(path)


def repo(tmp_path: Path, text: str = TEMPLATE) -> Path:
    folder = tmp_path / "repo"
    (folder / "gates").mkdir(parents=True, exist_ok=True)
    (folder / "gates" / "prod.yaml").write_text(text)
    return folder


def big_inline() -> str:
    steps = [{"name": f"wait-{i:02d}", "wait": "1m"} for i in range(50)]
    return json.dumps({"steps": steps})


# region the limit and strict JSON


def test_an_inline_gate_over_1000_characters_is_refused_by_validate_and_run(
    tmp_path: Path, shared: list[str]
) -> None:
    text = big_inline()
    assert len(text) > 1000
    path = pipeline_file(tmp_path, lambda_action("Gate", text))
    for result in (invoke("validate", path), invoke("run", path, *shared)):
        assert result.exit_code == 2, result.output
        output = " ".join(result.output.split())
        assert f"UserParameters: {len(text):,} characters, over CodePipeline's limit of 1,000" in (
            output
        )
        assert '{"gate": "SourceArtifact::gates/prod.json"}' in output


def test_exactly_1000_characters_are_fine(tmp_path: Path) -> None:
    base = json.dumps({"steps": [{"name": "a", "wait": "1m"}], "timeout": "2h"})
    text = base[:-1] + " " * (1000 - len(base)) + "}"
    assert len(text) == 1000
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", text)))
    assert result.exit_code == 0, result.output


INLINE_CORPUS = [
    '{"steps": [{"name": "a", "wait": "1m"}]}',
    '{"steps": [{"name": "a", "wait": "1m"},]}',
    '\ufeff{"steps": [{"name": "a", "wait": "1m"}]}',
    "steps:\n  - {name: a, wait: 1m}\n",
    '{"steps": [{"name": "a", "wait": "1m"}], "timeout": NaN}',
    '{"steps": [{"name": "a", "wait": "soon"}]}',
    '{"gate": "SourceArtifact::gates/prod.yaml"}',
    '{"gate": "SourceArtifact::../x"}',
    '{"gate": "s3://bucket/key.json", "args": {"a": "1"}}',
    '{"gate": "ssm:/gates/prod", "args": {"a": 1}}',
    '{"gate": "ssm:/gates/prod", "steps": []}',
    "[" * 300 + "]" * 300,
    "",
]


@pytest.mark.parametrize("text", INLINE_CORPUS)
def test_validate_and_the_handler_agree_on_inline_user_parameters(
    tmp_path: Path, text: str
) -> None:
    result = invoke(
        "validate",
        pipeline_file(tmp_path, lambda_action("Gate", text, ["SourceArtifact"])),
    )
    rig = TickRig()
    answer = rig.tick(job(text))
    handler_refuses = (
        answer.kind is AnswerKind.FAILED
        and answer.failure_type is FailureType.CONFIGURATION_ERROR
        and not answer.summary.startswith("gate ")  # it could not fetch: no source here
    )
    assert (result.exit_code == 2) == handler_refuses, (result.output, answer.summary)
    if handler_refuses:
        first = answer.summary.split("; ")[0]
        assert first in " ".join(result.output.split()), (first, result.output)


def test_a_bare_json_gate_file_is_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    path.write_text('{"steps": [{"name": "a", "wait": "1m"},]}')
    result = invoke("validate", str(path))
    assert result.exit_code == 2 and "not valid JSON" in result.output


# endregion
# region gate files with params


def test_validate_a_template_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = repo(tmp_path) / "gates" / "prod.yaml"
    missing = invoke("validate", str(path), "--args", "servce=x", "--args", "bake=soon")
    assert missing.exit_code == 2
    output = " ".join(missing.output.split())
    for line in (
        "args.servce: unknown argument (the gate declares: bake, service, stage)",
        "args.service: required argument missing",
        "steps[0].wait: invalid duration 'soon'",
    ):
        assert line in output, missing.output
    ok = invoke("validate", str(path), "-a", "service=checkout")
    assert ok.exit_code == 0, ok.output
    assert "valid gate (a template (params): reference it" in " ".join(ok.output.split())
    bad_option = invoke("validate", str(path), "-a", "service")
    assert bad_option.exit_code == 2 and "--args: expected NAME=VALUE" in bad_option.output


def test_validate_checks_a_referenced_file_against_an_artifact_folder(tmp_path: Path) -> None:
    folder = repo(tmp_path, TEMPLATE.replace("${args.bake}", "${args.bak}"))
    params = json.dumps({"gate": "SourceArtifact::gates/prod.yaml", "args": {"service": "c"}})
    path = pipeline_file(tmp_path, lambda_action("Staging", params, ["SourceArtifact"]))
    unchecked = invoke("validate", path)
    assert unchecked.exit_code == 0
    assert "pass --artifact SourceArtifact=FOLDER" in unchecked.output
    checked = invoke("validate", path, "--artifact", f"SourceArtifact={folder}")
    assert checked.exit_code == 2
    assert (
        "S0/Staging: gate SourceArtifact::gates/prod.yaml: steps[0].wait: ${args.bak} refers "
        "to an undeclared parameter" in " ".join(checked.output.split())
    )
    undeclared = pipeline_file(tmp_path, lambda_action("Staging", params, []))
    result = invoke("validate", undeclared, "--artifact", f"SourceArtifact={folder}")
    assert result.exit_code == 2 and "has no input artifact 'SourceArtifact'" in result.output


# endregion
# region run


def test_run_a_pipeline_whose_gates_live_in_the_source_artifact(
    tmp_path: Path, shared: list[str]
) -> None:
    folder = repo(tmp_path)
    source = tmp_path / "source.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.write(folder / "gates" / "prod.yaml", "gates/prod.yaml")
    staging = {
        "gate": "SourceArtifact::gates/prod.yaml",
        "args": {"service": "checkout", "stage": "staging"},
    }
    prod = {"gate": "SourceArtifact::gates/prod.yaml", "args": {"service": "#{Staging.Service}"}}
    path = pipeline_file(
        tmp_path,
        lambda_action("Staging", json.dumps(staging), ["SourceArtifact"]),
        lambda_action("Prod", json.dumps(prod), ["SourceArtifact"]),
    )
    result = invoke(
        "run", path, "--artifact", f"SourceArtifact={source}", "--speed", "3600", "--json", *shared
    )
    assert result.exit_code == 0, result.output
    variables = events(result.output)[-1]["variables"]
    assert variables["Staging"] == {"Service": "checkout", "Stage": "staging"}
    assert variables["Prod"] == {"Service": "checkout", "Stage": "prod"}
    run_id = events(result.output)[-1]["run_ids"][0]
    status = invoke("status", run_id, *shared)
    assert "definition: SourceArtifact::gates/prod.yaml, version local-" in status.output
    assert "args bake=10m, service=checkout, stage=staging" in " ".join(status.output.split())


def test_run_a_template_directly_with_args(tmp_path: Path, shared: list[str]) -> None:
    path = repo(tmp_path) / "gates" / "prod.yaml"
    result = invoke(
        "run",
        str(path),
        "--args",
        "service=cart",
        "-a",
        "bake=1h",
        "--speed",
        "3600",
        "--json",
        *shared,
    )
    assert result.exit_code == 0, result.output
    stream = events(result.output)
    assert stream[-1]["variables"]["Gate"] == {"Service": "cart", "Stage": "prod"}
    started = next(e for e in stream if e["event"] == "action_started")
    assert json.loads(started["user_parameters"]) == {
        "gate": "GateFile::prod.yaml",
        "args": {"service": "cart", "bake": "1h"},
    }
    invalid = invoke("run", str(path), *shared)
    assert invalid.exit_code == 2 and "args.service: required argument missing" in invalid.output


def test_run_a_gate_file_too_big_to_inline(tmp_path: Path, shared: list[str]) -> None:
    path = tmp_path / "big.json"
    path.write_text(
        json.dumps({"steps": [{"name": f"wait-{i:02d}", "wait": "1s"} for i in range(50)]})
    )
    assert len(path.read_text()) > 1000
    check = invoke("validate", str(path))
    assert check.exit_code == 0 and "too big to inline" in check.output
    result = invoke("run", str(path), "--speed", "3600", "--json", *shared)
    assert result.exit_code == 0, result.output
    started = next(e for e in events(result.output) if e["event"] == "action_started")
    assert json.loads(started["user_parameters"]) == {"gate": "GateFile::big.json"}


# endregion


def test_the_example_pipeline_validates_against_the_examples_folder() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = invoke(
        "validate", str(examples / "pipeline.yaml"), "--artifact", f"SourceOutput={examples}"
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("gate SourceOutput::gates/release.yaml: checked against") == 2
