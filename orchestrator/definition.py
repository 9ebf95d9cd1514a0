"""The gate definition language v1, read from the action's UserParameters (a JSON object).

`parse_definition` returns a validated `GateDefinition` or raises `DefinitionError` whose
lines name the field path and the reason, e.g. `steps[1].every: invalid duration 'soon'`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from orchestrator.artifacts_report import OutputArtifacts  # noqa: TC001 - pydantic needs it
from orchestrator.durations import format_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.steps import KINDS, Duration, Expression, Step

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

MAX_GATE_TIMEOUT = 23 * 3600 + 45 * 60
"""Just under CodePipeline's 24-hour action limit, leaving room for the last re-invocation."""

MAX_STEPS = 50
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9@\-_]+")


def _kind_of(raw: Any) -> str | None:
    if isinstance(raw, Step):
        return raw.kind
    if not isinstance(raw, dict):
        return None
    present = [key for key in KINDS if key in raw]
    return present[0] if len(present) == 1 else None


if TYPE_CHECKING:
    StepSpec = Step
else:
    # A tagged union of every registered kind; the tag is the kind key the step carries.
    StepSpec = Annotated[
        Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in KINDS.items())],  # noqa: UP007
        Discriminator(
            _kind_of,
            custom_error_type="step_kind",
            custom_error_message=f"each step needs exactly one kind key: {', '.join(KINDS)}",
        ),
    ]


def _output_names(outputs: dict[str, str]) -> dict[str, str]:
    for name in outputs:
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}: use A-Z a-z 0-9 @ - _")
    return outputs


class GateDefinition(BaseModel):
    """A validated gate: steps in order, outputs to compute at the end, an overall timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
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
        if errors:
            raise DefinitionError(errors)
        return self

    def step_timeout(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self.timeout


def parse_definition(user_parameters: str | None) -> GateDefinition:
    """Parse and validate UserParameters; raise DefinitionError naming every bad field."""
    if user_parameters is None or not user_parameters.strip():
        raise DefinitionError(["UserParameters: empty; expected a JSON object with 'steps'"])
    try:
        raw = json.loads(user_parameters)
    except ValueError as exc:
        raise DefinitionError([f"UserParameters: not valid JSON ({exc})"]) from None
    return validate_definition(raw)


def validate_definition(raw: object) -> GateDefinition:
    """Validate an already-decoded definition."""
    if not isinstance(raw, dict):
        raise DefinitionError(["UserParameters: expected a JSON object with 'steps'"])
    try:
        return GateDefinition.model_validate(raw)
    except DefinitionError:
        raise
    except ValidationError as exc:
        raise DefinitionError([_format(error) for error in exc.errors()]) from None


def _format(error: ErrorDetails) -> str:
    loc = list(error["loc"])
    # A tagged union puts the kind's tag after the step index: drop it from the path.
    if len(loc) > 2 and loc[0] == "steps" and isinstance(loc[1], int) and loc[2] in KINDS:
        del loc[2]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field missing"
    return f"{path or 'UserParameters'}: {message}"
