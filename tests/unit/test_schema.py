"""The gate language's JSON Schema (orchestrator/cli/schema.py): current in schema/, valid
draft 2020-12, accepting every gate of the docs and examples, and refusing what the parser
refuses (the shapes; the parser alone checks names' uniqueness, references and sums)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.cli.schema import SCHEMA_FILE, gate_schema, render_schema
from orchestrator.definition import parse_definition, validate_definition
from orchestrator.exceptions import DefinitionError
from orchestrator.reference import expand

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = gate_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_checked_in_schema_is_current() -> None:
    """Regenerate with `orchestrator schema -o schema/gate.schema.json`."""
    assert (ROOT / SCHEMA_FILE).read_text(encoding="utf-8") == render_schema()


def doc_gates() -> list[tuple[str, dict[str, Any]]]:
    """Every json block of docs/*.md and README.md that is a whole gate (it has "steps")."""
    found = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for index, block in enumerate(re.findall(r"```json\n(.*?)```", doc.read_text(), re.S)):
            try:
                gate = json.loads(block)
            except ValueError:
                continue
            if isinstance(gate, dict) and "steps" in gate:
                found.append((f"{doc.name}#{index}", gate))
    return found


def example_gates() -> list[tuple[str, dict[str, Any]]]:
    """examples/*gate*.json and the gate files under examples/gates/."""
    found = [
        (path.name, json.loads(path.read_text()))
        for path in sorted((ROOT / "examples").glob("*gate*.json"))
    ]
    found += [
        (f"gates/{path.name}", yaml.safe_load(path.read_text()))
        for path in sorted((ROOT / "examples" / "gates").glob("*.y*ml"))
    ]
    return found


def test_there_are_gates_to_check() -> None:
    assert len(doc_gates()) >= 5
    assert len(example_gates()) >= 3


@pytest.mark.parametrize(("where", "gate"), doc_gates() + example_gates())
def test_every_gate_in_docs_and_examples_validates(
    validator: jsonschema.Draft202012Validator, where: str, gate: dict[str, Any]
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(gate)]
    assert errors == [], where


def _both_refuse(validator: jsonschema.Draft202012Validator, gate: dict[str, Any]) -> None:
    assert not validator.is_valid(gate)
    with pytest.raises(DefinitionError):
        validate_definition(gate)


WAIT = {"name": "bake", "wait": "10m"}
ALARMS = {"name": "quiet", "alarms": {"prefix": "app-"}}


@pytest.mark.parametrize(
    "gate",
    [
        {"steps": []},
        {"steps": [{"name": "x"}]},  # no kind
        {"steps": [{"name": "x", "wait": "1m", "alarms": {"prefix": "a"}}]},  # two kinds
        {"steps": [{"name": "x", "teleport": {}}]},
        {"steps": [{"name": "x", "wait": "soon"}]},
        {"steps": [{"name": "x", "wait": 0}]},
        {"steps": [{"name": "x", "wait": True}]},
        {"steps": [{"name": "has space", "wait": "1m"}]},
        {"steps": [{"name": "x", "wait": "1m", "color": "red"}]},
        {"steps": [{"name": "g", "parallel": [WAIT]}]},  # one branch
        {"steps": [{"name": "g", "any": "nope"}]},
        {"steps": [{"name": "seq", "steps": [WAIT]}]},  # a sequence is a branch only
        {"steps": [{"name": "g", "parallel": [WAIT, ALARMS], "any": [WAIT, ALARMS]}]},
        {"steps": [WAIT], "guards": [{"name": "w", "wait": "1m"}]},  # wait is not a guard
        {"steps": [WAIT], "guards": [{**ALARMS, "on_violation": "shrug"}]},
        {"steps": [WAIT], "on_failure": [{**ALARMS, "on_violation": "hold"}]},
        {"steps": [WAIT], "timeout": "forever"},
        {"steps": [WAIT], "surprise": 1},
        {"steps": [{"name": "x", "lock": 7}]},
        {"steps": [{**ALARMS, "successes": 0}]},
    ],
)
def test_what_the_parser_refuses_the_schema_refuses(
    validator: jsonschema.Draft202012Validator, gate: dict[str, Any]
) -> None:
    _both_refuse(validator, gate)


@pytest.mark.parametrize(
    "gate",
    [
        {"steps": [{"name": "x", "wait": 90}]},
        {"steps": [{"name": "x", "wait": "PT1H30M"}, {"name": "y", "wait": "1h30m"}]},
        {"steps": [{"name": "x", "wait": "1.5h"}], "timeout": 7200},
        {"steps": [{"name": "x", "lock": "prod-eu"}, {"name": "y", "unlock": "prod-eu"}]},
        {"steps": [{"name": "x", "lock": {"name": "prod-eu", "mode": "latest"}}]},
        {"steps": [{"name": "w", "window": {"allow": ["Mon-Fri 09:00-16:00"]}}]},
        {"steps": [{"name": "w", "window": {"cron": "cron(0 9 ? * MON-FRI *)"}}]},
        {"steps": [{"name": "w", "window": {"cron": ["cron(0 9 ? * MON-FRI *)"]}}]},
        {
            "$schema": "../schema/gate.schema.json",
            "steps": [
                {
                    "name": "outer",
                    "any": [
                        {"name": "seq", "steps": [WAIT, {"name": "p", "parallel": [
                            {"name": "a", "wait": "1m"}, {"name": "b", "wait": "2m"}]}]},
                        ALARMS,
                    ],
                }
            ],
            "guards": [{"name": "g", "alarms": {"prefix": "x-"}, "on_violation": "hold"}],
            "on_failure": [{"name": "tell", "wait": "1s", "on_cancel": True}],
        },
    ],
)  # fmt: skip
def test_what_the_parser_accepts_the_schema_accepts(
    validator: jsonschema.Draft202012Validator, gate: dict[str, Any]
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(gate)]
    assert errors == []
    validate_definition(gate)


def test_a_gate_file_with_params_and_args_validates(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """`${args.NAME}` may stand where a duration, a number or a boolean goes."""
    gate = {
        "$schema": "../schema/gate.schema.json",
        "params": {"bake": {"default": "10m"}, "n": {"default": "3"}},
        "steps": [
            {"name": "bake", "wait": "${args.bake}"},
            {**ALARMS, "successes": "${args.n}", "every": "1m"},
        ],
    }
    assert validator.is_valid(gate)
    validate_definition(expand(gate, {}, "gate.json")[0])


def test_the_definition_ignores_a_top_level_schema_key() -> None:
    inline = {"$schema": "https://example.com/gate.schema.json", "steps": [WAIT]}
    assert parse_definition(json.dumps(inline)).steps[0].name == "bake"
    nested = {"steps": [{**WAIT, "$schema": "x"}]}  # only at the top
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.\$schema: unknown field"):
        validate_definition(nested)


def test_every_kind_and_group_is_in_the_schema() -> None:
    from orchestrator.steps import KINDS

    schema = gate_schema()
    kinds = {
        key
        for ref in schema["$defs"]["Step"]["oneOf"]
        for key in schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]["required"]
        if key != "name"
    }
    assert kinds == set(KINDS)
    assert schema["$defs"]["Parallel"]["properties"]["parallel"]["items"] == {
        "$ref": "#/$defs/Branch"
    }
