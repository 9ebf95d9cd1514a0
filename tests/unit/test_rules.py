"""Measurement rules (steps/_rules.py) through the engine: on the http kind, the alarms kind
and a guard, with honest fakes (an HTTP client answering by URL, a CloudWatch fake)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.exceptions import DefinitionError
from orchestrator.model import RunStatus
from orchestrator.services import HttpError, Services
from tests.fakes import ManualClock, json_response
from tests.unit.test_engine_v2 import RoutedHttp
from tests.unit.test_steps_alarms import Alarm, FakeCloudWatch, FakeServices

T0 = 1_800_000_000.0
OK, NO, DOWN = json_response(200, "{}"), json_response(404, "{}"), json_response(503, "{}")
BAD = json_response(200, '{"bad": true}')


class Rig:
    def __init__(self, gate: dict[str, Any], script: list[Any] | None = None, **aws: Any) -> None:
        self.definition = parse_definition(json.dumps(gate))
        self.clock = ManualClock(T0)
        self.http = RoutedHttp({"http://check": list(script or [OK])})
        self.services: Any = FakeServices(**aws) if aws else Services(http=self.http)
        self.state = engine.start(self.definition, "r1", T0)

    def tick(self, after: float = 0.0) -> Rig:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        self.state = engine.advance(
            self.definition, self.state, self.clock.now, budget, self.services
        )
        return self

    def status(self) -> RunStatus:
        return self.state.status

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)

    @property
    def polls(self) -> int:
        return self.http.calls("http://check")


def check(**rules: Any) -> dict[str, Any]:
    return {"name": "check", "http": {"url": "http://check"}, "every": "1m", **rules}


def test_stable_for_needs_until_on_every_poll_for_that_long() -> None:
    rig = Rig({"steps": [check(stable_for="3m")]}, [OK, OK, NO, OK, OK, OK, OK])
    rig.tick()
    assert rig.summary == "step 1/1 'check': until held 0s/3m (1 poll)"
    rig.tick(60).tick(60)  # ok, then 404: the streak starts again
    assert "waiting for a 2xx status" in rig.summary
    for _ in range(3):
        rig.tick(60)
    assert rig.status() is RunStatus.RUNNING
    assert rig.summary == "step 1/1 'check': until held 2m/3m (3 polls)"
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.polls == 7


def test_successes_needs_n_polls_in_a_row() -> None:
    rig = Rig({"steps": [check(successes=3)]}, [OK, OK, NO, OK, OK, OK])
    for _ in range(5):
        rig.tick(60)
    assert rig.summary.endswith("until held (2/3 polls)")
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED


def test_failure_limit_tolerates_fail_if_that_many_times() -> None:
    rig = Rig({"steps": [check(fail_if="body.bad", failure_limit=1)]}, [BAD, NO, BAD])
    rig.tick()
    assert rig.summary.startswith(
        "step 1/1 'check': fail_if is true (body.bad); HTTP 200: tolerated 1/1"
    )
    rig.tick(60)
    assert rig.summary.endswith(", fail_if 1/2")
    rig.tick(60)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message == (
        "step 'check': fail_if is true (body.bad); HTTP 200 (2 times, over its failure_limit)"
    )


def test_error_limit_tolerates_errors_in_a_row_and_one_more_fails_naming_the_last() -> None:
    script = [DOWN, HttpError("connection refused"), OK, DOWN, DOWN, DOWN]
    rig = Rig({"steps": [check(error_limit=2, stable_for="5m")]}, script)
    rig.tick().tick(60)
    assert "(error 2/2 tolerated)" in rig.summary
    rig.tick(60)  # a good poll: the count starts again
    rig.tick(60).tick(60)
    assert rig.status() is RunStatus.RUNNING
    rig.tick(60)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message.startswith(
        "step 'check': 3 errors in a row, over its error_limit 2; the last: HTTP 503"
    )


def test_max_polls_ends_an_inconclusive_check() -> None:
    rig = Rig({"steps": [check(max_polls=3)]}, [NO])
    rig.tick().tick(60).tick(60)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message.startswith("step 'check': inconclusive after 3 polls (last:")


def test_an_inconclusive_check_can_ask_people_and_stops_polling() -> None:
    alice = "arn:aws:iam::123456789012:user/alice"
    rig = Rig({"steps": [check(max_polls=2, on_inconclusive="approve", approvers=[alice])]}, [NO])
    rig.tick().tick(60)
    assert rig.summary.startswith("step 1/1 'check': inconclusive after 2 polls")
    assert f"asking {alice}" in rig.summary
    rig.tick(1).tick(600)
    assert rig.polls == 2  # people decide now: no more checks
    assert rig.state.steps[0].memo["approvers"] == [alice]
    assert rig.status() is RunStatus.RUNNING
    assert "inconclusive after 2 polls" in rig.state.steps[0].memo["message"]


def test_initial_delay_postpones_the_first_poll() -> None:
    rig = Rig({"steps": [{"name": "bake", "wait": "1m"}, check(initial_delay="10m")]})
    rig.tick().tick(60)
    assert rig.polls == 0
    assert engine.next_due(rig.state) == T0 + 60 + 600
    rig.tick(600)
    assert rig.status() is RunStatus.SUCCEEDED and rig.polls == 1


def test_rules_on_a_guard_a_tolerated_failure_is_no_violation_and_stability_gates_success() -> None:
    guard = check(fail_if="body.bad", failure_limit=1, stable_for="2m")
    rig = Rig({"guards": [guard], "steps": [{"name": "bake", "wait": "1m"}]}, [BAD, OK, OK, OK])
    rig.tick()
    assert rig.status() is RunStatus.RUNNING  # fail_if once: tolerated, not a violation
    assert "check not checked (fail_if is true" in rig.summary
    rig.tick(60)  # bake over; check held 0s of 2m: no verdict yet
    rig.tick(60)
    assert rig.status() is RunStatus.RUNNING
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.polls == 4


def test_rules_on_the_alarms_kind() -> None:
    cloudwatch = FakeCloudWatch({"p99": Alarm(state="ALARM")})
    rig = Rig(
        {"steps": [{"name": "quiet", "alarms": {"names": ["p99"]}, "failure_limit": 1,
                    "successes": 2, "every": "1m"}]},
        cloudwatch=cloudwatch,
    )  # fmt: skip
    rig.tick()
    assert "in ALARM: 'p99'" in rig.summary and "tolerated 1/1" in rig.summary
    cloudwatch.alarms["p99"] = Alarm(state="OK")
    rig.tick(60)
    assert rig.summary.endswith("until held (1/2 polls), fail_if 1/2")  # failures: all told
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"on_inconclusive": "approve"}, 'on_inconclusive "approve" needs approvers'),
        ({"approvers": ["x"]}, 'approvers are for on_inconclusive "approve"'),
        ({"failure_limit": -1}, "greater than or equal to 0"),
        (
            {"on_inconclusive": "approve", "approvers": ["x"]},
            'on_inconclusive "approve" needs max_polls',
        ),
    ],
)
def test_rule_mistakes_are_explained(rules: dict[str, Any], expected: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps({"steps": [check(**rules)]}))
    assert any(expected in line for line in caught.value.errors), caught.value.errors


def test_a_guard_is_never_inconclusive() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(
            json.dumps({"steps": [{"name": "w", "wait": "1m"}], "guards": [check(max_polls=3)]})
        )
    assert "guards[0].max_polls: a guard polls for as long as the gate runs" in str(caught.value)
