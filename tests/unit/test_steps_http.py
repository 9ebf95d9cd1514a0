"""The http step's summary while it waits on `until`: what the expression evaluated to."""

from __future__ import annotations

import json

import pytest

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.model import RunStatus
from orchestrator.services import HttpResponse, Services
from tests.fakes import ManualClock, ScriptedHttp, json_response

T0 = 1_800_000_000.0


def detail_after_one_poll(until: str, response: HttpResponse) -> str:
    definition = parse_definition(
        json.dumps({"steps": [{"name": "h", "http": {"url": "http://x"}, "until": until}]})
    )
    clock = ManualClock(T0)
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.advance(
        definition,
        engine.start(definition, "r1", clock.now()),
        clock.now,
        budget,
        Services(http=ScriptedHttp([response])),
    )
    assert state.status is RunStatus.RUNNING
    return state.steps[0].detail


def html(status: int, body: str) -> HttpResponse:
    return HttpResponse(
        status=status, headers={"content-type": "text/html; charset=utf-8"}, body=body.encode()
    )


@pytest.mark.parametrize(
    ("until", "response", "expected"),
    [
        (
            "body.state",
            html(200, "<html>maintenance</html>"),
            "until is null: body is text/html, not JSON",
        ),
        (
            "body.state == 'approved'",
            json_response(200, '{"state": "new"}'),
            'until false: body.state is "new"',
        ),
        ("status == `200`", json_response(404, "{}"), "until false: status is 404"),
        (
            "body.change.state",
            json_response(200, '{"id": 42}'),
            "until is null: body has no 'change'",
        ),
        ("body.items", json_response(200, '{"items": []}'), "until is []: body.items is []"),
    ],
)
def test_the_summary_says_what_until_evaluated_to(
    until: str, response: HttpResponse, expected: str
) -> None:
    detail = detail_after_one_poll(until, response)
    assert detail.startswith("waiting for until (polled 1 time")
    assert detail.endswith(f"): {expected}")


def test_a_big_body_is_clipped_in_the_summary() -> None:
    body = json.dumps({"log": "x" * 10_000})
    detail = detail_after_one_poll("body.log == 'done'", json_response(200, body))
    assert detail.endswith("…")
    assert len(detail) < 200


def test_a_secret_the_server_echoes_stays_out_of_the_summary() -> None:
    from tests.unit.test_steps_secrets import VALUE, FakeSecretsManager
    from tests.unit.test_steps_secrets import Services as SecretServices

    step = {
        "name": "itsm",
        "http": {"url": "https://itsm.example/c/1", "headers": {"Authorization": {"secret": "s"}}},
        "until": "body.note == 'approved'",
    }
    definition = parse_definition(json.dumps({"steps": [step]}))
    services = SecretServices(FakeSecretsManager({"s": VALUE}))
    services.http.echo = True
    clock = ManualClock(T0)
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.start(definition, "r1", clock.now())
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.status is RunStatus.RUNNING
    assert state.steps[0].detail.endswith('until false: body.note is "you sent ***"')
    assert VALUE not in engine.summary(definition, state)
