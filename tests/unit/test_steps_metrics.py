"""The `metrics` kind: its validation, the request it makes, the document its conditions see,
and what each answer of GetMetricData means, against a small fake of GetMetricData that keeps
the real API's rules (ids, ReturnData, pages by NextToken, StatusCode per result)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import EndpointConnectionError
from pydantic import ValidationError

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.exceptions import DefinitionError, FailureType
from orchestrator.model import RunStatus, StepState
from orchestrator.steps import Done, Failed, Pending, StepContext, kind_class
from orchestrator.steps.metrics import MAX_PAGES, RESULT_POINTS, MetricsStep
from orchestrator.targets import AwsTarget, RoleDenied, RoleUnavailable
from tests.fakes import ManualClock, client_error
from tests.unit.test_steps_alarms import FakeServices

if TYPE_CHECKING:
    from orchestrator.steps import Outcome

T0 = 1_800_000_000.0
ERRORS = {"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count", "stat": "Sum"}


class FakeCloudWatch:
    """GetMetricData from a dict of series by query id (timestamp -> value); every query id
    the request names must be valid and unique, and only ReturnData queries come back, two
    results' worth of points per page when `page_size` says so."""

    def __init__(self, series: dict[str, dict[float, float]]) -> None:
        self.series = series
        self.calls: list[dict[str, Any]] = []
        self.errors: list[Exception] = []
        self.status: dict[str, str] = {}
        self.page_size: int | None = None
        self.pages_forever = False
        self.duplicate: str | None = None

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        ids = [query["Id"] for query in kwargs["MetricDataQueries"]]
        assert len(ids) == len(set(ids)), "CloudWatch refuses repeated ids"
        assert kwargs["StartTime"] < kwargs["EndTime"]
        start = int(kwargs.get("NextToken", "0"))
        results, more = [], False
        for query in kwargs["MetricDataQueries"]:
            if not query["ReturnData"]:
                continue
            points = sorted(self.series.get(query["Id"], {}).items(), reverse=True)  # newest
            if self.page_size is not None:
                more = more or start + self.page_size < len(points)
                points = points[start : start + self.page_size]
            results.append(
                {
                    "Id": query["Id"],
                    "Label": query.get("Label", query["Id"]),
                    "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in points],
                    "Values": [v for _, v in points],
                    "StatusCode": self.status.get(query["Id"], "Complete"),
                }
            )
        if self.duplicate is not None:
            results.append({"Id": self.duplicate, "Timestamps": [], "Values": []})
        response: dict[str, Any] = {"MetricDataResults": results}
        if more or self.pages_forever:
            response["NextToken"] = str(start + (self.page_size or 0))
        return response


def minutes(*values: float, end: float = T0) -> dict[float, float]:
    """One value a minute, the last one at `end - 60`."""
    return {end - 60 * (len(values) - i): v for i, v in enumerate(values)}


def step_doc(**fields: Any) -> dict[str, Any]:
    queries = [
        {"id": "err", "metric": {**ERRORS, "dimensions": {"LoadBalancer": "app/x/1"}}},
    ]
    return {
        "name": "errors",
        "metrics": {"queries": queries, "period": "1m", "window": "5m"},
        "until": "err.latest < `1`",
        "fail_if": "err.max > `5`",
        **fields,
    }


def make(doc: dict[str, Any]) -> MetricsStep:
    step = parse_definition(json.dumps({"steps": [doc]})).steps[0]
    assert isinstance(step, MetricsStep)
    return step


def poll(step: MetricsStep, cloudwatch: FakeCloudWatch, **services: Any) -> Outcome:
    fake = FakeServices(cloudwatch=cloudwatch)
    for name, value in services.items():
        setattr(fake, name, value)
    ctx = StepContext("run-1", T0, {}, lambda: 60.0, fake)
    return step.poll(StepState(name=step.name, kind="metrics"), ctx)


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps({"steps": [doc]}))
    return str(caught.value)


# region validation


def test_the_kind_is_registered_and_can_be_a_guard() -> None:
    cls = kind_class("metrics")
    assert cls is MetricsStep and cls.not_a_guard is None and cls.default_every == 60
    guard = {k: v for k, v in step_doc().items() if k != "until"}
    parsed = parse_definition(json.dumps({"guards": [guard], "steps": [{"name": "w", "wait": 1}]}))
    assert parsed.guards[0].step.kind == "metrics"


def test_the_measurement_rules_and_a_target_are_fields_of_the_kind() -> None:
    step = make(
        step_doc(
            stable_for="10m",
            failure_limit=2,
            error_limit=3,
            role_arn="arn:aws:iam::222233334444:role/gate-reader",
            region="eu-west-1",
        )
    )
    assert (step.stable_for, step.failure_limit, step.error_limit) == (600, 2, 3)
    assert step.acting_as("run-1", "errors") == AwsTarget(
        "arn:aws:iam::222233334444:role/gate-reader", None, "eu-west-1", "run-1-errors"
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"queries": [{"id": "Err", "metric": ERRORS}]},
            "steps[0].metrics.queries[0].id: invalid query id 'Err': a lowercase "
            "letter, then letters, digits and _",
        ),
        (
            {"queries": [{"id": "err", "metric": ERRORS, "expression": "1"}]},
            "steps[0].metrics.queries[0]: query 'err': give exactly one of "
            "'metric' and 'expression'",
        ),
        (
            {"queries": [{"id": "err", "metric": ERRORS}, {"id": "err", "expression": "1"}]},
            "query ids must be unique: err repeated",
        ),
        (
            {"queries": [{"id": "err", "metric": {**ERRORS, "stat": "Total"}}]},
            "steps[0].metrics.queries[0].metric.stat: invalid statistic 'Total'",
        ),
        (
            {"queries": [{"id": "err", "metric": {**ERRORS, "unit": "Things"}}]},
            "invalid unit 'Things'",
        ),
        (
            {"queries": [{"id": "err", "metric": ERRORS, "return": False}]},
            'every query has "return": false: nothing to judge',
        ),
        (
            {"queries": [{"id": "err", "metric": ERRORS}, {"id": "r", "expression": "errs / 2"}]},
            "query 'r': its expression names errs, which no query is (ids: err, r)",
        ),
        ({"period": "45s"}, "invalid period 45s: a multiple of 60s, or 1, 5, 10, 20 or 30s"),
        ({"period": "10m", "window": "5m"}, "window 5m is shorter than the period 10m"),
        ({"period": "1m", "window": "2d"}, "is more than 1440 points"),
        ({"period": "10s", "window": "4h"}, "the window must be at most 3h"),
        ({"missing": "zero"}, "steps[0].metrics.missing: Input should be 'ignore'"),
    ],
)
def test_bad_queries_are_refused_naming_the_field(change: dict[str, Any], said: str) -> None:
    doc = step_doc()
    doc["metrics"] = {**doc["metrics"], **change}
    assert said in refused(doc)


def test_conditions_must_read_returned_queries() -> None:
    doc = step_doc(until="rate.latest < `1`")
    assert "steps[0]: until reads rate, which no returned query is" in refused(doc)
    doc = step_doc(until=None, fail_if=None)
    assert "metrics: give 'until', 'fail_if' or both" in refused(doc)
    doc = step_doc(fail_if="err.max >")
    assert "steps[0].fail_if" in refused(doc)


def test_expressions_may_name_functions_strings_and_ids() -> None:
    queries = [
        {"id": "err", "metric": ERRORS, "return": False},
        {"id": "req", "metric": {**ERRORS, "name": "RequestCount"}, "return": False},
        {"id": "rate", "expression": "IF(req > 0, 100 * FILL(err, 0) / req, 0)"},
        {"id": "found", "expression": "SUM(SEARCH('{AWS/ApplicationELB,x} errors', 'Sum'))"},
        {"id": "insights", "expression": 'SELECT SUM(errors) FROM "AWS/ApplicationELB"'},
    ]
    doc = step_doc(until="rate.latest < `1`", fail_if="found.max > `5` || insights.max > `9`")
    doc["metrics"]["queries"] = queries
    assert make(doc).metrics.returned == ["rate", "found", "insights"]


def test_return_false_survives_rendering_templates() -> None:
    doc = step_doc()
    doc["metrics"]["queries"] = [
        {"id": "err", "metric": {**ERRORS, "dimensions": {"LB": "${pipeline.pipelineName}"}}},
        {"id": "hidden", "metric": ERRORS, "return": False},
    ]
    rendered = make(doc).rendered({"pipeline": {"pipelineName": "app/y/2"}})
    assert isinstance(rendered, MetricsStep)
    queries = rendered.metrics.queries
    assert queries[0].metric is not None and queries[0].metric.dimensions == {"LB": "app/y/2"}
    assert queries[1].return_ is False


# endregion

# region the request and the document


def test_one_request_over_the_window_of_the_gates_clock() -> None:
    doc = step_doc()
    doc["metrics"]["queries"] = [
        {"id": "err", "metric": {**ERRORS, "unit": "Count"}, "return": False, "label": "5xx"},
        {"id": "rate", "expression": "err * 2"},
    ]
    doc.update(until="rate.latest < `1`", fail_if=None)
    cloudwatch = FakeCloudWatch({"rate": minutes(0.5)})
    assert isinstance(poll(make(doc), cloudwatch), Done)
    (call,) = cloudwatch.calls
    assert call["StartTime"] == datetime.fromtimestamp(T0 - 300, UTC)
    assert call["EndTime"] == datetime.fromtimestamp(T0, UTC)
    assert call["ScanBy"] == "TimestampAscending"
    assert call["MetricDataQueries"] == [
        {
            "Id": "err",
            "ReturnData": False,
            "Label": "5xx",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApplicationELB",
                    "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": [],
                },
                "Period": 60,
                "Stat": "Sum",
                "Unit": "Count",
            },
        },
        {"Id": "rate", "ReturnData": True, "Expression": "err * 2", "Period": 60},
    ]


def test_the_document_has_each_returned_querys_points_oldest_first_and_statistics() -> None:
    step = make(step_doc(until="err.values == `[1.0, 4.0, 2.0]`", fail_if=None))
    outcome = poll(step, FakeCloudWatch({"err": minutes(1, 4, 2)}))
    assert isinstance(outcome, Done)
    assert outcome.result == {
        "err": {
            "values": [1.0, 4.0, 2.0],
            "timestamps": ["2027-01-15T07:57:00Z", "2027-01-15T07:58:00Z", "2027-01-15T07:59:00Z"],
            "latest": 2.0,
            "min": 1.0,
            "max": 4.0,
            "avg": pytest.approx(7 / 3),
            "sum": 7.0,
            "count": 3,
            "label": "err",
        }
    }


def test_the_result_keeps_the_statistics_and_only_the_last_points() -> None:
    values = [float(i) for i in range(40)]
    step = make(step_doc(until="err.count == `40`", fail_if=None))
    step = step.model_copy(update={"metrics": step.metrics.model_copy(update={"window": 3600})})
    outcome = poll(step, FakeCloudWatch({"err": minutes(*values)}))
    assert isinstance(outcome, Done)
    kept = outcome.result["err"]
    assert kept["count"] == 40 and kept["max"] == 39 and kept["sum"] == sum(values)
    assert kept["values"] == values[-RESULT_POINTS:]
    assert len(kept["timestamps"]) == RESULT_POINTS


def test_pages_are_merged() -> None:
    cloudwatch = FakeCloudWatch({"err": minutes(0, 0, 3, 0, 0)})
    cloudwatch.page_size = 2
    outcome = poll(make(step_doc(until="err.count == `5`", fail_if=None)), cloudwatch)
    assert isinstance(outcome, Done), outcome
    assert [c.get("NextToken") for c in cloudwatch.calls] == [None, "2", "4"]
    assert outcome.result["err"]["values"] == [0, 0, 3, 0, 0]


def test_endless_pages_are_a_configuration_error() -> None:
    cloudwatch = FakeCloudWatch({"err": minutes(1)})
    cloudwatch.pages_forever = True
    outcome = poll(make(step_doc()), cloudwatch)
    assert outcome == Failed(
        f"step 'errors': GetMetricData gave more than {MAX_PAGES} pages; shorten the window "
        "or lengthen the period",
        FailureType.CONFIGURATION_ERROR,
    )
    assert len(cloudwatch.calls) == MAX_PAGES


# endregion

# region outcomes


def test_until_fail_if_and_neither() -> None:
    step = make(step_doc())
    assert isinstance(poll(step, FakeCloudWatch({"err": minutes(3, 0.5)})), Done)
    assert poll(step, FakeCloudWatch({"err": minutes(9, 2)})) == Failed(
        "step 'errors': fail_if is true (err.max > `5`): err max 9 (latest 2, 2 points)",
        by_condition=True,
    )
    assert poll(step, FakeCloudWatch({"err": minutes(0.25, 2)})) == Pending(
        "err latest 2 (max 2, 2 points); until false"
    )


def test_without_until_the_step_is_done_when_fail_if_does_not_hold() -> None:
    step = make(step_doc(until=None))
    assert isinstance(poll(step, FakeCloudWatch({"err": minutes(3)})), Done)
    failed = poll(step, FakeCloudWatch({"err": minutes(6)}))
    assert isinstance(failed, Failed) and failed.by_condition


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("ignore", Pending("no datapoints for err in the last 5m (missing: ignore)")),
        (
            "breaching",
            Failed(
                "step 'errors': no datapoints for err in the last 5m (missing: breaching)",
                by_condition=True,
            ),
        ),
        (
            "fail",
            Failed(
                "step 'errors': no datapoints for err in the last 5m (missing: fail); check the "
                "namespace, name, dimensions and stat",
                FailureType.CONFIGURATION_ERROR,
            ),
        ),
    ],
)
def test_missing_datapoints_decide_the_poll_alone(missing: str, expected: Outcome) -> None:
    doc = step_doc(fail_if="err.max > `5` || other.max > `5`")
    doc["metrics"]["queries"].append({"id": "other", "metric": ERRORS})
    doc["metrics"]["missing"] = missing
    # `other` is breaching, but `err` has no datapoints: missing decides.
    assert poll(make(doc), FakeCloudWatch({"other": minutes(9)})) == expected


def test_missing_not_breaching_is_done_with_empty_statistics() -> None:
    doc = step_doc()
    doc["metrics"]["missing"] = "not_breaching"
    outcome = poll(make(doc), FakeCloudWatch({}))
    assert isinstance(outcome, Done)
    assert outcome.result["err"] == {
        "values": [],
        "timestamps": [],
        "latest": None,
        "min": None,
        "max": None,
        "avg": None,
        "sum": None,
        "count": 0,
        "label": "err",
    }


def test_non_finite_values_are_not_points() -> None:
    outcome = poll(make(step_doc()), FakeCloudWatch({"err": minutes(float("nan"), 0.5)}))
    assert isinstance(outcome, Done) and outcome.result["err"]["count"] == 1


# endregion

# region errors


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            client_error("Throttling", operation="GetMetricData"),
            Pending("CloudWatch unavailable (Throttling); retrying", unobserved=True, error=True),
        ),
        (
            client_error("InternalServiceError", 500, "GetMetricData"),
            Pending(
                "CloudWatch unavailable (InternalServiceError); retrying",
                unobserved=True,
                error=True,
            ),
        ),
        (
            EndpointConnectionError(endpoint_url="https://monitoring"),
            Pending(
                "CloudWatch unreachable (EndpointConnectionError); retrying",
                unobserved=True,
                error=True,
            ),
        ),
        (
            client_error("AccessDenied", 403, "GetMetricData"),
            Failed(
                "step 'errors': GetMetricData failed (AccessDenied)", FailureType.PERMISSION_ERROR
            ),
        ),
        (
            client_error("ValidationError", 400, "GetMetricData"),
            Failed(
                "step 'errors': CloudWatch refused the queries (ValidationError: ValidationError)",
                FailureType.CONFIGURATION_ERROR,
            ),
        ),
    ],
)
def test_what_an_error_of_cloudwatch_means(error: Exception, expected: Outcome) -> None:
    cloudwatch = FakeCloudWatch({"err": minutes(1)})
    cloudwatch.errors.append(error)
    assert poll(make(step_doc()), cloudwatch) == expected


def test_a_query_error_is_an_error_not_a_verdict() -> None:
    cloudwatch = FakeCloudWatch({"err": minutes(9)})
    cloudwatch.status["err"] = "InternalError"
    outcome = poll(make(step_doc()), cloudwatch)
    assert outcome == Pending(
        "CloudWatch could not compute err (InternalError); retrying", error=True
    )
    assert isinstance(outcome, Pending) and outcome.erred and not outcome.unobserved


def test_a_forbidden_query_and_several_series_fail_the_gate() -> None:
    cloudwatch = FakeCloudWatch({"err": minutes(1)})
    cloudwatch.status["err"] = "Forbidden"
    outcome = poll(make(step_doc()), cloudwatch)
    assert outcome == Failed(
        "step 'errors': CloudWatch refused query 'err' (Forbidden)", FailureType.PERMISSION_ERROR
    )
    cloudwatch = FakeCloudWatch({"err": minutes(1)})
    cloudwatch.duplicate = "err"
    outcome = poll(make(step_doc()), cloudwatch)
    assert isinstance(outcome, Failed)
    assert outcome.failure_type is FailureType.CONFIGURATION_ERROR
    assert "query 'err' gives several time series" in outcome.message


def test_a_role_that_cannot_be_assumed() -> None:
    step = make(step_doc(role_arn="arn:aws:iam::222233334444:role/gate-reader"))
    cloudwatch = FakeCloudWatch({"err": minutes(1)})
    denied = poll(step, cloudwatch, role_error=RoleDenied("cannot assume role x (AccessDenied)"))
    assert denied == Failed(
        "step 'errors': cannot assume role x (AccessDenied)", FailureType.PERMISSION_ERROR
    )
    busy = poll(step, cloudwatch, role_error=RoleUnavailable("role x: STS unavailable"))
    assert isinstance(busy, Pending) and busy.unobserved
    assert cloudwatch.calls == []


# endregion


def test_through_the_engine_the_summary_shows_the_evidence() -> None:
    definition = parse_definition(json.dumps({"steps": [step_doc(every="1m")]}))
    clock = ManualClock(T0)
    cloudwatch = FakeCloudWatch({"err": minutes(0.5, 2)})
    services = FakeServices(cloudwatch=cloudwatch)
    state = engine.start(definition, "run-1", T0)
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.advance(definition, state, clock.now, budget, services)
    assert engine.summary(definition, state) == (
        "step 1/1 'errors': err latest 2 (max 2, 2 points); until false"
    )
    clock.t += 60
    cloudwatch.series["err"] = minutes(2, 0.5, end=T0 + 60)
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.status is RunStatus.SUCCEEDED
    assert state.steps[0].result["err"]["latest"] == 0.5


def test_a_definition_error_is_a_validation_error_of_the_model_too() -> None:
    with pytest.raises(ValidationError):
        MetricsStep.model_validate(step_doc(metrics={"queries": []}))
