from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.definition import MAX_GATE_TIMEOUT, parse_definition
from orchestrator.exceptions import DefinitionError
from orchestrator.steps.http import HttpStep
from orchestrator.steps.wait import WaitStep

EXAMPLE: dict[str, Any] = {
    "steps": [
        {"name": "bake", "wait": "10m"},
        {
            "name": "change",
            "http": {
                "url": "https://itsm.example.com/api/change/42",
                "method": "GET",
                "headers": {"Accept": "application/json"},
            },
            "until": "status == `200` && body.state == 'approved'",
            "fail_if": "body.state == 'rejected'",
            "every": "30s",
            "timeout": "8h",
        },
    ],
    "outputs": {"ChangeState": "steps.change.body.state", "ChangeId": "steps.change.body.id"},
    "timeout": "23h",
}


def errors_of(definition: object) -> list[str]:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return caught.value.errors


def test_the_issue_example_parses() -> None:
    gate = parse_definition(json.dumps(EXAMPLE))
    bake, change = gate.steps
    assert isinstance(bake, WaitStep) and bake.wait == 600
    assert isinstance(change, HttpStep) and change.interval == 30 and change.timeout == 8 * 3600
    assert gate.timeout == 23 * 3600
    assert gate.outputs["ChangeId"] == "steps.change.body.id"


def test_defaults() -> None:
    gate = parse_definition('{"steps": [{"name": "h", "http": {"url": "http://x"}}]}')
    assert gate.timeout == MAX_GATE_TIMEOUT < 24 * 3600
    assert gate.steps[0].interval == 30
    assert gate.step_timeout(gate.steps[0]) == MAX_GATE_TIMEOUT


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("not json", "UserParameters: not valid JSON"),
        ("", "UserParameters: empty"),
        ("[1]", "UserParameters: expected a JSON object"),
        ({"steps": []}, "steps: List should have at least 1 item"),
        ({"steps": [{"name": "a", "wait": "1m"}] * 51}, "steps: List should have at most 50"),
        (
            {
                "steps": [
                    {"name": "a", "wait": "1m"},
                    {"name": "b", "http": {"url": "http://x"}, "every": "soon"},
                ]
            },
            "steps[1].every: invalid duration 'soon'",
        ),
        ({"steps": [{"name": "a"}]}, "steps[0]: each step needs exactly one kind key"),
        (
            {"steps": [{"name": "a", "wait": "1m", "http": {"url": "http://x"}}]},
            "steps[0]: each step needs exactly one kind key",
        ),
        ({"steps": [{"name": "a b", "wait": "1m"}]}, "steps[0].name: invalid step name 'a b'"),
        ({"steps": [{"name": "a", "wait": "1m", "colour": "red"}]}, "steps[0].colour: unknown"),
        ({"steps": [{"wait": "1m"}]}, "steps[0].name: required field missing"),
        ({"steps": [{"name": "a", "http": {"url": "ftp://x"}}]}, "steps[0].http.url: invalid URL"),
        (
            {"steps": [{"name": "a", "http": {"url": "http://x"}, "until": "status ==="}]},
            "steps[0].until: invalid JMESPath expression",
        ),
        (
            {"steps": [{"name": "a", "wait": "1m"}], "outputs": {"bad name": "run.id"}},
            "outputs: invalid output name 'bad name'",
        ),
        (
            {"steps": [{"name": "a", "wait": "1m"}, {"name": "a", "wait": "2m"}]},
            "steps[1].name: duplicate step name 'a'",
        ),
        (
            {"steps": [{"name": "a", "wait": "1m"}], "timeout": "25h"},
            "timeout: 1d1h exceeds the maximum 23h45m",
        ),
        (
            {"steps": [{"name": "a", "wait": "1m", "timeout": "9h"}], "timeout": "8h"},
            "steps[0].timeout: 9h exceeds the gate's timeout 8h",
        ),
        ({"steps": [{"name": "a", "wait": "-5s"}]}, "steps[0].wait: invalid duration '-5s'"),
    ],
)
def test_errors_name_the_field_and_the_reason(definition: object, expected: str) -> None:
    assert any(line.startswith(expected) for line in errors_of(definition)), errors_of(definition)


def test_every_error_is_reported_at_once() -> None:
    lines = errors_of({"steps": [{"name": "a", "wait": "x"}, {"name": "b", "every": "1s"}]})
    assert len(lines) == 2
    assert lines[0].startswith("steps[0].wait") and lines[1].startswith("steps[1]:")


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            {"steps": [{"name": "bake", "wait": "1h", "timeout": "1h"}]},
            "steps[0].wait: 1h is not shorter than the step's timeout 1h: the step can only "
            "time out",
        ),
        (
            {"steps": [{"name": "bake", "wait": "2h"}], "timeout": "1h"},
            "steps[0].wait: 2h is not shorter than the gate's timeout 1h",
        ),
        (
            {
                "steps": [
                    {"name": "a", "http": {"url": "https://x/${steps.b.body.id}"}},
                    {"name": "b", "wait": "1m"},
                ]
            },
            "steps[0].http.url: ${steps.b.body.id} names step 'b', a later step: only steps "
            "that finished before it are in the run context",
        ),
        (
            {"steps": [{"name": "a", "http": {"url": "https://x/${steps.a.status}"}}]},
            "steps[0].http.url: ${steps.a.status} names step 'a', this step itself",
        ),
        (
            {
                "steps": [
                    {"name": "a", "wait": "1m"},
                    {"name": "b", "lambda": {"function": "f", "payload": {"x": "${steps.c}"}}},
                ]
            },
            "steps[1].lambda.payload.x: ${steps.c} names step 'c', which the gate does not "
            "have (steps: a, b)",
        ),
        (
            {"steps": [{"name": "a", "wait": "1m"}], "outputs": {"Id": "steps.chnage.body.id"}},
            "outputs.Id: names step 'chnage', which the gate does not have (steps: a)",
        ),
    ],
)
def test_gates_that_cannot_succeed_or_refer_to_nothing_are_refused(
    definition: object, expected: str
) -> None:
    assert any(line.startswith(expected) for line in errors_of(definition)), errors_of(definition)


def test_references_to_earlier_steps_and_shorter_waits_are_accepted() -> None:
    definition = parse_definition(
        json.dumps(
            {
                "steps": [
                    {"name": "bake", "wait": "59m", "timeout": "1h"},
                    {"name": "b", "http": {"url": "https://x/${steps.bake.waited_seconds}"}},
                ],
                "outputs": {"Waited": "steps.bake.waited_seconds || `0`", "Run": "run.id"},
                "timeout": "2h",
            }
        )
    )
    assert [step.name for step in definition.steps] == ["bake", "b"]


def test_a_reference_to_an_invalid_step_is_not_reported_twice() -> None:
    lines = errors_of(
        {
            "steps": [
                {"name": "a", "wait": "soon"},
                {"name": "b", "http": {"url": "https://x/${steps.a.waited_seconds}"}},
            ],
            "outputs": {"A": "steps.a.waited_seconds"},
        }
    )
    assert lines == [
        "steps[0].wait: invalid duration 'soon' (use e.g. '30s', '10m', '1h30m', 'PT1H')"
    ]


def test_until_reading_what_the_document_lacks_is_a_warning_naming_the_roots() -> None:
    from orchestrator.definition import definition_warnings

    definition = parse_definition(
        json.dumps(
            {
                "steps": [
                    {"name": "a", "http": {"url": "http://x"}, "until": "bodyy.state == 'ok'"},
                    {"name": "b", "http": {"url": "http://x"}, "fail_if": "body.state == 'no'"},
                ]
            }
        )
    )
    assert definition_warnings(definition) == [
        "steps[0].until: \"bodyy.state == 'ok'\" reads bodyy, which http's document does not "
        "have (it has: status, headers, body); it will be null"
    ]
    assert definition_warnings(parse_definition(json.dumps(EXAMPLE))) == []
