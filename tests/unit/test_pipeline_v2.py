"""CodePipeline V2 conventions in pipeline declarations (orchestrator/local/pipeline.py):
pipeline-level variables, execution modes, and what CodePipeline would refuse."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from orchestrator.local.pipeline import (
    PipelineError,
    declaration_warnings,
    known_variables,
    load_document,
    parse_pipeline,
    pipeline_variables,
    resolve_variables,
)

ROOT = Path(__file__).resolve().parents[2]
INVOKE = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}
SOURCE = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
GATE = '{"steps": [{"name": "b", "wait": "#{variables.bake}"}]}'


def declaration(**pipeline: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "release",
        "pipelineType": "V2",
        "stages": [
            {"name": "Source", "actions": [{"name": "Src", "actionTypeId": SOURCE}]},
            {
                "name": "Gate",
                "actions": [
                    {
                        "name": "Bake",
                        "actionTypeId": INVOKE,
                        "configuration": {
                            "FunctionName": "orchestrator",
                            "UserParameters": GATE,
                        },
                    }
                ],
            },
        ],
        "variables": [{"name": "bake", "defaultValue": "10m", "description": "bake time"}],
    }
    return {"pipeline": {**base, **pipeline}}


def test_variables_and_mode_are_read_from_get_pipeline_output() -> None:
    pipeline = parse_pipeline(declaration(executionMode="QUEUED"))
    assert [(v.name, v.default, v.description) for v in pipeline.variables] == [
        ("bake", "10m", "bake time")
    ]
    assert pipeline.execution_mode == "QUEUED"
    assert pipeline.pipeline_type == "V2"
    assert parse_pipeline(declaration()).execution_mode == "SUPERSEDED"  # CodePipeline's default


def test_variables_and_mode_are_read_from_cloudformation() -> None:
    template = {
        "Resources": {
            "Pipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {
                    "PipelineType": "V2",
                    "ExecutionMode": "PARALLEL",
                    "Variables": [{"Name": "stage", "DefaultValue": "staging"}, {"Name": "ticket"}],
                    "Stages": declaration()["pipeline"]["stages"],
                },
            }
        }
    }
    pipeline = parse_pipeline(template)
    assert [(v.name, v.default) for v in pipeline.variables] == [
        ("stage", "staging"),
        ("ticket", None),
    ]
    assert pipeline.execution_mode == "PARALLEL"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"executionMode": "EVENTUAL"}, "executionMode: 'EVENTUAL' is not one of"),
        ({"variables": "bake=10m"}, "variables: expected a list"),
        ({"variables": [{"defaultValue": "x"}]}, r"variables\[0\]\.name: required"),
    ],
)
def test_what_cannot_be_run_is_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(declaration(**changes))


def test_a_start_overrides_defaults_and_must_give_what_has_none() -> None:
    pipeline = parse_pipeline(
        declaration(variables=[{"name": "bake", "defaultValue": "10m"}, {"name": "stage"}])
    )
    assert pipeline_variables(pipeline, {"stage": "prod"}) == {"bake": "10m", "stage": "prod"}
    assert pipeline_variables(pipeline, {"stage": "prod", "bake": "1h"})["bake"] == "1h"
    with pytest.raises(PipelineError, match=r"'stage' has no default: .*--variable stage=VALUE"):
        pipeline_variables(pipeline, {})
    with pytest.raises(PipelineError, match=r"--variable nope: .*declares: bake, stage\)"):
        pipeline_variables(pipeline, {"nope": "1", "stage": "x"})
    with pytest.raises(PipelineError, match="1 to 1,000 characters"):
        pipeline_variables(pipeline, {"stage": "x" * 1001})
    assert known_variables(pipeline, {}) == {"bake": "10m"}  # validate checks with what is known


def test_pipeline_variables_resolve_like_any_namespace() -> None:
    values = {"variables": {"bake": "10m"}, "Build": {"Id": "7"}}
    resolved = resolve_variables({"U": "#{variables.bake} #{Build.Id}"}, values)
    assert resolved == {"U": "10m 7"}
    with pytest.raises(PipelineError, match=r"#\{variables\.nope\}: the pipeline declares no"):
        resolve_variables({"U": "#{variables.nope}"}, values)


def test_a_declaration_codepipeline_accepts_has_no_warning() -> None:
    assert declaration_warnings(parse_pipeline(declaration())) == []
    for name in ("pipeline.yaml", "pipeline-local.json"):
        document = load_document((ROOT / "examples" / name).read_bytes())
        assert declaration_warnings(parse_pipeline(document)) == [], name


def _with(change: Any) -> list[str]:
    document = copy.deepcopy(declaration())
    change(document["pipeline"])
    return declaration_warnings(parse_pipeline(document))


def _gate(pipeline: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = pipeline["stages"][1]["actions"][0]
    return action


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(name="my release"), "name: does not match pattern"),
        (lambda p: p["stages"][1].update(name="x" * 101), "stages[1].name: length 101 > max 100"),
        (lambda p: _gate(p).update(name="bake gate"), "stages[1].actions[0].name: does not match"),
        (lambda p: _gate(p).update(namespace="Gate.1"), "stages[1].actions[0].namespace: does not"),
        (lambda p: _gate(p).update(runOrder=1000), "runOrder: value 1000 > max 999"),
        (lambda p: _gate(p).update(outputArtifacts=[{"name": "a.b"}]), "outputArtifacts[0].name"),
        (lambda p: p["stages"].pop(), "stages: 1; a pipeline has 2 to 50 stages"),
        (lambda p: p["stages"][1].update(name="Source"), "another stage is named 'Source'"),
        (
            lambda p: p["stages"][1]["actions"].extend(
                {"name": f"A{i}", "actionTypeId": INVOKE} for i in range(50)
            ),
            "stages[1].actions: 51 actions; at most 50 a stage",
        ),
        (
            lambda p: p["stages"][1]["actions"].append(copy.deepcopy(_gate(p))),
            "more than one action is named 'Bake'",
        ),
        (lambda p: p["variables"].append({"name": "a b"}), "variables[1].name: does not match"),
        (
            lambda p: p["variables"].extend({"name": f"v{i}"} for i in range(50)),
            "variables: 51 items > max 50",
        ),
        (lambda p: p.update(pipelineType="V1"), "variables: pipeline-level variables need"),
        (
            lambda p: (p.pop("pipelineType"), p.pop("variables"), p.update(executionMode="QUEUED")),
            "executionMode: QUEUED needs pipelineType V2, not V1 (no pipelineType)",
        ),
        (
            lambda p: p.update(variables=[]),
            "configuration.UserParameters: #{variables.bake} names no variable of the pipeline",
        ),
    ],
)
def test_what_codepipeline_would_refuse_is_a_warning_naming_the_field(
    change: Any, expected: str
) -> None:
    warnings = _with(change)
    assert any(expected in line for line in warnings), warnings
