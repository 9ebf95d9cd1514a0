"""`alarms` end to end: the handler, through the emulator, reading CloudWatch on moto.

moto implements metric alarms (PutMetricAlarm, SetAlarmState, DescribeAlarms with its
pages) but not PutCompositeAlarm: composite alarms are covered by the unit tests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_steps_rig import StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.local.emulator import JobRecord


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def make_alarms(rig: StepsRig, prefix: str, states: dict[str, str]) -> Any:
    cloudwatch = rig.aws("cloudwatch")
    for suffix, state in states.items():
        cloudwatch.put_metric_alarm(
            AlarmName=prefix + suffix,
            Namespace="Shop",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(
            AlarmName=prefix + suffix, StateValue=state, StateReason=f"{suffix} is {state}"
        )
    return cloudwatch


def test_alarms_ok_for_the_window_pass_the_gate(rig: StepsRig) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(rig, prefix, {"api": "OK", "db": "OK", "queue": "OK"})
    result = rig.run(
        {
            "steps": [
                {"name": "healthy", "alarms": {"prefix": prefix, "for": "5m"}, "every": "1m"}
            ],
            "outputs": {
                "States": "steps.healthy.alarms[].state",
                "Count": "length(steps.healthy.alarms)",
            },
        }
    )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"States": '["OK", "OK", "OK"]', "Count": "3"}
    assert result.rounds >= 2  # it waited the window out over several jobs
    summaries = [j.answer["params"]["executionDetails"]["summary"] for j in result.jobs if j.answer]
    assert any("3 alarms OK for" in summary and "of 5m" in summary for summary in summaries)


def test_an_alarm_going_off_during_the_window_fails_the_gate(rig: StepsRig) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    cloudwatch = make_alarms(rig, prefix, {"api": "OK", "db": "OK"})

    def trip(job: JobRecord) -> None:
        cloudwatch.set_alarm_state(
            AlarmName=prefix + "db", StateValue="ALARM", StateReason="Threshold Crossed: 9 > 5"
        )

    result = rig.run(
        {
            "steps": [
                {
                    "name": "healthy",
                    "alarms": {"names": [prefix + "api", prefix + "db"], "for": "10m"},
                }
            ]
        },
        on_job=trip,
    )
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert result.failure_message == (
        f"step 'healthy': alarm in ALARM: '{prefix}db' (Threshold Crossed: 9 > 5)"
    )


def test_a_missing_named_alarm_fails_as_a_configuration_error(rig: StepsRig) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(rig, prefix, {"api": "OK"})
    result = rig.run(
        {"steps": [{"name": "healthy", "alarms": {"names": [prefix + "api", prefix + "gone"]}}]}
    )
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == f"step 'healthy': no such alarm: {prefix}gone"


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_repeated_deliveries_keep_one_window(rig: StepsRig, mode: str) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(rig, prefix, {"api": "OK"})
    result = rig.run(
        {
            "steps": [
                {"name": "healthy", "alarms": {"prefix": prefix, "for": "3m"}, "every": "1m"}
            ],
            "outputs": {"OkFor": "steps.healthy.ok_for_seconds"},
        },
        duplicates=mode,
        concurrency=3,
    )
    assert result.status == "Succeeded", result.failure_message
    assert float(result.output_variables["OkFor"]) >= 180  # never cut short by a copy
    for job in result.jobs:  # one accepted answer per job, every other copy refused
        assert job.answer is not None and len(job.rejected) == (1 if mode == "sequential" else 2)
