"""The CDK side (orchestrator/cdk, the `cdk` extra): `gate_action` checks a gate while the
app is synthesized, and examples/cdk/app.py (the `Orchestrator` construct, and a V2 pipeline
with the gate on its function between staging and production) synthesizes offline into
templates that cfn-lint and our own pipeline checks pass. aws-cdk-lib runs on node (jsii),
which `make setup` installs like Java. (The construct against template.yaml:
tests/package/test_cdk_orchestrator.py.)"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_cdk import aws_lambda as lambda_

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

from orchestrator.cdk import GateActionError, gate_parameters
from orchestrator.local.pipeline import declaration_warnings, parse_pipeline

if TYPE_CHECKING:
    from types import ModuleType

    from aws_cdk import cx_api

ROOT = Path(__file__).resolve().parents[2]
GATE_FILE = ROOT / "examples" / "gates" / "release.yaml"
ARGS = {"stage": "staging", "url": "https://staging.example.com/health"}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cdk_app", ROOT / "examples" / "cdk" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stand_in_code(folder: Path) -> lambda_.Code:
    """A code asset for offline synthesis: what `make build` would write is not needed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.py").write_text("# a stand-in for the Lambda package\n")
    return lambda_.Code.from_asset(str(folder))


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> cx_api.CloudAssembly:
    outdir = tmp_path_factory.mktemp("cdk.out")
    code = stand_in_code(tmp_path_factory.mktemp("code"))
    found: cx_api.CloudAssembly = _example().app(str(outdir), code).synth()
    return found


@pytest.fixture(scope="module")
def synthesized(assembly: cx_api.CloudAssembly) -> tuple[dict[str, Any], Path]:
    stack = assembly.get_stack_by_name("GatedPipeline")
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


def test_the_example_gate_runs_on_the_orchestrator_the_app_deploys(
    assembly: cx_api.CloudAssembly, synthesized: tuple[dict[str, Any], Path]
) -> None:
    """The Gate action's FunctionName is the Orchestrator stack's function (an export of its
    Ref), and the pipeline's action role may invoke that function (another export) only."""
    (gate,) = _pipeline(synthesized[0])["Stages"][2]["Actions"]
    imported = gate["Configuration"]["FunctionName"]["Fn::ImportValue"]
    orchestrator = assembly.get_stack_by_name("Orchestrator").template
    (function,) = [
        name
        for name, r in orchestrator["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
        and "orchestrator.handler" in r["Properties"]["Handler"]
    ]
    exports = {
        output["Export"]["Name"]: output["Value"]
        for output in orchestrator["Outputs"].values()
        if "Export" in output
    }
    assert exports[imported] == {"Ref": function}
    arn = {"Fn::GetAtt": [function, "Arn"]}
    (arn_export,) = [name for name, value in exports.items() if value == arn]
    invoked = [
        resource
        for r in synthesized[0]["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "lambda:InvokeFunction"
        for resource in _as_list(statement["Resource"])
    ]
    imported_arn = {"Fn::ImportValue": arn_export}
    # aws-cdk-lib's LambdaInvokeAction grants the function and its versions (ARN:*).
    assert invoked == [imported_arn, {"Fn::Join": ["", [imported_arn, ":*"]]}]
    assert orchestrator["Outputs"]["FunctionName"]["Value"] == {"Ref": function}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_orchestrator_stack_lints_clean(assembly: cx_api.CloudAssembly) -> None:
    """Only aws-cdk-lib's own W3005 (each function's DependsOn its role, which its GetAtt of
    the role implies anyway)."""
    from cfnlint.api import ManualArgs, lint

    stack = assembly.get_stack_by_name("Orchestrator")
    matches = lint(Path(stack.template_full_path).read_text(), config=ManualArgs())
    functions = sorted(
        name
        for name, r in stack.template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
    )
    assert len(functions) == 2
    assert sorted((m.rule.id, m.path[:3]) for m in matches) == [
        ("W3005", ["Resources", name, "DependsOn"]) for name in functions
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
