"""`metrics` end to end: the handler, through the emulator, reading CloudWatch metrics that
PutMetricData stored in moto.

Metric statistics come from moto itself. moto has no metric math (an expression gets
nothing unless it is a bare id) and never pages, so the tests of expressions, pages and
CloudWatch's faults go through `tests/cloudwatch_peer.py`: a local endpoint speaking
CloudWatch's JSON protocol that forwards PutMetricData to moto, asks moto for the metric
statistics and computes the math itself.

The rig's clock runs 600 times real time from now: the data is put at one-minute steps
around the gate's virtual hours, with the step's `now - window` reaching into it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.cloudwatch_peer import CloudWatchPeer
from tests.integration.test_cross_account import (
    EXTERNAL_ID,
    REGION,
    ROLE,
    in_target_account,
    summaries,
)
from tests.integration.test_steps_rig import StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def dimensions(ns: str) -> dict[str, str]:
    """Per test: moto ignores the namespace of a query that has dimensions."""
    return {"LoadBalancer": f"app/{ns.replace('/', '-')}/123"}


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


@pytest.fixture
def peer(moto_endpoint: str) -> Iterator[CloudWatchPeer]:
    with CloudWatchPeer(moto_endpoint) as server:
        yield server


@pytest.fixture
def math_rig(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, peer: CloudWatchPeer
) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch, {"CLOUDWATCH": peer.url}) as built:
        yield built


def put_series(
    cloudwatch: Any, namespace: str, name: str, start: float, value: Callable[[int], float]
) -> None:
    """Three hours of one-minute datapoints from `start - 10m`: minute i has value(i)."""
    points = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions(namespace).items()],
            "Timestamp": datetime.fromtimestamp(start - 600 + i * 60, UTC),
            "Value": value(i),
        }
        for i in range(180)
    ]
    for i in range(0, len(points), 500):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=points[i : i + 500])


def metric(namespace: str, name: str, stat: str = "Sum") -> dict[str, Any]:
    return {"namespace": namespace, "name": name, "dimensions": dimensions(namespace), "stat": stat}


def namespace() -> str:
    return f"Shop/{uuid.uuid4().hex[:8]}"


def errors_step(ns: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "errors",
        "metrics": {
            "queries": [{"id": "err", "metric": metric(ns, "Errors")}],
            "period": "1m",
            "window": "5m",
        },
        "every": "1m",
        "timeout": "1h",
        **fields,
    }


# region metric statistics, from moto


def test_a_metric_that_stays_low_passes_with_its_statistics(rig: StepsRig) -> None:
    ns = namespace()
    put_series(rig.aws("cloudwatch"), ns, "Errors", rig.clock.now(), lambda i: float(i % 3))
    result = rig.run(
        {
            "steps": [errors_step(ns, until="err.max < `5`", fail_if="err.max > `10`")],
            "outputs": {"Max": "steps.errors.err.max", "Count": "steps.errors.err.count"},
        }
    )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables["Max"] == "2.0"
    assert int(result.output_variables["Count"]) in (5, 6)  # 5m of 1m periods, edges included


def test_a_spike_fails_the_gate_naming_the_evidence(rig: StepsRig) -> None:
    ns = namespace()
    # A spike of 9 from the gate's 40th virtual minute on.
    put_series(rig.aws("cloudwatch"), ns, "Errors", rig.clock.now(), lambda i: 9.0 if i > 50 else 1)
    result = rig.run({"steps": [errors_step(ns, until="err.max > `100`", fail_if="err.max > `5`")]})
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert (result.failure_message or "").startswith(
        "step 'errors': fail_if is true (err.max > `5`): err max 9 (latest "
    )
    assert any("err latest 1 (max 1, " in s and "; until false" in s for s in summaries(result))


@pytest.mark.parametrize(
    ("missing", "status", "failure_type", "message"),
    [
        ("not_breaching", "Succeeded", None, None),
        (
            "breaching",
            "Failed",
            "JobFailed",
            "step 'errors': no datapoints for err in the last 5m (missing: breaching)",
        ),
        (
            "fail",
            "Failed",
            "ConfigurationError",
            "step 'errors': no datapoints for err in the last 5m (missing: fail); check the "
            "namespace, name, dimensions and stat",
        ),
        (
            "ignore",
            "Failed",
            "JobFailed",
            "step 'errors' timed out after 1h (last: no datapoints for err in the last 5m "
            "(missing: ignore))",
        ),
    ],
)
def test_missing_data_does_what_missing_says(
    rig: StepsRig, missing: str, status: str, failure_type: str | None, message: str | None
) -> None:
    ns = namespace()  # nothing was ever put there
    step = errors_step(ns, until="err.max < `5`")
    step["metrics"]["missing"] = missing
    result = rig.run({"steps": [step], "outputs": {"Count": "steps.errors.err.count"}})
    assert (result.status, result.failure_type) == (status, failure_type)
    if message is not None:
        assert result.failure_message == message
    else:
        assert result.output_variables == {"Count": "0"}


def test_a_metrics_guard_fails_the_gate_when_fail_if_holds(rig: StepsRig) -> None:
    ns = namespace()
    put_series(rig.aws("cloudwatch"), ns, "Errors", rig.clock.now(), lambda i: 9.0 if i > 30 else 0)
    guard = {
        "name": "errors",
        "metrics": {"queries": [{"id": "err", "metric": metric(ns, "Errors")}], "window": "3m"},
        "fail_if": "err.max > `5`",
    }
    result = rig.run({"guards": [guard], "steps": [{"name": "bake", "wait": "2h"}]})
    assert result.status == "Failed", result.failure_message
    assert "fail_if is true (err.max > `5`): err max 9" in (result.failure_message or "")


# endregion

# region metric math, pages and faults, through the peer


def error_rate_gate(ns: str, **fields: Any) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "errors",
                "metrics": {
                    "queries": [
                        {
                            "id": "err",
                            "metric": metric(ns, "HTTPCode_Target_5XX_Count"),
                            "return": False,
                        },
                        {"id": "req", "metric": metric(ns, "RequestCount"), "return": False},
                        {"id": "rate", "expression": "100 * FILL(err, 0) / req"},
                    ],
                    "period": "1m",
                    "window": "5m",
                },
                "until": "rate.latest < `1`",
                "fail_if": "rate.max > `5`",
                "every": "1m",
                "timeout": "1h",
                **fields,
            }
        ],
        "outputs": {"Rate": "steps.errors.rate.latest", "Points": "steps.errors.rate.count"},
    }


def put_traffic(rig: StepsRig, ns: str, errors: Callable[[int], float]) -> None:
    cloudwatch = rig.aws("cloudwatch")
    put_series(cloudwatch, ns, "RequestCount", rig.clock.now(), lambda i: 1000.0)
    put_series(cloudwatch, ns, "HTTPCode_Target_5XX_Count", rig.clock.now(), errors)


def test_an_error_rate_by_metric_math_passes_when_low(
    math_rig: StepsRig, peer: CloudWatchPeer
) -> None:
    ns = namespace()
    put_traffic(math_rig, ns, lambda i: 5.0 if i % 2 else 0.0)  # 0.5%; some minutes report none
    result = math_rig.run(error_rate_gate(ns))
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables["Rate"] in ("0.0", "0.5")
    calls = peer.get_metric_data_calls()
    assert len(calls) == 1  # one GetMetricData per poll, the math included
    queries = {q["Id"]: q for q in calls[0]["MetricDataQueries"]}
    assert [queries[i]["ReturnData"] for i in ("err", "req", "rate")] == [False, False, True]
    assert queries["rate"]["Expression"] == "100 * FILL(err, 0) / req"
    assert calls[0]["EndTime"] - calls[0]["StartTime"] == pytest.approx(300)


def test_an_error_rate_above_the_limit_fails(math_rig: StepsRig) -> None:
    ns = namespace()
    put_traffic(math_rig, ns, lambda i: 80.0)  # 8%
    result = math_rig.run(error_rate_gate(ns))
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert (result.failure_message or "").startswith(
        "step 'errors': fail_if is true (rate.max > `5`): rate max 8 (latest 8, "
    )


def test_canary_against_baseline_is_one_expression(math_rig: StepsRig) -> None:
    canary, baseline = namespace(), namespace()
    put_traffic(math_rig, canary, lambda i: 30.0)  # 3%
    put_traffic(math_rig, baseline, lambda i: 20.0)  # 2%
    queries = [
        {"id": "cerr", "metric": metric(canary, "HTTPCode_Target_5XX_Count"), "return": False},
        {"id": "creq", "metric": metric(canary, "RequestCount"), "return": False},
        {"id": "berr", "metric": metric(baseline, "HTTPCode_Target_5XX_Count"), "return": False},
        {"id": "breq", "metric": metric(baseline, "RequestCount"), "return": False},
        {"id": "worse", "expression": "100 * cerr / creq - 100 * berr / breq"},
    ]
    result = math_rig.run(
        {
            "steps": [
                {
                    "name": "canary",
                    "metrics": {"queries": queries, "window": "10m"},
                    "until": "worse.max < `0.5`",
                    "fail_if": "worse.max > `0.5`",
                }
            ]
        }
    )
    assert result.status == "Failed"
    assert "fail_if is true (worse.max > `0.5`): worse max 1 (latest 1, " in (
        result.failure_message or ""
    )


def test_every_page_is_read(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = namespace()
    with (
        CloudWatchPeer(moto_endpoint, page_size=2) as paged,
        steps_rig(table_name, moto_endpoint, monkeypatch, {"CLOUDWATCH": paged.url}) as rig,
    ):
        put_traffic(rig, ns, lambda i: 0.0)
        result = rig.run(error_rate_gate(ns))
        calls = paged.get_metric_data_calls()
    assert result.status == "Succeeded", result.failure_message
    assert int(result.output_variables["Points"]) in (5, 6)  # 3 pages of 2 merged
    assert [c.get("NextToken") for c in calls] == [None, "2", "4"]


def test_throttling_is_retried_and_a_refused_query_fails_with_cloudwatchs_message(
    math_rig: StepsRig, peer: CloudWatchPeer
) -> None:
    ns = namespace()
    put_traffic(math_rig, ns, lambda i: 0.0)
    peer.fail_next("throttled", "throttled", "throttled", "unavailable", "internal")
    result = math_rig.run(error_rate_gate(ns))
    assert result.status == "Succeeded", result.failure_message
    said = summaries(result)
    assert any("CloudWatch unavailable (Throttling); retrying" in s for s in said)
    assert any("CloudWatch could not compute rate (InternalError); retrying" in s for s in said)

    peer.fail_next("invalid")
    result = math_rig.run(error_rate_gate(ns))
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        "step 'errors': CloudWatch refused the queries (ValidationError: "
        "Error in expression 'rate': Unrecognized token)"
    )


# endregion

# region another account


def test_a_metrics_step_reads_the_target_accounts_metrics_as_its_role(
    rig: StepsRig, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    ns = namespace()
    put_series(in_target_account(moto_endpoint, "cloudwatch"), ns, "Errors", rig.clock.now(), float)
    step = errors_step(ns, until="err.count > `0`")
    step["metrics"]["missing"] = "fail"  # the function's own account has no such metric
    target = {"role_arn": ROLE, "external_id": EXTERNAL_ID, "region": REGION}
    mine = rig.run({"steps": [step]})
    assert mine.failure_type == "ConfigurationError"
    theirs = rig.run({"defaults": target, "steps": [step]})
    assert theirs.status == "Succeeded", theirs.failure_message
    # The metric exists in the target account only: the step read it as the role.


# endregion


# region measurement rules over CloudWatch (issue 15's rules on the metrics kind)


def test_a_rate_that_stays_low_for_stable_for_passes_and_not_before(rig: StepsRig) -> None:
    ns = namespace()
    put_series(rig.aws("cloudwatch"), ns, "Errors", rig.clock.now(), lambda i: 1.0)
    step = errors_step(ns, until="err.max < `5`", stable_for="10m")
    result = rig.run({"steps": [step]})
    assert result.status == "Succeeded", result.failure_message
    assert result.ended_at - result.started_at >= 600
    held = [s for s in summaries(result) if "until held" in s and "/10m (" in s]
    assert held, summaries(result)  # the evidence grew poll by poll before the success


def test_fail_if_is_tolerated_once_under_failure_limit_and_the_next_poll_fails(
    rig: StepsRig,
) -> None:
    ns = namespace()
    # errors jump from the series' 20th minute on: the first poll that sees it is tolerated,
    # the next one fails (polls are what failure_limit counts, however far apart they come)
    put_series(rig.aws("cloudwatch"), ns, "Errors", rig.clock.now(),
               lambda i: 9.0 if i >= 20 else 1.0)  # fmt: skip
    step = errors_step(ns, until="err.max < `0`", fail_if="err.latest > `5`", failure_limit=1)
    step["metrics"]["window"] = "1m"
    result = rig.run({"steps": [step]})
    assert result.status == "Failed", result.failure_message
    assert (result.failure_message or "").endswith("(2 times, over its failure_limit)")
    assert any("tolerated 1/1" in s for s in summaries(result))


def test_errors_up_to_error_limit_are_tolerated(math_rig: StepsRig, peer: CloudWatchPeer) -> None:
    ns = namespace()
    put_traffic(math_rig, ns, lambda i: 0.0)
    # botocore tries each poll's request 3 times: 6 refusals are two polls' errors
    peer.fail_next(*["throttled"] * 6)
    result = math_rig.run(error_rate_gate(ns, error_limit=2))
    assert result.status == "Succeeded", result.failure_message
    assert any("(error 2/2 tolerated)" in s for s in summaries(result)), summaries(result)
    peer.fail_next(*["unavailable"] * 9)
    result = math_rig.run(error_rate_gate(ns, error_limit=2))
    assert result.status == "Failed"
    assert (result.failure_message or "").startswith(
        "step 'errors': 3 errors in a row, over its error_limit 2; the last: CloudWatch unavailable"
    )
