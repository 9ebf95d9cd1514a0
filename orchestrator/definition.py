"""The gate definition language (v2: groups, guards and hooks; a v1 gate is a v2 gate),
inline in the action's UserParameters (a JSON object),
or in a gate file the UserParameters reference (`orchestrator.reference` expands it).

`parse_definition` (UserParameters) and `validate_definition` (a decoded document) return a
validated `GateDefinition` or raise `DefinitionError`, whose lines name the field path and
the reason, e.g. `steps[1].every: invalid duration 'soon'`.
"""

from __future__ import annotations

import json
import re
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from orchestrator.artifacts_report import OutputArtifacts  # noqa: TC001 - pydantic needs it
from orchestrator.durations import format_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.expressions import placeholders, reads
from orchestrator.steps import KINDS, Duration, Expression, Step, kind_class
from orchestrator.targets import Defaults, apply_defaults
from orchestrator.tree import (
    GROUP_KINDS,
    AnyOf,
    Group,
    Guard,
    Hook,
    Node,
    Sequence,
    leaves,
    walk,
)

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

MAX_GATE_TIMEOUT = 23 * 3600 + 45 * 60
"""Just under CodePipeline's 24-hour action limit, leaving room for the last re-invocation."""
MAX_HOLD = 600.0
"""The longest `hold`: 10 minutes, well inside CodePipeline's 20-minute reply rule and the
function's timeout in template.yaml (which leaves room for the tick after it)."""

MAX_STEPS = 50
"""Top-level steps (and groups) of a gate."""
MAX_NODES = 100
"""Every named thing of a gate: steps, groups, sequences, guards and hooks (each has a state
in the run's item, which must stay well inside DynamoDB's 400 KB)."""
MAX_DEPTH = 3
"""How deep groups nest."""
MAX_GUARDS = 20
MAX_HOOKS = 10
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9@\-_]+")

Path = tuple[str | int, ...]


def parse_step(raw: object, where: int | Path) -> Step:
    """One step of the definition, as the model of its kind; DefinitionError names the path."""
    path: Path = ("steps", where) if isinstance(where, int) else where
    keys = [key for key in KINDS if isinstance(raw, dict) and key in raw]
    if len(keys) != 1:
        groups = " (or a group: parallel, any)" if path[0] == "steps" else ""
        raise DefinitionError(
            [f"{_path(path)}: each step needs exactly one kind key: {', '.join(KINDS)}{groups}"]
        )
    try:
        return kind_class(keys[0]).model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError([_format(e, path) for e in exc.errors()]) from None


def _node(raw: object, path: Path, branch: bool, errors: list[str], level: int = 0) -> Node:
    """A step or a group (or, as a branch, a sequence); errors are collected, and an invalid
    node stands in so that the rest is still checked."""
    if isinstance(raw, dict) and not any(key in raw for key in KINDS):
        found = [key for key in GROUP_KINDS if key in raw]
        if len(found) == 1 and "steps" not in raw:
            return _group(GROUP_KINDS[found[0]], found[0], raw, path, errors, level)
        if branch and not found and "steps" in raw:
            return _group(Sequence, "steps", raw, path, errors, level)
        if len(found) > 1 or (found and "steps" in raw):
            errors.append(f"{_path(path)}: a group is either parallel, any or (as a branch) steps")
            return _placeholder(path, raw)
    try:
        return parse_step(raw, path)
    except DefinitionError as exc:
        if branch and isinstance(raw, dict) and not any(key in raw for key in KINDS):
            errors.append(exc.errors[0].replace(" (or a group: parallel, any)", "") +
                          " (or a group: parallel, any; or a sequence: steps)")  # fmt: skip
        else:
            errors.extend(exc.errors)
        return _placeholder(path, raw)


def _group(
    model: type[Group], key: str, raw: dict[str, Any], path: Path, errors: list[str], level: int
) -> Node:
    children = raw[key]
    where = _path((*path, key))
    least = 1 if model is Sequence else 2
    if level >= MAX_DEPTH:
        errors.append(f"{_path(path)}: groups nest at most {MAX_DEPTH} deep")
        return _placeholder(path, raw)
    if not isinstance(children, list) or len(children) < least:
        what = "steps" if model is Sequence else "branches"
        one = "" if model is Sequence else " (with one, write the branch itself)"
        errors.append(f"{where}: expected a list of at least {least} {what}{one}")
        return _placeholder(path, raw)
    before = len(errors)
    parsed = tuple(
        _node(child, (*path, key, index), model is not Sequence, errors, level + 1)
        for index, child in enumerate(children)
    )
    try:
        group = model.model_validate({**raw, key: parsed})
    except ValidationError as exc:
        errors.extend(_format(e, path) for e in exc.errors())
        return _placeholder(path, raw)
    return group if len(errors) == before else _placeholder(path, raw)


def _steps(raw: object) -> object:
    """Raw steps become their models (validate_definition does this first, collecting every
    error; this covers direct `GateDefinition.model_validate`)."""
    if not isinstance(raw, list) or all(isinstance(item, (Step, Group)) for item in raw):
        return raw
    errors: list[str] = []
    parsed = [
        item if isinstance(item, (Step, Group)) else _node(item, ("steps", index), False, errors)
        for index, item in enumerate(raw)
    ]
    if errors:
        raise ValueError(errors[0])
    return parsed


def _wrapped(model: type[Guard] | type[Hook], section: str, own: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Raw guards or hooks (a step plus a few fields of their own) become their models."""

    def parse(raw: object, index: int, errors: list[str]) -> Guard | Hook | None:
        path: Path = (section, index)
        if not isinstance(raw, dict):
            errors.append(f"{_path(path)}: expected an object (a step)")
            return None
        try:
            step = parse_step({k: v for k, v in raw.items() if k not in own}, path)
        except DefinitionError as exc:
            errors.extend(exc.errors)
            return None
        try:
            return model.model_validate({"step": step, **{k: raw[k] for k in own if k in raw}})
        except ValidationError as exc:
            errors.extend(_format(e, path, strip="step") for e in exc.errors())
            return None

    def before(raw: object) -> object:
        if not isinstance(raw, list) or all(isinstance(item, model) for item in raw):
            return raw
        errors: list[str] = []
        parsed = [
            item if isinstance(item, model) else parse(item, index, errors)
            for index, item in enumerate(raw)
        ]
        if errors:
            raise ValueError(errors[0])
        return parsed

    return parse, before


_parse_guard, _guards = _wrapped(Guard, "guards", ("on_violation", "after"))
_parse_hook, _hooks = _wrapped(Hook, "on_failure", ("on_cancel",))


def _notify(raw: object) -> object:
    """`notify`, as `notices.GateNotify` (imported when a gate has one: it reads secret
    references, an adapter's model)."""
    if raw is None:
        return None
    from orchestrator.notices import GateNotify

    return raw if isinstance(raw, GateNotify) else GateNotify.model_validate(raw)


def _output_names(outputs: dict[str, str]) -> dict[str, str]:
    for name in outputs:
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}: use A-Z a-z 0-9 @ - _")
    return outputs


class GateDefinition(BaseModel):
    """A validated gate: steps (and groups) in order, guards beside them, hooks after a
    failure, outputs to compute at the end, an overall timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: Annotated[list[Any], BeforeValidator(_steps)] = Field(min_length=1, max_length=MAX_STEPS)
    guards: Annotated[list[Guard], BeforeValidator(_guards)] = Field(
        default_factory=list, max_length=MAX_GUARDS
    )
    on_failure: Annotated[list[Hook], BeforeValidator(_hooks)] = Field(
        default_factory=list, max_length=MAX_HOOKS
    )
    outputs: Annotated[dict[str, Expression], AfterValidator(_output_names)] = Field(
        default_factory=dict
    )
    timeout: Duration = MAX_GATE_TIMEOUT
    artifacts: OutputArtifacts = Field(default_factory=dict)
    """Output artifact files, by output artifact name (see orchestrator.artifacts_report)."""
    on_retry: Literal["resume", "restart"] = "resume"
    """What a retry of the pipeline's failed action does to the failed run."""
    notify: Annotated[Any, BeforeValidator(_notify)] = None
    """Where the gate's outcomes are announced (`orchestrator.notices.GateNotify`)."""
    defaults: Defaults | None = None
    """The role, external id and region of every AWS-calling step that names none (copied
    into those steps before they are parsed: `targets.apply_defaults`)."""
    hold: Duration | None = None
    """Opt-in: an invocation whose next poll is due within this long waits for it in-process
    and advances again (up to this long in all) instead of answering at once; reacts
    within `every` rather than CodePipeline's re-invoke delay (tick.py, docs/SCALING.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> GateDefinition:
        places = _places(self.steps)
        errors = self._timeouts() + self._holds(places)
        seen: dict[str, str] = {}
        named = [
            *((node.name, path) for node, path, _ in places),
            *((g.name, _path(("guards", i))) for i, g in enumerate(self.guards)),
            *((h.name, _path(("on_failure", i))) for i, h in enumerate(self.on_failure)),
        ]
        for name, path in named:
            if name in seen:
                errors.append(f"{path}.name: duplicate step name {name!r} (also at {seen[name]})")
            seen.setdefault(name, path)
        if len(named) > MAX_NODES:
            errors.append(
                f"steps: {len(named)} steps, groups, guards and hooks in all; at most {MAX_NODES}"
            )
        tree = {node.name for node, _, _ in places}
        for node, path, before in places:
            if isinstance(node, Step) and node.timeout is not None and node.timeout > self.timeout:
                errors.append(
                    f"{path}.timeout: {format_duration(node.timeout)} exceeds the "
                    f"gate's timeout {format_duration(self.timeout)}"
                )
            if isinstance(node, Step):
                errors.extend(self._wait_fits(path, node))
            errors.extend(self._references(path, node, before, tree))
        for index, guard in enumerate(self.guards):
            errors.extend(self._guard(index, guard, tree))
        for index, hook in enumerate(self.on_failure):
            path = _path(("on_failure", index))
            if hook.step.advisory:
                errors.append(f"{path}.advisory: a hook never changes the gate's outcome")
            errors.extend(self._references(path, hook.step, tree, tree))
        for name, expression in self.outputs.items():
            errors.extend(
                f"outputs.{name}: names step {step_name!r}, {self._no_step()}"
                for step_name in _named_steps(expression)
                if step_name not in tree and not self._unnamed_invalid_step()
            )
        if errors:
            raise DefinitionError(errors)
        return self

    def _holds(self, places: list[tuple[Node, str, set[str]]]) -> list[str]:
        """The gate's and every step's `hold` within MAX_HOLD."""
        holds = [
            ("hold", self.hold),
            *((f"{path}.hold", node.hold) for node, path, _ in places if isinstance(node, Step)),
            *((_path(("guards", i, "hold")), g.step.hold) for i, g in enumerate(self.guards)),
            *(
                (_path(("on_failure", i, "hold")), h.step.hold)
                for i, h in enumerate(self.on_failure)
            ),
        ]
        return [
            f"{path}: {format_duration(hold)} must be more than 0s and at most "
            f"{format_duration(MAX_HOLD)} (an invocation answers within it)"
            for path, hold in holds
            if hold is not None and not 0 < hold <= MAX_HOLD
        ]

    def _timeouts(self) -> list[str]:
        """The gate's timeout, and room for the hooks after it, within CodePipeline's limit
        (without a timeout of its own, a gate with hooks ends that much earlier)."""
        hooks = sum(hook.timeout for hook in self.on_failure)
        if "timeout" not in self.model_fields_set and hooks:
            object.__setattr__(self, "timeout", max(MAX_GATE_TIMEOUT - hooks, 1.0))
        if self.timeout + hooks <= MAX_GATE_TIMEOUT:
            return []
        room = f" plus the on_failure hooks' {format_duration(hooks)}" if hooks else ""
        return [
            f"timeout: {format_duration(self.timeout)}{room} exceeds the maximum "
            f"{format_duration(MAX_GATE_TIMEOUT)} (CodePipeline ends actions at 24h)"
        ]

    @property
    def digest(self) -> str:
        """The sha256 of the validated definition (a retry of a run started with another
        one restarts it)."""
        import hashlib

        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()

    def step_timeout(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self.timeout

    def nodes(self) -> list[Node]:
        """Every step and group, depth first (the order of the run's node states)."""
        return list(walk(self.steps))

    @cached_property
    def templates(self) -> tuple[str, ...]:
        """Every expression of the gate: its steps' `${...}` templates, its outputs and its
        `when`s (computed once per definition: read on every tick; a definition is never
        `model_copy`-ed with changes, which would carry the cached value over)."""
        return (
            *(
                expression
                for step in self.all_steps()
                for expression in placeholders(step.model_dump(mode="json"))
            ),
            *self.outputs.values(),
            *(
                node.when
                for node in (*self.nodes(), *(hook.step for hook in self.on_failure))
                if node.when is not None
            ),
        )

    def all_steps(self) -> list[Step]:
        """Every step of a kind: in the tree, guards and hooks."""
        return [
            *leaves(self.steps),
            *(guard.step for guard in self.guards),
            *(hook.step for hook in self.on_failure),
        ]

    @property
    def grouped(self) -> bool:
        """Whether any step is in a group (else the gate is a plain sequence, as in v1)."""
        return any(isinstance(node, Group) for node in self.steps)

    def _unnamed_invalid_step(self) -> bool:
        return any(
            isinstance(step, _Unparsed) and step.name.startswith("__invalid_step_")
            for step in self.all_steps()
        )

    def _wait_fits(self, path: str, step: Step) -> list[str]:
        """A `wait` as long as its timeout can only time out (the deadline is checked first)."""
        wait = getattr(step, "wait", None) if step.kind == "wait" else None
        if not isinstance(wait, float) or wait < self.step_timeout(step):
            return []
        whose = "the step's timeout" if step.timeout is not None else "the gate's timeout"
        return [
            f"{path}.wait: {format_duration(wait)} is not shorter than {whose} "
            f"{format_duration(self.step_timeout(step))}: the step can only time out"
        ]

    def _guard(self, index: int, guard: Guard, tree: set[str]) -> list[str]:
        path = _path(("guards", index))
        step = guard.step
        errors: list[str] = []
        if step.not_a_guard is not None and not isinstance(step, _Unparsed):
            errors.append(f"{path}: a {step.kind} step cannot be a guard: {step.not_a_guard}")
        for field, why in (
            ("timeout", "a guard lasts as long as the gate"),
            ("when", "a guard is not reached, it runs from the start (or `after`)"),
            ("advisory", "use on_violation: hold to keep a guard from failing the gate"),
            ("max_polls", "a guard polls for as long as the gate runs: it is never inconclusive"),
        ):
            if field in step.model_fields_set:
                errors.append(f"{path}.{field}: {why}")
        if getattr(getattr(step, "alarms", None), "for_", None) is not None:
            errors.append(
                f"{path}.alarms.for: a guard passes when every alarm is OK at the poll; "
                "`for` is for steps"
            )
        if guard.after is not None and guard.after not in tree:
            errors.append(f"{path}.after: names step {guard.after!r}, {self._no_step()}")
        errors.extend(self._references(path, step, tree, tree))
        return errors

    def _references(self, path: str, step: Node, before: set[str], tree: set[str]) -> list[str]:
        """`${steps.X...}` (and `when`) must name a step that finished before this one: the
        run context holds finished steps only, so anything else renders null."""
        errors: list[str] = []
        found: list[tuple[str, str, str]] = []
        if step.when is not None:
            found.extend((f"{path}.when", step.when, name) for name in _named_steps(step.when))
        if isinstance(step, Step):
            raw = step.model_dump(
                mode="json", by_alias=True, exclude={"name", "when"}, exclude_unset=True
            )
            found.extend(
                (where, f"${{{expression}}}", name)
                for where, expression in _templates(raw, path)
                for name in _named_steps(expression)
            )
        for where, expression, name in found:
            if name in before:
                continue
            if name == step.name:
                why = "this step itself"
            elif name in tree:
                why = self._relation(step.name, name)
            elif self._unnamed_invalid_step():
                continue  # it may be the invalid step's name: that error is reported
            else:
                errors.append(f"{where}: {expression} names step {name!r}, {self._no_step()}")
                continue
            errors.append(
                f"{where}: {expression} names step {name!r}, {why}: only steps that "
                "finished before it are in the run context"
            )
        return errors

    def _relation(self, name: str, other: str) -> str:
        """What `other` is to `name`, neither finished before the other."""
        places = {node.name: (node, before) for node, _, before in _places(self.steps)}
        if name in places[other][1]:
            return "a later step"
        if any(inner.name == name for inner in walk([places[other][0]])):
            return "a group this step is in"
        return "a step that runs in parallel with this one"

    def _no_step(self) -> str:
        known = ", ".join(node.name for node in self.nodes())
        return f"which the gate does not have (steps: {known})"


def _places(nodes: list[Any]) -> list[tuple[Node, str, set[str]]]:
    """Every node with its path and the names of the nodes certain to have ended before it
    starts (earlier siblings in a sequence, and theirs; never a parallel sibling)."""
    found: list[tuple[Node, str, set[str]]] = []

    def visit(children: tuple[Node, ...] | list[Node], prefix: Path, before: set[str]) -> None:
        sequential = not prefix or prefix[-1] == "steps"
        done = set(before)
        for index, node in enumerate(children):
            path = (*prefix, index) if prefix else ("steps", index)
            found.append((node, _path(path), set(done)))
            if isinstance(node, Group):
                key = "any" if isinstance(node, AnyOf) else node.kind
                key = "steps" if isinstance(node, Sequence) else key
                visit(node.children, (*path, key), set(done))
            if sequential:
                done |= {inner.name for inner in walk([node])}

    visit(nodes, (), set())
    return found


def definition_warnings(definition: GateDefinition) -> list[str]:
    """What is suspicious without being certainly wrong (`orchestrator validate` shows it):
    an `until` or `fail_if` reading a field the kind's document does not have."""
    warnings: list[str] = []
    placed = [
        *((node, path) for node, path, _ in _places(definition.steps) if isinstance(node, Step)),
        *((g.step, _path(("guards", i))) for i, g in enumerate(definition.guards)),
        *((h.step, _path(("on_failure", i))) for i, h in enumerate(definition.on_failure)),
    ]
    for step, path in placed:
        roots: tuple[str, ...] = getattr(type(step), "document_roots", ())
        for field in ("until", "fail_if"):
            expression = getattr(step, field, None)
            if not roots or not isinstance(expression, str):
                continue
            unknown = sorted({part[0] for part in reads(expression)} - set(roots))
            if unknown:
                warnings.append(
                    f"{path}.{field}: {expression!r} reads "
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
    if "$schema" in raw:  # names the JSON Schema for editors (`orchestrator schema`)
        raw = {key: value for key, value in raw.items() if key != "$schema"}
    raw = apply_defaults(raw)
    data = dict(raw)
    errors: list[str] = []
    if isinstance(raw.get("steps"), list):
        data["steps"] = [
            _node(item, ("steps", index), False, errors) for index, item in enumerate(raw["steps"])
        ]
    for key, parse in (("guards", _parse_guard), ("on_failure", _parse_hook)):
        if isinstance(raw.get(key), list):
            found = [parse(item, index, errors) for index, item in enumerate(raw[key])]
            data[key] = [item for item in found if item is not None]
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


def _placeholder(path: Path, raw: object = None) -> Step:
    """An invalid step, under its own name when it has a usable one (so that references to
    it are not reported as well)."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not (isinstance(name, str) and _STEP_NAME.fullmatch(name)):
        name = "__invalid_step_" + "_".join(str(part) for part in path[1:])
    return _Unparsed(name=name)


_STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _named_steps(expression: str) -> list[str]:
    """The step names `steps.X` in a JMESPath expression over the run context."""
    return [path[1] for path in reads(expression) if len(path) > 1 and path[0] == "steps"]


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


def _path(parts: Path) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _format(error: ErrorDetails, prefix: Path = (), strip: str | None = None) -> str:
    loc = tuple(error["loc"])
    if strip is not None and loc[:1] == (strip,):
        loc = loc[1:]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field missing"
    return f"{_path((*prefix, *loc)) or 'UserParameters'}: {message}"
