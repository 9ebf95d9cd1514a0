"""Pipeline declarations in CodePipeline's own shapes, and its `#{Namespace.Variable}` syntax.

Accepted: `aws codepipeline get-pipeline` output (`{"pipeline": {"stages": [...]}}`),
the `AWS::CodePipeline::Pipeline` resource's Properties (`Stages`/`Actions`, PascalCase),
or a whole CloudFormation template holding one such resource. JSON or YAML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.exceptions import DefinitionError
from orchestrator.reference import MAX_DEPTH, check_inline_length

LAMBDA_INVOKE = ("Invoke", "AWS", "Lambda", "1")
_VARIABLE = re.compile(r"#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_]+)\}")


class PipelineError(ValueError):
    """The file is not a pipeline declaration we can run (names the field)."""


@dataclass(frozen=True)
class Action:
    """One action, normalised to CodePipeline's API field names."""

    stage: str
    name: str
    type_id: tuple[str, str, str, str]
    configuration: dict[str, str]
    run_order: int = 1
    namespace: str | None = None
    input_artifacts: list[str] = field(default_factory=list)
    output_artifacts: list[str] = field(default_factory=list)

    @property
    def is_lambda_invoke(self) -> bool:
        return self.type_id == LAMBDA_INVOKE

    @property
    def kind(self) -> str:
        return "/".join(self.type_id)


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: list[tuple[str, list[Action]]]

    @property
    def actions(self) -> list[Action]:
        """All actions in execution order: stage by stage, then by runOrder."""
        return [a for _, actions in self.stages for a in sorted(actions, key=_run_order)]


def _run_order(action: Action) -> int:
    return action.run_order


def load_document(data: bytes | str) -> Any:
    """JSON, or YAML (CloudFormation's short tags in their long forms), from UTF-8 bytes.

    PipelineError, not a traceback, for text that is not UTF-8 (as the Lambda reads gate
    files) and for nesting deeper than a gate may be (MAX_DEPTH, RecursionError included)."""
    text = _utf8(data) if isinstance(data, bytes) else data
    try:
        document = _parse(text)
    except RecursionError:
        raise PipelineError(f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    deepest, stack = 0, [(document, 1)]
    while stack and deepest <= MAX_DEPTH:  # iterative: a deep document cannot overflow here
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    if deepest > MAX_DEPTH:
        raise PipelineError(f"nested more than {MAX_DEPTH} levels deep")
    return document


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        bom = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        hint = "a UTF-16 byte-order mark; " if bom else ""
        raise PipelineError(
            f"not UTF-8 text (byte {exc.start}: {hint}save it as UTF-8, "
            "which is how the Lambda reads gate files)"
        ) from None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    from orchestrator.local.schema import load_cfn_yaml

    try:
        return load_cfn_yaml(text)
    except yaml.YAMLError as exc:
        raise PipelineError(f"neither JSON nor YAML: {exc}") from None


def looks_like_pipeline(document: Any) -> bool:
    return isinstance(document, dict) and any(
        key in document for key in ("pipeline", "Stages", "stages", "Resources")
    )


def parse_pipeline(document: Any) -> Pipeline:
    """Normalise any accepted shape; raise PipelineError naming what is wrong."""
    if not isinstance(document, dict):
        raise PipelineError("pipeline: expected a mapping")
    name = "local-pipeline"
    if "Resources" in document:
        found = [
            (key, res)
            for key, res in (document["Resources"] or {}).items()
            if isinstance(res, dict) and res.get("Type") == "AWS::CodePipeline::Pipeline"
        ]
        if len(found) != 1:
            raise PipelineError("Resources: expected exactly one AWS::CodePipeline::Pipeline")
        name, resource = found[0]
        document = resource.get("Properties") or {}
    if "pipeline" in document:
        document = document["pipeline"]
    body = _lower_keys(document)
    name = body.get("name") if isinstance(body.get("name"), str) else name
    stages_raw = body.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise PipelineError("stages: expected a non-empty list")
    stages = []
    for s_index, stage in enumerate(stages_raw):
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str):
            raise PipelineError(f"stages[{s_index}].name: required")
        actions = [
            _action(stage["name"], raw, f"stages[{s_index}].actions[{a_index}]")
            for a_index, raw in enumerate(stage.get("actions") or [])
        ]
        stages.append((stage["name"], actions))
    return Pipeline(name=name, stages=stages)


def _action(stage: str, raw: Any, path: str) -> Action:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise PipelineError(f"{path}.name: required")
    type_raw = raw.get("actiontypeid")
    if not isinstance(type_raw, dict):
        raise PipelineError(f"{path}.actionTypeId: required")
    type_id = tuple(str(type_raw.get(k, "")) for k in ("category", "owner", "provider", "version"))
    configuration = {str(k): _text(v) for k, v in (raw.get("configuration") or {}).items()}
    for key, value in configuration.items():
        _check_value(value, f"{path}.configuration.{key}")
    return Action(
        stage=stage,
        name=raw["name"],
        type_id=(type_id[0], type_id[1], type_id[2], type_id[3]),
        configuration=configuration,
        run_order=int(raw.get("runorder") or 1),
        namespace=raw.get("namespace"),
        input_artifacts=[a["name"] for a in raw.get("inputartifacts") or [] if "name" in a],
        output_artifacts=[a["name"] for a in raw.get("outputartifacts") or [] if "name" in a],
    )


def _check_value(value: str, where: str) -> None:
    """CodePipeline's ActionConfigurationValue: 1 to 1,000 characters, `#{...}` counted as
    written (CreatePipeline and UpdatePipeline refuse the pipeline otherwise)."""
    if not value:
        raise PipelineError(f"{where}: empty; CodePipeline requires at least 1 character")
    try:
        check_inline_length(value, where)
    except DefinitionError as exc:
        raise PipelineError(exc.errors[0]) from None


def _text(value: Any) -> str:
    """Configuration values are strings in CodePipeline; YAML may give other scalars."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _lower_keys(value: Any) -> Any:
    """`Stages`/`stages`, `ActionTypeId`/`actionTypeId` -> lower-case keys, recursively,
    except inside `configuration`, whose keys (FunctionName, UserParameters) are data."""
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, inner in value.items():
        lowered = str(key).lower()
        out[lowered] = inner if lowered == "configuration" else _lower_keys(inner)
    return out


def resolve_variables(
    configuration: dict[str, str], variables: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Substitute `#{Namespace.Variable}` textually, as CodePipeline does.

    Raises PipelineError naming the first variable that no earlier action produced.
    """

    def substitute(match: re.Match[str]) -> str:
        namespace, variable = match.group(1), match.group(2)
        try:
            return variables[namespace][variable]
        except KeyError:
            raise PipelineError(
                f"unable to resolve variable #{{{namespace}.{variable}}}: no earlier action "
                f"in namespace '{namespace}' produced '{variable}'"
            ) from None

    return {key: _VARIABLE.sub(substitute, value) for key, value in configuration.items()}
