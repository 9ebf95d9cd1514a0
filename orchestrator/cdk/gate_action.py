"""A CodePipeline Lambda invoke action running a gate, validated at synth time.

    from orchestrator.cdk import gate_action

    gate = gate_action(
        action_name="Gate",
        function=orchestrator_function,            # the deployed orchestrator (IFunction)
        reference="SourceArtifact::gates/release.yaml",
        args={"stage": "production"},
        gate_file=Path("gates/release.yaml"),      # the same file, read at synth
        inputs=[source_output],
        variables_namespace="Gate",
    )

The gate is a small inline definition (`gate={"steps": [...]}`), or a reference to a file in
an input artifact (`SourceArtifact::path`), an S3 object (`s3://bucket/key`) or an SSM
parameter (`ssm:/name`) with its `args`. Either way the action's UserParameters are checked
as the function will read them, with `orchestrator validate`'s code: the definition language
(every bad field with its path), CodePipeline's 1,000-character limit on a configuration
value, a reference's artifact among the action's inputs, and, given `gate_file` (the local
copy of the referenced file), the file itself expanded with the args. `#{Namespace.Var}`
variables are checked with stand-ins, as `validate` does. A problem raises `GateActionError`
naming the action and every problem, which stops `cdk synth`.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

from orchestrator.exceptions import DefinitionError
from orchestrator.local.gatefiles import LocalArtifact, check_user_parameters
from orchestrator.reference import check_inline_length

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from aws_cdk import aws_codepipeline, aws_codepipeline_actions, aws_lambda


class GateActionError(ValueError):
    """A gate that would fail in the pipeline: every problem, each naming its field."""

    def __init__(self, action: str, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {line}" for line in errors)
        super().__init__(f"gate action {action!r}: the gate is invalid\n{lines}")


def gate_parameters(
    action_name: str,
    *,
    gate: Mapping[str, Any] | None = None,
    reference: str | None = None,
    args: Mapping[str, str] | None = None,
    gate_file: Path | None = None,
    inputs: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> str:
    """The action's UserParameters, checked; GateActionError names every problem."""
    if (gate is None) == (reference is None):
        raise GateActionError(action_name, ["give either gate (inline) or reference (a file)"])
    if gate is not None:
        if args or gate_file is not None:
            raise GateActionError(action_name, ["args and gate_file go with a reference"])
        text = json.dumps(dict(gate), separators=(",", ":"))
    else:
        text = json.dumps({"gate": reference, **({"args": dict(args)} if args else {})})
    artifacts: dict[str, LocalArtifact] = {}
    if gate_file is not None and reference is not None and "::" in reference:
        name, _, path = reference.partition("::")
        artifacts[name] = _artifact(name, gate_file, path)
    found: list[str] = [] if warnings is None else warnings
    try:
        check_inline_length(text)  # CodePipeline refuses a longer configuration value
        check_user_parameters(text, artifacts, list(inputs), found)
    except DefinitionError as exc:
        raise GateActionError(action_name, exc.errors) from None
    return text


def _artifact(name: str, source: Path, path: str) -> LocalArtifact:
    """The input artifact as far as the gate needs it: the gate file at its path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(path, source.read_bytes())
    return LocalArtifact(name, source, buffer.getvalue())


def gate_action(
    *,
    action_name: str,
    function: aws_lambda.IFunction,
    gate: Mapping[str, Any] | None = None,
    reference: str | None = None,
    args: Mapping[str, str] | None = None,
    gate_file: Path | None = None,
    inputs: Sequence[aws_codepipeline.Artifact] = (),
    variables_namespace: str | None = None,
    run_order: int | None = None,
) -> aws_codepipeline_actions.LambdaInvokeAction:
    """A LambdaInvokeAction running the gate on `function` (see the module's docstring)."""
    from aws_cdk import aws_codepipeline_actions

    names = [str(artifact.artifact_name) for artifact in inputs]
    text = gate_parameters(
        action_name, gate=gate, reference=reference, args=args, gate_file=gate_file, inputs=names
    )
    return aws_codepipeline_actions.LambdaInvokeAction(
        action_name=action_name,
        lambda_=function,
        user_parameters_string=text,
        inputs=list(inputs) or None,
        variables_namespace=variables_namespace,
        run_order=run_order,
    )


GateAction = gate_action
"""The name the CDK's own constructs would have it by."""
