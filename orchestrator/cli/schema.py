"""The JSON Schema of the gate language, generated from the definition's models (tooling:
`orchestrator schema` prints it; schema/gate.schema.json is its checked-in copy, which
editors use to complete and check gate files).

pydantic's `model_json_schema` gives each step kind's fields; what pydantic cannot see is
written here, from the same constants the parser uses:

- a steps element is one of the kinds (`oneOf`, told apart by the kind key each requires;
  every kind forbids other keys) or a group: `{"name", "parallel": [BRANCH...]}` or
  `{"name", "any": [BRANCH...]}`; a BRANCH is also allowed to be a sequence
  `{"name", "steps": [NODE...]}` (recursive `$defs`: Node, Branch);
- a guard is a step of a kind that can be one, plus `on_violation` and `after`; a hook
  (`on_failure`) is a step of any kind plus `on_cancel`;
- a duration is a string such as '30s', '1h30m', 'PT1H', or a positive number of seconds;
- the shorthands the kinds accept (`"lock": "prod"`, a `cron` string for a list);
- in a gate file, `params` and `${args.NAME}` in any value (filled before validation).

What the schema does not express (the parser still checks it, and `orchestrator validate`
says so): unique names, how deep groups nest, references between steps, expressions'
syntax, `${...}` templates' targets, the timeouts' sums.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from orchestrator.definition import MAX_GUARDS, MAX_HOOKS, MAX_STEPS, GateDefinition
from orchestrator.steps import KINDS, kind_class
from orchestrator.tree import AnyOf, Parallel, Sequence

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic_core import core_schema

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "schema/gate.schema.json"
"""Where the repository keeps the generated schema (tests check it is current)."""

_REF = "#/$defs/{model}"
_MARK = "x-orchestrator-def"
"""Stands for a `$ref` to one of the definitions written here (pydantic resolves every
`$ref` it meets while generating, and knows only its own)."""
_ARG = r"\$\{\s*args\.[A-Za-z0-9_\-]+\s*\}"
ARG_TEMPLATE = {
    "type": "string",
    "pattern": _ARG,
    "description": "In a gate file: filled from `args` before the gate is validated.",
}
NAME = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,64}$",
    "description": "Unique in the gate; `steps.NAME` in expressions.",
}
DURATION = {
    "description": "A duration: '30s', '10m', '1h30m', '2d', '500ms', ISO 8601 'PT1H30M', or "
    "a positive number of seconds.",
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {
            "type": "string",
            "pattern": r"^\s*(([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w|MS|S|M|H|D|W))+|[Pp]"
            r"([0-9]+(\.[0-9]+)?[Ww])?([0-9]+(\.[0-9]+)?[Dd])?"
            r"([Tt]([0-9]+(\.[0-9]+)?[Hh])?([0-9]+(\.[0-9]+)?[Mm])?([0-9]+(\.[0-9]+)?[Ss])?)?)\s*$",
        },
        {"$ref": "#/$defs/ArgTemplate"},
    ],
}


def _one_or_list(inner: dict[str, Any]) -> dict[str, Any]:
    """`"cron": "0 9 * * *"` is `"cron": ["0 9 * * *"]`."""
    items = inner.get("items", {})
    return {"anyOf": [items, inner]}


def _string_or_object(inner: dict[str, Any]) -> dict[str, Any]:
    """`"lock": "prod-eu"` is `"lock": {"name": "prod-eu"}`."""
    return {"anyOf": [{"type": "string", "minLength": 1}, inner]}


def _as_is(inner: dict[str, Any]) -> dict[str, Any]:
    return inner


# The definition's BeforeValidators, by "module:function": what input each accepts beyond
# its field's type. A new BeforeValidator must be listed (the generator refuses an unknown
# one, so the schema cannot silently be stricter or looser than the parser).
_BEFORE = {
    "orchestrator.steps.lock:_shorthand": _string_or_object,
    "orchestrator.steps.window:_one_or_many": _one_or_list,
    "orchestrator.steps.approval:_count": _as_is,
}
_DURATION = "orchestrator.steps._base:_duration"
_NOTIFY = "orchestrator.definition:_notify"
_REPLACED = {  # GateDefinition's own, replaced below with the recursive shapes
    "orchestrator.definition:_steps",
    "orchestrator.definition:parse",
    "orchestrator.definition:before",
}


class _Generator(GenerateJsonSchema):
    """pydantic's generator, knowing the definition's BeforeValidators and durations, with
    `${args.NAME}` allowed for numbers and booleans (a gate file's args are strings)."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> Any:
        function = schema["function"]["function"]
        key = f"{function.__module__}:{function.__name__}"
        if key == _DURATION:
            return {_MARK: "Duration"}
        if key in _REPLACED:
            return {}
        if key == _NOTIFY:  # a lazily imported model (it reads secret references)
            return {"anyOf": [{"$ref": _REF.format(model="GateNotify")}, {"type": "null"}]}
        if key not in _BEFORE:
            raise TypeError(f"the schema does not know what {key} accepts: list it in _BEFORE")
        return _BEFORE[key](super().function_before_schema(schema))

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def int_schema(self, schema: core_schema.IntSchema) -> Any:
        return {"anyOf": [super().int_schema(schema), {_MARK: "ArgTemplate"}]}

    def float_schema(self, schema: core_schema.FloatSchema) -> Any:
        return {"anyOf": [super().float_schema(schema), {_MARK: "ArgTemplate"}]}

    def bool_schema(self, schema: core_schema.BoolSchema) -> Any:
        return {"anyOf": [super().bool_schema(schema), {_MARK: "ArgTemplate"}]}


def _kinds() -> dict[str, type[BaseModel]]:
    return {kind: kind_class(kind) for kind in KINDS}


def gate_schema() -> dict[str, Any]:
    """The gate language's JSON Schema (draft 2020-12), as a dict."""
    kinds = _kinds()
    from orchestrator.notices import GateNotify

    models: list[type[BaseModel]] = [
        GateDefinition,
        Parallel,
        AnyOf,
        Sequence,
        GateNotify,
        *kinds.values(),
    ]
    found, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=_REF,
        schema_generator=_Generator,
    )
    defs: dict[str, Any] = top["$defs"]
    names = {model: found[(model, "validation")]["$ref"].rsplit("/", 1)[1] for model in models}
    for model in models:
        if model not in (GateDefinition, GateNotify):
            defs[names[model]]["properties"]["name"] = NAME
    defs["Duration"] = DURATION
    defs["ArgTemplate"] = ARG_TEMPLATE
    _strip_titles(defs)
    defs = _resolve_marks(defs)

    step_refs = {kind: {"$ref": f"#/$defs/{names[model]}"} for kind, model in kinds.items()}
    defs["Step"] = {
        "description": "A step: exactly one kind key (" + ", ".join(KINDS) + ").",
        "oneOf": list(step_refs.values()),
    }
    defs["Node"] = {
        "description": "A step, or a group of branches run at once (parallel, any).",
        "oneOf": [
            {"$ref": "#/$defs/Step"},
            {"$ref": f"#/$defs/{names[Parallel]}"},
            {"$ref": f"#/$defs/{names[AnyOf]}"},
        ],
    }
    defs["Branch"] = {
        "description": "A branch of a group: a step, a group, or a sequence of steps.",
        "oneOf": [{"$ref": "#/$defs/Node"}, {"$ref": f"#/$defs/{names[Sequence]}"}],
    }
    for model, key, item in ((Parallel, "parallel", "Branch"), (AnyOf, "any", "Branch")):
        defs[names[model]]["properties"][key]["items"] = {"$ref": f"#/$defs/{item}"}
    defs[names[Sequence]]["properties"]["steps"]["items"] = {"$ref": "#/$defs/Node"}

    guard_extra = {
        "on_violation": {
            "enum": ["fail", "hold"],
            "default": "fail",
            "description": "A violation fails the gate, or holds it until the guard passes.",
        },
        "after": {"type": "string", "description": "Start polling once this step is done."},
    }
    hook_extra = {
        "on_cancel": {
            "type": "boolean",
            "default": False,
            "description": "Run after a cancelled gate too.",
        }
    }
    guards, hooks = [], []
    for kind, model in kinds.items():
        name = names[model]
        if getattr(model, "not_a_guard", None) is None:
            defs[f"Guard_{name}"] = _with_fields(defs[name], guard_extra)
            guards.append({"$ref": f"#/$defs/Guard_{name}"})
        defs[f"Hook_{name}"] = _with_fields(defs[name], hook_extra)
        hooks.append({"$ref": f"#/$defs/Hook_{name}"})
        del kind
    defs["Guard"] = {
        "description": "A check re-polled for the whole gate: a step of a kind that can be "
        "a guard, with on_violation and after.",
        "oneOf": guards,
    }
    defs["Hook"] = {
        "description": "A step run once after the gate failed, with on_cancel.",
        "oneOf": hooks,
    }

    gate = defs.pop(names[GateDefinition])
    properties = gate["properties"]
    properties["steps"] = {
        "type": "array",
        "description": "The steps (and groups), in order.",
        "items": {"$ref": "#/$defs/Node"},
        "minItems": 1,
        "maxItems": MAX_STEPS,
    }
    properties["guards"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/Guard"},
        "maxItems": MAX_GUARDS,
    }
    properties["on_failure"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/Hook"},
        "maxItems": MAX_HOOKS,
    }
    properties["$schema"] = {"type": "string", "description": "This schema (editors read it)."}
    properties["params"] = {
        "type": "object",
        "description": "A gate file's parameters, filled from the reference's args "
        "(docs/REFERENCES.md).",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "required": {"type": "boolean"},
                "default": {"type": "string"},
                "description": {"type": "string"},
            },
            "additionalProperties": False,
        },
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "orchestrator gate",
        "description": "A gate of the orchestrator: steps, guards, on_failure hooks, outputs "
        "and a timeout (docs/STEPS.md). Generated by `orchestrator schema`.",
        **{key: value for key, value in gate.items() if key not in ("title", "description")},
        "$defs": dict(sorted(defs.items())),
    }


def _with_fields(step: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(step)
    found["properties"] = {**found["properties"], **extra}
    return found


def _resolve_marks(value: Any) -> Any:
    if isinstance(value, dict):
        found = {key: _resolve_marks(inner) for key, inner in value.items() if key != _MARK}
        if _MARK in value:
            found = {"$ref": f"#/$defs/{value[_MARK]}", **found}
        if found.get("type") == "object" and "maxLength" in found:  # a dict's max_length
            found["maxProperties"] = found.pop("maxLength")
        return found
    if isinstance(value, list):
        return [_resolve_marks(inner) for inner in value]
    return value


def _strip_titles(value: Any) -> None:
    """pydantic's class-name titles say nothing to a reader of the schema."""
    if isinstance(value, dict):
        if isinstance(value.get("title"), str) and "properties" in value:
            del value["title"]
        for inner in value.values():
            _strip_titles(inner)
    elif isinstance(value, list):
        for inner in value:
            _strip_titles(inner)


def render_schema() -> str:
    """The schema as schema/gate.schema.json holds it (stable key order, a final newline)."""
    return json.dumps(gate_schema(), indent=2, ensure_ascii=False) + "\n"
