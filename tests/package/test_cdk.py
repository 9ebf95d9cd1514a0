"""The CDK side (orchestrator/cdk, the `cdk` extra): `gate_action` checks a gate while the
app is synthesized, and examples/cdk/app.py (a V2 pipeline with the gate between staging and
production) synthesizes offline into a template that cfn-lint and our own pipeline checks
pass. aws-cdk-lib runs on node (jsii), which `make setup` installs like Java."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

from orchestrator.cdk import GateActionError, gate_parameters
from orchestrator.local.pipeline import declaration_warnings, parse_pipeline

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
GATE_FILE = ROOT / "examples" / "gates" / "release.yaml"
ARGS = {"stage": "staging", "url": "https://staging.example.com/health"}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cdk_app", ROOT / "examples" / "cdk" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    stack = _example().app(str(outdir)).synth().get_stack_by_name("GatedPipeline")
    template: dict[str, Any] = stack.template
    return template, Path(stack.template_full_path)


def _pipeline(template: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CodePipeline::Pipeline"
    ]
    assert isinstance(found, dict)
    return found


def test_the_example_app_puts_the_gate_between_staging_and_production(
    synthesized: tuple[dict[str, Any], Path],
) -> None:
    pipeline = _pipeline(synthesized[0])
    assert pipeline["PipelineType"] == "V2"
    assert [s["Name"] for s in pipeline["Stages"]] == [
        "Source",
        "DeployStaging",
        "Gate",
        "DeployProduction",
    ]
    (gate,) = pipeline["Stages"][2]["Actions"]
    assert gate["ActionTypeId"] == {
        "Category": "Invoke",
        "Owner": "AWS",
        "Provider": "Lambda",
        "Version": "1",
    }
    assert gate["Namespace"] == "Gate"
    assert gate["InputArtifacts"] == [{"Name": "SourceArtifact"}]
    assert json.loads(gate["Configuration"]["UserParameters"]) == {
        "gate": "SourceArtifact::gates/release.yaml",
        "args": ARGS,
    }
    (production,) = pipeline["Stages"][3]["Actions"]
    overrides = json.loads(production["Configuration"]["ParameterOverrides"])
    assert overrides == {"Stage": "production", "HealthStatus": "#{Gate.HealthStatus}"}


def test_the_synthesized_template_lints_clean(synthesized: tuple[dict[str, Any], Path]) -> None:
    """No cfn-lint error or warning but one in what aws-cdk-lib itself writes (W3005: the
    pipeline's DependsOn its role, which its GetAtt of that role implies anyway). Its
    informational findings are about aws-cdk-lib's own style (Fn::Join for Fn::Sub)."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(synthesized[1].read_text(), config=ManualArgs())
    assert [(m.rule.id, m.path[:3]) for m in matches] == [
        ("W3005", ["Resources", "PipelineC660917D", "DependsOn"])
    ]


def test_codepipeline_would_accept_the_synthesized_pipeline(
    synthesized: tuple[dict[str, Any], Path],
) -> None:
    assert declaration_warnings(parse_pipeline(synthesized[0])) == []


def test_a_broken_inline_gate_fails_at_synth_naming_every_field() -> None:
    gate = {"steps": [{"name": "bake", "wait": "soon"}, {"name": "x", "alarms": {}}]}
    with pytest.raises(GateActionError) as caught:
        gate_parameters("Gate", gate=gate)
    assert "gate action 'Gate'" in str(caught.value)
    assert any(
        line.startswith("steps[0].wait: invalid duration 'soon'") for line in caught.value.errors
    )
    assert any(line.startswith("steps[1].alarms") for line in caught.value.errors)


def test_an_inline_gate_over_codepipelines_limit_fails_at_synth() -> None:
    gate = {"steps": [{"name": f"bake{i}", "wait": "1m"} for i in range(40)]}
    with pytest.raises(GateActionError, match="1,000") as caught:
        gate_parameters("Gate", gate=gate)
    assert "reference it instead" in str(caught.value)


def test_a_referenced_gate_file_is_checked_with_its_args_at_synth() -> None:
    reference = "SourceArtifact::gates/release.yaml"
    text = gate_parameters(
        "Gate", reference=reference, args=ARGS, gate_file=GATE_FILE, inputs=["SourceArtifact"]
    )
    assert json.loads(text) == {"gate": reference, "args": ARGS}
    with pytest.raises(GateActionError, match="url"):  # a required param without its arg
        gate_parameters(
            "Gate",
            reference=reference,
            args={"stage": "staging"},
            gate_file=GATE_FILE,
            inputs=["SourceArtifact"],
        )
    with pytest.raises(GateActionError, match="no input artifact 'SourceArtifact'"):
        gate_parameters("Gate", reference=reference, args=ARGS, inputs=["BuildOutput"])


def test_inline_or_reference_not_both() -> None:
    with pytest.raises(GateActionError, match="either gate"):
        gate_parameters("Gate")
    with pytest.raises(GateActionError, match="either gate"):
        gate_parameters("Gate", gate={"steps": []}, reference="ssm:/gates/prod")
    with pytest.raises(GateActionError, match="go with a reference"):
        gate_parameters("Gate", gate={"steps": [{"name": "b", "wait": "1m"}]}, args={"a": "b"})
