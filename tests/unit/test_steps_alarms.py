"""The `alarms` kind, through the engine, against a small fake of CloudWatch's DescribeAlarms
that keeps the real API's rules (pages, names or prefix, 100 names per call)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import DefinitionError, FailureType
from orchestrator.model import RunState, RunStatus
from orchestrator.targets import AwsTarget, RoleDenied, RoleUnavailable
from tests.fakes import ManualClock, client_error

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    from orchestrator.governance import Governance
    from orchestrator.services import HttpClient

T0 = 1_800_000_000.0


@dataclass
class Alarm:
    state: str = "OK"
    reason: str = "Threshold Crossed: no datapoints above 1"
    kind: str = "MetricAlarm"
    changed_at: float = T0 - 3600


class FakeCloudWatch:
    """DescribeAlarms over a dict of alarms, two per page."""

    def __init__(self, alarms: dict[str, Alarm]) -> None:
        self.alarms = alarms
        self.calls: list[dict[str, Any]] = []
        self.errors: list[ClientError] = []

    def describe_alarms(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        names, prefix = kwargs.get("AlarmNames"), kwargs.get("AlarmNamePrefix")
        assert (names is None) != (prefix is None), "AWS refuses both, or neither"
        assert names is None or len(names) <= 100
        types = kwargs.get("AlarmTypes", ["MetricAlarm"])
        matching = sorted(
            name
            for name, alarm in self.alarms.items()
            if alarm.kind in types
            and (name in names if names is not None else name.startswith(prefix or ""))
        )
        start = int(kwargs.get("NextToken", "0"))
        page = matching[start : start + 2]
        response: dict[str, Any] = {"MetricAlarms": [], "CompositeAlarms": []}
        for name in page:
            alarm = self.alarms[name]
            response[f"{alarm.kind}s"].append(
                {
                    "AlarmName": name,
                    "StateValue": alarm.state,
                    "StateReason": alarm.reason,
                    "StateUpdatedTimestamp": datetime.fromtimestamp(alarm.changed_at, UTC),
                }
            )
        if start + 2 < len(matching):
            response["NextToken"] = str(start + 2)
        return response


class FakeServices:
    """ServiceClients with the given AWS clients, by service name, and no HTTP."""

    def __init__(self, **clients: Any) -> None:
        self.clients = clients
        self.single_attempt: dict[str, bool] = {}
        self.targets: dict[str, AwsTarget | None] = {}
        self.role_error: Exception | None = None

    @property
    def http(self) -> HttpClient:
        raise AssertionError("no HTTP in this test")

    @property
    def governance(self) -> Governance:
        raise AssertionError("no freezes or locks in this test")

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        self.single_attempt[service] = single_attempt
        self.targets[service] = target
        if self.role_error is not None and target is not None:
            raise self.role_error
        return self.clients[service]


def gate(step: dict[str, Any]) -> GateDefinition:
    return parse_definition(json.dumps({"steps": [{"name": "healthy", **step}]}))


class Runner:
    def __init__(self, step: dict[str, Any], alarms: dict[str, Alarm]) -> None:
        self.definition = gate(step)
        self.clock = ManualClock(T0)
        self.cloudwatch = FakeCloudWatch(alarms)
        self.state: RunState = engine.start(self.definition, "run-1", T0)
        self.role_error: Exception | None = None
        self.services = FakeServices(cloudwatch=self.cloudwatch)

    def tick(self, after: float = 0.0) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        services = self.services
        services.role_error = self.role_error
        self.state = engine.advance(self.definition, self.state, self.clock.now, budget, services)
        return self.state

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)


def test_done_once_all_alarms_stayed_ok_for_the_window() -> None:
    alarms = {"svc-a": Alarm(), "svc-b": Alarm(), "svc-all": Alarm(kind="CompositeAlarm")}
    runner = Runner({"alarms": {"prefix": "svc-", "for": "10m"}, "every": "1m"}, alarms)
    runner.tick()
    assert runner.summary == "step 1/1 'healthy': 3 alarms OK for 0s of 10m"
    runner.tick(240)
    assert runner.summary == "step 1/1 'healthy': 3 alarms OK for 4m of 10m"
    assert runner.state.steps[0].eta == T0 + 600
    assert runner.tick(360).status is RunStatus.SUCCEEDED
    result = runner.state.steps[0].result
    assert result["ok_for_seconds"] == 600
    assert [(a["name"], a["type"], a["state"]) for a in result["alarms"]] == [
        ("svc-a", "MetricAlarm", "OK"),
        ("svc-all", "CompositeAlarm", "OK"),
        ("svc-b", "MetricAlarm", "OK"),
    ]
    # Every page was read, asking for both kinds of alarm.
    assert all(
        c["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"] for c in runner.cloudwatch.calls
    )
    assert any("NextToken" in call for call in runner.cloudwatch.calls)


def test_an_alarm_in_alarm_fails_at_once_naming_it_and_its_reason() -> None:
    alarms = {"api-5xx": Alarm(state="ALARM", reason="Threshold Crossed: 12 > 5"), "x": Alarm()}
    runner = Runner({"alarms": {"names": ["api-5xx", "x"], "for": "10m"}}, alarms)
    assert runner.tick().status is RunStatus.FAILED
    assert runner.state.failure is not None
    assert runner.state.failure.message == (
        "step 'healthy': alarm in ALARM: 'api-5xx' (Threshold Crossed: 12 > 5)"
    )


def test_without_fail_on_alarm_an_alarm_restarts_the_window() -> None:
    alarms = {"a": Alarm(), "b": Alarm()}
    step = {"alarms": {"names": ["a", "b"], "for": "5m", "fail_on_alarm": False}, "every": "1m"}
    runner = Runner(step, alarms)
    runner.tick()
    runner.tick(240)
    alarms["b"].state = "ALARM"
    assert runner.tick(60).status is RunStatus.RUNNING
    assert runner.summary == "step 1/1 'healthy': 1 of 2 alarms not OK: b (ALARM)"
    alarms["b"].state = "OK"
    runner.tick(60)
    assert runner.tick(240).status is RunStatus.RUNNING  # 4m since it came back, not 9m
    assert runner.tick(60).status is RunStatus.SUCCEEDED


def test_insufficient_data_does_not_fail_but_does_not_count() -> None:
    alarms = {"a": Alarm(state="INSUFFICIENT_DATA")}
    runner = Runner({"alarms": {"names": ["a"], "for": "2m"}, "every": "1m"}, alarms)
    runner.tick()
    assert runner.tick(180).status is RunStatus.RUNNING
    assert "a (INSUFFICIENT_DATA)" in runner.summary
    alarms["a"].state = "OK"
    runner.tick(60)
    assert runner.tick(60).status is RunStatus.RUNNING
    assert runner.tick(60).status is RunStatus.SUCCEEDED


def test_a_flap_between_two_polls_restarts_the_window() -> None:
    alarms = {"a": Alarm()}
    runner = Runner({"alarms": {"names": ["a"], "for": "10m"}, "every": "5m"}, alarms)
    runner.tick()
    alarms["a"].changed_at = T0 + 200  # went to ALARM and back to OK, unseen by any poll
    runner.tick(300)
    assert runner.summary.endswith("1 alarm OK for 1m40s of 10m")
    assert runner.tick(300).status is RunStatus.RUNNING
    assert runner.tick(200).status is RunStatus.SUCCEEDED


def test_missing_named_alarms_and_empty_prefixes_fail_clearly() -> None:
    runner = Runner({"alarms": {"names": ["there", "gone", "also-gone"]}}, {"there": Alarm()})
    runner.tick()
    assert runner.state.failure is not None
    assert runner.state.failure.type is FailureType.CONFIGURATION_ERROR
    assert runner.state.failure.message == "step 'healthy': no such alarm: gone, also-gone"
    runner = Runner({"alarms": {"prefix": "typo-"}}, {"svc": Alarm()})
    runner.tick()
    assert runner.state.failure is not None
    assert runner.state.failure.message == "step 'healthy': no alarm name starts with 'typo-'"


def test_without_for_the_step_is_done_at_the_first_all_ok_poll() -> None:
    runner = Runner({"alarms": {"names": ["a"]}}, {"a": Alarm()})
    assert runner.tick().status is RunStatus.SUCCEEDED


def test_many_names_are_asked_in_batches_of_100() -> None:
    alarms = {f"alarm-{i:03}": Alarm() for i in range(150)}
    runner = Runner({"alarms": {"names": sorted(alarms), "prefix": "alarm-1"}}, alarms)
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert len(runner.state.steps[0].result["alarms"]) == 150
    batches = [c["AlarmNames"] for c in runner.cloudwatch.calls if "AlarmNames" in c]
    assert {len(b) for b in batches} == {100, 50}


def test_throttling_is_retried_at_the_next_poll_not_a_failure() -> None:
    runner = Runner({"alarms": {"names": ["a"]}, "every": "1m"}, {"a": Alarm()})
    runner.cloudwatch.errors.append(client_error("Throttling"))
    assert runner.tick().status is RunStatus.RUNNING
    assert runner.summary == "step 1/1 'healthy': CloudWatch unavailable (Throttling); retrying"
    assert runner.tick(60).status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("error", "failure_type"),
    [
        (client_error("AccessDenied", 403), FailureType.PERMISSION_ERROR),
        (client_error("SomethingNew", 403), FailureType.PERMISSION_ERROR),  # was JobFailed
        (client_error("InvalidNextToken", 400), FailureType.JOB_FAILED),
    ],
)
def test_a_refusal_fails_the_gate_with_its_type(
    error: ClientError, failure_type: FailureType
) -> None:
    runner = Runner({"alarms": {"names": ["a"]}}, {"a": Alarm()})
    runner.cloudwatch.errors.append(error)
    state = runner.tick()
    assert state.status is RunStatus.FAILED and state.failure is not None
    code = error.response["Error"]["Code"]
    assert (state.failure.type, state.failure.message) == (
        failure_type,
        f"step 'healthy': DescribeAlarms failed ({code})",
    )


@pytest.mark.parametrize(
    ("alarms", "message"),
    [
        ({}, "steps[0].alarms: alarms: give 'names', 'prefix' or both"),
        ({"names": ["a"], "for": "soon"}, "steps[0].alarms.for: invalid duration 'soon'"),
        ({"names": ["a"], "forever": "1m"}, "steps[0].alarms.forever: unknown field"),
    ],
)
def test_definitions_are_checked(alarms: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        gate({"alarms": alarms})
    assert caught.value.errors[0].startswith(message)


# region another account's alarms (orchestrator.targets)

ROLE = "arn:aws:iam::222233334444:role/gate-reader"


def test_a_step_with_a_role_asks_for_clients_of_that_role_and_notes_it() -> None:
    step = {"alarms": {"prefix": "svc-"}, "role_arn": ROLE, "external_id": "gates-1",
            "region": "eu-west-1"}  # fmt: skip
    runner = Runner(step, {"svc-a": Alarm()})
    assert runner.tick().status is RunStatus.SUCCEEDED
    expected = AwsTarget(ROLE, "gates-1", "eu-west-1", "run-1-healthy")
    assert runner.services.targets == {"cloudwatch": expected}
    assert runner.state.steps[0].memo["acted_as"] == {
        "role_arn": ROLE,
        "region": "eu-west-1",
        "session": "run-1-healthy",
    }


def test_a_step_without_a_target_uses_the_function_s_own_clients() -> None:
    runner = Runner({"alarms": {"prefix": "svc-"}}, {"svc-a": Alarm()})
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert runner.services.targets == {"cloudwatch": None}
    assert "acted_as" not in runner.state.steps[0].memo


def test_a_denied_role_fails_naming_it_and_an_sts_outage_keeps_the_window() -> None:
    step = {"alarms": {"prefix": "svc-", "for": "10m"}, "every": "1m", "role_arn": ROLE}
    runner = Runner(step, {"svc-a": Alarm()})
    runner.tick()
    assert runner.state.steps[0].memo["ok_since"] == T0
    runner.role_error = RoleUnavailable(f"role {ROLE}: STS unavailable (Throttling)")
    runner.tick(120)
    assert runner.state.status is RunStatus.RUNNING
    assert runner.summary == (
        f"step 1/1 'healthy': role {ROLE}: STS unavailable (Throttling); retrying"
    )
    assert runner.state.steps[0].memo["ok_since"] == T0  # the window was not restarted
    runner.role_error = None
    runner.tick(120)
    assert runner.summary == "step 1/1 'healthy': 1 alarm OK for 4m of 10m"
    runner.role_error = RoleDenied(f"cannot assume role {ROLE} (AccessDenied): trust")
    assert runner.tick(60).status is RunStatus.FAILED
    assert runner.state.failure is not None
    assert runner.state.failure.type is FailureType.PERMISSION_ERROR
    assert runner.state.failure.message == (
        f"step 'healthy': cannot assume role {ROLE} (AccessDenied): trust"
    )


def test_a_call_refused_to_the_role_says_as_whom() -> None:
    runner = Runner({"alarms": {"prefix": "svc-"}, "role_arn": ROLE}, {"svc-a": Alarm()})
    runner.cloudwatch.errors = [client_error("AccessDenied", 403)]
    assert runner.tick().status is RunStatus.FAILED
    assert runner.state.failure is not None
    assert runner.state.failure.message == (
        f"step 'healthy': DescribeAlarms failed (AccessDenied) as role {ROLE}"
    )


# endregion
