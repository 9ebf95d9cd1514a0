"""Pipeline declarations in CodePipeline's own shapes, and its `#{Namespace.Variable}` syntax.

Accepted: `aws codepipeline get-pipeline` output (`{"pipeline": {"stages": [...]}}`),
the `AWS::CodePipeline::Pipeline` resource's Properties (`Stages`/`Actions`, PascalCase),
or a whole CloudFormation template holding one such resource. JSON or YAML.

V2 pipelines' own conventions:

- pipeline-level variables (`variables: [{name, defaultValue, description}]`), read as
  `#{variables.NAME}` in any action's configuration; a start (`orchestrator run --variable
  NAME=VALUE`, StartPipelineExecution's `variables`) overrides a default, and one without a
  default must be given (`pipeline_variables`);
- `executionMode` (SUPERSEDED, the default; QUEUED; PARALLEL): the rehearsal runs one
  execution and says what a newer one would do (`orchestrator.local.runner`);
- `declaration_warnings`: what CreatePipeline or UpdatePipeline would refuse, from botocore's
  model of CodePipeline (names' patterns and lengths, runOrder, enums, counts) and the
  documented quotas (2 to 50 stages, at most 50 actions a stage), and V2-only features in a
  V1 pipeline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.exceptions import DefinitionError
from orchestrator.reference import MAX_DEPTH, check_inline_length

LAMBDA_INVOKE = ("Invoke", "AWS", "Lambda", "1")
EXECUTION_MODES = ("SUPERSEDED", "QUEUED", "PARALLEL")
"""CodePipeline's execution modes; SUPERSEDED is its default (and V1's only one)."""
PIPELINE_VARIABLES = "variables"
"""The namespace of pipeline-level variables: `#{variables.NAME}`."""
MAX_STAGES = 50
MAX_ACTIONS_PER_STAGE = 50
"""CodePipeline's quotas (its documentation's "Quotas" page), which botocore's model omits."""
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
class PipelineVariable:
    """A pipeline-level variable (V2): its value is the start's, else `default`."""

    name: str
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: list[tuple[str, list[Action]]]
    variables: list[PipelineVariable] = field(default_factory=list)
    execution_mode: str = "SUPERSEDED"
    pipeline_type: str | None = None
    """`V1`, `V2`, or None when the declaration does not say (CodePipeline then makes V1)."""

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
    variables = _variables(body.get("variables"))
    mode = body.get("executionmode") or "SUPERSEDED"
    if mode not in EXECUTION_MODES:
        raise PipelineError(f"executionMode: {mode!r} is not one of {', '.join(EXECUTION_MODES)}")
    kind = body.get("pipelinetype")
    stages = []
    for s_index, stage in enumerate(stages_raw):
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str):
            raise PipelineError(f"stages[{s_index}].name: required")
        actions = [
            _action(stage["name"], raw, f"stages[{s_index}].actions[{a_index}]")
            for a_index, raw in enumerate(stage.get("actions") or [])
        ]
        stages.append((stage["name"], actions))
    return Pipeline(
        name=name,
        stages=stages,
        variables=variables,
        execution_mode=mode,
        pipeline_type=kind if isinstance(kind, str) else None,
    )


def _variables(raw: Any) -> list[PipelineVariable]:
    """The declaration's `variables` (`Variables` in CloudFormation: Name, DefaultValue)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PipelineError("variables: expected a list of {name, defaultValue, description}")
    found: list[PipelineVariable] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise PipelineError(f"variables[{index}].name: required")
        default = item.get("defaultvalue")
        found.append(
            PipelineVariable(
                name=item["name"],
                default=None if default is None else _text(default),
                description=str(item.get("description") or ""),
            )
        )
    return found


def known_variables(pipeline: Pipeline, given: dict[str, str]) -> dict[str, str]:
    """The pipeline variables whose values are known before a start: `given` over the
    declared defaults. PipelineError for a given variable the pipeline does not declare."""
    declared = {variable.name: variable for variable in pipeline.variables}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PipelineError(
            f"--variable {unknown[0]}: the pipeline declares no such variable (it declares: "
            f"{', '.join(declared) or 'none'})"
        )
    defaults = {name: v.default for name, v in declared.items() if v.default is not None}
    return {**defaults, **given}


def pipeline_variables(pipeline: Pipeline, given: dict[str, str]) -> dict[str, str]:
    """The values of the pipeline's variables for one execution: `given` (the start's
    overrides) over the declared defaults. PipelineError, as StartPipelineExecution refuses
    it, for a variable the pipeline does not declare or one with neither value nor default."""
    known_variables(pipeline, given)
    declared = {variable.name: variable for variable in pipeline.variables}
    values: dict[str, str] = {}
    for name, variable in declared.items():
        value = given.get(name, variable.default)
        if value is None:
            raise PipelineError(
                f"variables: {name!r} has no default: give it when starting "
                f"(orchestrator run --variable {name}=VALUE)"
            )
        if not 1 <= len(value) <= 1000:
            raise PipelineError(f"variables: {name!r} must be 1 to 1,000 characters")
        values[name] = value
    return values


def declaration_warnings(pipeline: Pipeline) -> list[str]:
    """What CodePipeline would refuse in this declaration (CreatePipeline/UpdatePipeline), as
    `path: reason` lines: the rehearsal runs it anyway, so say it before AWS does."""
    from orchestrator.local import wire

    found = wire.validate_shape("PipelineName", pipeline.name, "name")
    if not 2 <= len(pipeline.stages) <= MAX_STAGES:
        found.append(f"stages: {len(pipeline.stages)}; a pipeline has 2 to {MAX_STAGES} stages")
    stage_names: set[str] = set()
    for index, (stage, actions) in enumerate(pipeline.stages):
        where = f"stages[{index}]"
        if stage in stage_names:
            found.append(f"{where}.name: another stage is named {stage!r}")
        stage_names.add(stage)
        declaration = {"name": stage, "actions": [_declared(action) for action in actions]}
        found += wire.validate_shape("StageDeclaration", declaration, where)
        if not actions:
            found.append(f"{where}.actions: a stage has at least 1 action")
        if len(actions) > MAX_ACTIONS_PER_STAGE:
            found.append(
                f"{where}.actions: {len(actions)} actions; at most {MAX_ACTIONS_PER_STAGE} a stage"
            )
        names = [action.name for action in actions]
        for name in sorted({name for name in names if names.count(name) > 1}):
            found.append(f"{where}.actions: more than one action is named {name!r}")
    declared = [
        {
            "name": v.name,
            **({"defaultValue": v.default} if v.default is not None else {}),
            **({"description": v.description} if v.description else {}),
        }
        for v in pipeline.variables
    ]
    found += wire.validate_shape("PipelineVariableDeclarationList", declared, "variables")
    if pipeline.pipeline_type is not None:
        found += wire.validate_shape("PipelineType", pipeline.pipeline_type, "pipelineType")
    if pipeline.pipeline_type != "V2":
        kind = pipeline.pipeline_type or "V1 (no pipelineType)"
        if pipeline.variables:
            found.append(f"variables: pipeline-level variables need pipelineType V2, not {kind}")
        if pipeline.execution_mode != "SUPERSEDED":
            found.append(
                f"executionMode: {pipeline.execution_mode} needs pipelineType V2, not {kind}"
            )
    known = {variable.name for variable in pipeline.variables}
    for index, (_, actions) in enumerate(pipeline.stages):
        for a_index, action in enumerate(actions):
            for key, value in action.configuration.items():
                for namespace, name in _VARIABLE.findall(value):
                    if namespace == PIPELINE_VARIABLES and name not in known:
                        found.append(
                            f"stages[{index}].actions[{a_index}].configuration.{key}: "
                            f"#{{variables.{name}}} names no variable of the pipeline"
                        )
    return found


def _declared(action: Action) -> dict[str, Any]:
    """The action as CreatePipeline receives it (its API field names)."""
    category, owner, provider, version = action.type_id
    declared: dict[str, Any] = {
        "name": action.name,
        "actionTypeId": {
            "category": category,
            "owner": owner,
            "provider": provider,
            "version": version,
        },
        "runOrder": action.run_order,
        "configuration": action.configuration,
        "inputArtifacts": [{"name": name} for name in action.input_artifacts],
        "outputArtifacts": [{"name": name} for name in action.output_artifacts],
    }
    if action.namespace is not None:
        declared["namespace"] = action.namespace
    return declared


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
            if namespace == PIPELINE_VARIABLES:
                raise PipelineError(
                    f"unable to resolve variable #{{variables.{variable}}}: the pipeline "
                    f"declares no variable '{variable}'"
                ) from None
            raise PipelineError(
                f"unable to resolve variable #{{{namespace}.{variable}}}: no earlier action "
                f"in namespace '{namespace}' produced '{variable}'"
            ) from None

    return {key: _VARIABLE.sub(substitute, value) for key, value in configuration.items()}
