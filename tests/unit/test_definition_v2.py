"""The v2 language's mistakes, explained with the field path and the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.definition import MAX_NODES, parse_definition
from orchestrator.exceptions import DefinitionError

WAIT = {"wait": "1m"}


def errors_of(definition: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps(definition))
    return caught.value.errors


def step(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **WAIT, **fields}


def nested(level: int) -> dict[str, Any]:
    if level == 0:
        return step(f"leaf{level}")
    return {"name": f"g{level}", "parallel": [nested(level - 1), step(f"s{level}")]}


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            {"steps": [{"name": "x", "frobnicate": {}}]},
            "steps[0]: each step needs exactly one kind key: wait, http",
        ),
        (
            {"steps": [{"name": "g", "parallel": [step("a"), {"name": "b", "nope": 1}]}]},
            "steps[0].parallel[1]: each step needs exactly one kind key: wait, http",
        ),
        (
            {"steps": [{"name": "g", "parallel": [step("a"), step("a")]}]},
            "steps[0].parallel[1].name: duplicate step name 'a' (also at steps[0].parallel[0])",
        ),
        (
            {"steps": [step("a")], "guards": [{"name": "a", "http": {"url": "http://x"}}]},
            "guards[0].name: duplicate step name 'a' (also at steps[0])",
        ),
        (
            {"steps": [step("a", when="args.tier ==")]},
            "steps[0].when: invalid JMESPath expression 'args.tier =='",
        ),
        (
            {"steps": [step("a")], "guards": [step("g")]},
            "guards[0]: a wait step cannot be a guard: a wait is a timer, not a check",
        ),
        (
            {
                "steps": [step("a")],
                "guards": [{"name": "g", "lambda": {"function": "f"}}],
            },
            "guards[0]: a lambda step cannot be a guard: its invocation is claimed once",
        ),
        (
            {"steps": [{"name": "g", "any": [step("a")]}]},
            "steps[0].any: expected a list of at least 2 branches (with one, write the branch",
        ),
        (
            {"steps": [{"name": "g", "parallel": [step("a"), step("b")], "any": []}]},
            "steps[0]: a group is either parallel, any or (as a branch) steps",
        ),
        (
            {"steps": [{"name": "s", "steps": [step("a")]}]},
            "steps[0]: each step needs exactly one kind key",
        ),
        ({"steps": [nested(4)]}, "steps[0].parallel[0].parallel[0].parallel[0]: groups nest"),
        (
            {
                "steps": [step("a")],
                "guards": [{"name": "g", "http": {"url": "http://x"}, "after": "b"}],
            },
            "guards[0].after: names step 'b', which the gate does not have (steps: a)",
        ),
        (
            {
                "steps": [step("a")],
                "guards": [{"name": "g", "http": {"url": "http://x"}, "timeout": "1m"}],
            },
            "guards[0].timeout: a guard lasts as long as the gate",
        ),
        (
            {
                "steps": [step("a")],
                "guards": [{"name": "g", "alarms": {"names": ["x"], "for": "5m"}}],
            },
            "guards[0].alarms.for: a guard passes when every alarm is OK at the poll",
        ),
        (
            {
                "steps": [step("a")],
                "guards": [{"name": "g", "http": {"url": "http://x"}, "on_violation": "warn"}],
            },
            "guards[0].on_violation: Input should be 'fail' or 'hold'",
        ),
        (
            {
                "steps": [step("a")],
                "on_failure": [{"name": "h", "http": {"url": "http://x"}, "advisory": True}],
            },
            "on_failure[0].advisory: a hook never changes the gate's outcome",
        ),
        (
            {
                "steps": [step("a")],
                "timeout": "23h45m",
                "on_failure": [{"name": "h", "http": {"url": "http://x"}}],
            },
            "timeout: 23h45m plus the on_failure hooks' 10m exceeds the maximum 23h45m",
        ),
        (
            {
                "steps": [
                    {
                        "name": "g",
                        "parallel": [
                            step("a"),
                            {"name": "b", "http": {"url": "http://x/${steps.a.waited_seconds}"}},
                        ],
                    }
                ]
            },
            "steps[0].parallel[1].http.url: ${steps.a.waited_seconds} names step 'a', a step that "
            "runs in parallel with this one",
        ),
        (
            {"steps": [step("a", when="steps.b.ok"), step("b")]},
            "steps[0].when: steps.b.ok names step 'b', a later step",
        ),
    ],
)
def test_v2_mistakes_name_the_field_and_the_reason(
    definition: dict[str, Any], expected: str
) -> None:
    found = errors_of(definition)
    assert any(line.startswith(expected) for line in found), found


def test_the_whole_gate_is_bounded_in_nodes() -> None:
    many = [{"name": f"g{i}", "parallel": [step(f"a{i}"), step(f"b{i}")]} for i in range(35)]
    found = errors_of({"steps": many})
    assert f"steps: 105 steps, groups, guards and hooks in all; at most {MAX_NODES}" in found


def test_a_v2_gate_parses_into_its_tree_and_sequences_see_their_earlier_steps() -> None:
    definition = parse_definition(
        json.dumps(
            {
                "guards": [
                    {"name": "quiet", "alarms": {"prefix": "checkout-"}, "every": "1m"},
                    {"name": "health", "http": {"url": "https://svc/health"},
                     "until": "status == `200`", "on_violation": "hold", "after": "bake"},
                ],
                "steps": [
                    step("bake", wait="30m"),
                    {"name": "checks", "parallel": [
                        {"name": "smoke", "http": {"url": "https://smoke"}},
                        {"name": "canary", "steps": [
                            step("warm", wait="5m"),
                            {"name": "probe",
                             "http": {"url": "https://canary/${steps.warm.waited_seconds}"}},
                        ]},
                    ]},
                    {"name": "signoff", "http": {"url": "https://x"},
                     "when": "args.tier != 'patch'"},
                    {"name": "report", "http": {"url": "https://r"}, "advisory": True},
                ],
                "on_failure": [
                    {"name": "rollback", "lambda": {"function": "rollback"}, "on_cancel": True}
                ],
                "outputs": {"Smoke": "steps.smoke.status"},
            }
        )
    )  # fmt: skip
    assert [n.name for n in definition.nodes()] == [
        "bake", "checks", "smoke", "canary", "warm", "probe", "signoff", "report",
    ]  # fmt: skip
    assert definition.grouped
    assert [s.name for s in definition.all_steps()] == [
        "bake", "smoke", "warm", "probe", "signoff", "report", "quiet", "health", "rollback",
    ]  # fmt: skip
    assert definition.guards[1].on_violation == "hold" and definition.guards[1].after == "bake"
    assert definition.on_failure[0].on_cancel is True
    assert definition.timeout == 23 * 3600 + 35 * 60  # 23h45m, less 10m for the hook
