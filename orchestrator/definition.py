"""The gate definition language v1: inline in the action's UserParameters (a JSON object),
or in a gate file the UserParameters reference (`orchestrator.reference` expands it).

`parse_definition` (UserParameters) and `validate_definition` (a decoded document) return a
validated `GateDefinition` or raise `DefinitionError`, whose lines name the field path and
the reason, e.g. `steps[1].every: invalid duration 'soon'`.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from orchestrator.artifacts_report import OutputArtifacts  # noqa: TC001 - pydantic needs it
from orchestrator.durations import format_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.expressions import placeholders, reads
from orchestrator.steps import KINDS, Duration, Expression, Step, kind_class

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

MAX_GATE_TIMEOUT = 23 * 3600 + 45 * 60
"""Just under CodePipeline's 24-hour action limit, leaving room for the last re-invocation."""

MAX_STEPS = 50
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9@\-_]+")


def parse_step(raw: object, index: int) -> Step:
    """One step of the definition, as the model of its kind; DefinitionError names the path."""
    keys = [key for key in KINDS if isinstance(raw, dict) and key in raw]
    if len(keys) != 1:
        raise DefinitionError(
            [f"steps[{index}]: each step needs exactly one kind key: {', '.join(KINDS)}"]
        )
    try:
        return kind_class(keys[0]).model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError([_format(e, ("steps", index)) for e in exc.errors()]) from None


def _steps(raw: object) -> object:
    """Raw step objects become their kinds' models (validate_definition does this first,
    collecting every step's errors; this covers direct `GateDefinition.model_validate`)."""
    if not isinstance(raw, list):
        return raw
    parsed: list[object] = []
    for index, item in enumerate(raw):
        try:
            parsed.append(item if isinstance(item, Step) else parse_step(item, index))
        except DefinitionError as exc:
            raise ValueError(exc.errors[0]) from None
    return parsed


def _output_names(outputs: dict[str, str]) -> dict[str, str]:
    for name in outputs:
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}: use A-Z a-z 0-9 @ - _")
    return outputs


class GateDefinition(BaseModel):
    """A validated gate: steps in order, outputs to compute at the end, an overall timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: Annotated[list[SerializeAsAny[Step]], BeforeValidator(_steps)] = Field(
        min_length=1, max_length=MAX_STEPS
    )
    outputs: Annotated[dict[str, Expression], AfterValidator(_output_names)] = Field(
        default_factory=dict
    )
    timeout: Duration = MAX_GATE_TIMEOUT
    artifacts: OutputArtifacts = Field(default_factory=dict)
    """Output artifact files, by output artifact name (see orchestrator.artifacts_report)."""

    @model_validator(mode="after")
    def _consistent(self) -> GateDefinition:
        errors: list[str] = []
        if self.timeout > MAX_GATE_TIMEOUT:
            errors.append(
                f"timeout: {format_duration(self.timeout)} exceeds the maximum "
                f"{format_duration(MAX_GATE_TIMEOUT)} (CodePipeline ends actions at 24h)"
            )
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.name in seen:
                errors.append(f"steps[{index}].name: duplicate step name {step.name!r}")
            seen.add(step.name)
            if step.timeout is not None and step.timeout > self.timeout:
                errors.append(
                    f"steps[{index}].timeout: {format_duration(step.timeout)} exceeds the "
                    f"gate's timeout {format_duration(self.timeout)}"
                )
            errors.extend(self._wait_fits(index, step))
            errors.extend(self._step_references(index, step))
        for name, expression in self.outputs.items():
            errors.extend(
                f"outputs.{name}: names step {step_name!r}, {_no_step(self)}"
                for step_name in _named_steps(expression)
                if step_name not in seen and not self._unnamed_invalid_step()
            )
        if errors:
            raise DefinitionError(errors)
        return self

    def step_timeout(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self.timeout

    def _unnamed_invalid_step(self) -> bool:
        return any(
            isinstance(step, _Unparsed) and step.name.startswith("__invalid_step_")
            for step in self.steps
        )

    def _wait_fits(self, index: int, step: Step) -> list[str]:
        """A `wait` as long as its timeout can only time out (the deadline is checked first)."""
        wait = getattr(step, "wait", None) if step.kind == "wait" else None
        if not isinstance(wait, float) or wait < self.step_timeout(step):
            return []
        whose = "the step's timeout" if step.timeout is not None else "the gate's timeout"
        return [
            f"steps[{index}].wait: {format_duration(wait)} is not shorter than {whose} "
            f"{format_duration(self.step_timeout(step))}: the step can only time out"
        ]

    def _step_references(self, index: int, step: Step) -> list[str]:
        """`${steps.X...}` must name a step that finished before this one: the run context
        holds finished steps only, so anything else renders null and fails the step."""
        before = [earlier.name for earlier in self.steps[:index]]
        later = {later.name for later in self.steps[index:]}
        errors: list[str] = []
        raw = step.model_dump(mode="json", by_alias=True, exclude={"name"}, exclude_unset=True)
        for path, expression in _templates(raw, f"steps[{index}]"):
            for name in _named_steps(expression):
                if name in before:
                    continue
                why = (
                    "this step itself"
                    if name == step.name
                    else "a later step"
                    if name in later
                    else None
                )
                if why is None and self._unnamed_invalid_step():
                    continue  # it may be the invalid step's name: that error is reported
                reason = (
                    f"{why}: only steps that finished before it are in the run context"
                    if why
                    else _no_step(self)
                )
                errors.append(f"{path}: ${{{expression}}} names step {name!r}, {reason}")
        return errors


def definition_warnings(definition: GateDefinition) -> list[str]:
    """What is suspicious without being certainly wrong (`orchestrator validate` shows it):
    an `until` or `fail_if` reading a field the kind's document does not have."""
    warnings: list[str] = []
    for index, step in enumerate(definition.steps):
        roots: tuple[str, ...] = getattr(type(step), "document_roots", ())
        for field in ("until", "fail_if"):
            expression = getattr(step, field, None)
            if not roots or not isinstance(expression, str):
                continue
            unknown = sorted({path[0] for path in reads(expression)} - set(roots))
            if unknown:
                warnings.append(
                    f"steps[{index}].{field}: {expression!r} reads "
                    f"{', '.join(unknown)}, which {step.kind}'s document does not have "
                    f"(it has: {', '.join(roots)}); it will be null"
                )
    return warnings


@lru_cache(maxsize=64)
def parse_definition(user_parameters: str | None) -> GateDefinition:
    """Parse and validate an inline definition; raise DefinitionError naming every bad field.

    UserParameters may also reference a definition: `orchestrator.reference` reads both."""
    return validate_definition(decode_user_parameters(user_parameters))


def decode_user_parameters(user_parameters: str | None) -> object:
    """UserParameters as the handler reads them: strict JSON (no BOM, no trailing comma)."""
    if user_parameters is None or not user_parameters.strip():
        raise DefinitionError(["UserParameters: empty; expected a JSON object with 'steps'"])
    try:
        return json.loads(user_parameters)
    except RecursionError:
        raise DefinitionError(["UserParameters: nested too deeply"]) from None
    except ValueError as exc:
        raise DefinitionError([f"UserParameters: not valid JSON ({exc})"]) from None


def validate_definition(raw: object) -> GateDefinition:
    """Validate an already-decoded definition, reporting every bad field at once."""
    if not isinstance(raw, dict):
        raise DefinitionError(["UserParameters: expected a JSON object with 'steps'"])
    data = dict(raw)
    errors: list[str] = []
    if isinstance(raw.get("steps"), list):
        parsed: list[Step] = []
        for index, item in enumerate(raw["steps"]):
            try:
                parsed.append(parse_step(item, index))
            except DefinitionError as exc:
                errors.extend(exc.errors)
                parsed.append(_placeholder(index, item))
        data["steps"] = parsed
    try:
        definition = GateDefinition.model_validate(data)
    except DefinitionError as exc:
        errors.extend(exc.errors)
    except ValidationError as exc:
        errors.extend(_format(error) for error in exc.errors())
    if errors:
        raise DefinitionError(errors)
    return definition


class _Unparsed(Step):
    """Stands in for an invalid step so the rest of the definition is still checked."""

    kind: ClassVar[str] = "invalid"


def _placeholder(index: int, raw: object = None) -> Step:
    """An invalid step, under its own name when it has a usable one (so that references to
    it are not reported as well)."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not (isinstance(name, str) and _STEP_NAME.fullmatch(name)):
        name = f"__invalid_step_{index}"
    return _Unparsed(name=name)


_STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _named_steps(expression: str) -> list[str]:
    """The step names `steps.X` in a JMESPath expression over the run context."""
    return [path[1] for path in reads(expression) if len(path) > 1 and path[0] == "steps"]


def _no_step(definition: GateDefinition) -> str:
    known = ", ".join(step.name for step in definition.steps)
    return f"which the gate does not have (steps: {known})"


def _templates(value: object, path: str) -> list[tuple[str, str]]:
    """Every `${...}` expression inside a step's fields, with the field's path."""
    if isinstance(value, dict):
        return [
            found
            for key, inner in value.items()
            for found in _templates(inner, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [
            found for i, inner in enumerate(value) for found in _templates(inner, f"{path}[{i}]")
        ]
    return [(path, expression) for expression in placeholders(value)]


def _format(error: ErrorDetails, prefix: tuple[str | int, ...] = ()) -> str:
    path = ""
    for part in (*prefix, *error["loc"]):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field missing"
    return f"{path or 'UserParameters'}: {message}"
