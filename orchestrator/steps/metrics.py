"""`metrics`: query CloudWatch metrics (metric math included) and judge them with JMESPath.

    {"name": "errors", "every": "1m", "timeout": "45m",
     "metrics": {"queries": [
         {"id": "err", "metric": {"namespace": "AWS/ApplicationELB",
                                  "name": "HTTPCode_Target_5XX_Count",
                                  "dimensions": {"LoadBalancer": "app/checkout/123"},
                                  "stat": "Sum"}, "return": false},
         {"id": "req", "metric": {...RequestCount...}, "return": false},
         {"id": "rate", "expression": "100 * FILL(err, 0) / req"}],
      "period": "1m", "window": "5m", "missing": "ignore"},
     "until": "rate.latest < `1`", "fail_if": "rate.max > `5`"}

Each poll makes one GetMetricData request (all its pages, at most `MAX_PAGES`) over the
last `window` of the gate's clock, `[now - window, now)`, every query at `period`. The
conditions see one entry per *returned* query (`"return": false` keeps a query an input of
expressions only, CloudWatch's `ReturnData`), oldest point first:

    {"rate": {"values": [0.1, 0.4], "timestamps": ["2026-12-02T04:29:00Z", ...],
              "latest": 0.4, "min": 0.1, "max": 0.4, "avg": 0.25, "sum": 0.5, "count": 2,
              "label": "rate"}}

A returned query with no datapoints in the window is decided by `missing` alone (the
conditions are not evaluated): `ignore` (the default) decides nothing (the poll is pending),
`breaching` counts as `fail_if` true, `not_breaching` as `until` true, `fail` fails the gate
as a ConfigurationError naming the query.

Outcomes, for the measurement rules (`steps/_rules.py`): `Done` when `until` holds (no
`until`: when `fail_if` does not), `Failed(by_condition=True)` when `fail_if` holds,
`Pending(error=True)` when a query erred (StatusCode InternalError), `Pending(unobserved=
True)` when CloudWatch (or STS) was throttled, failing or unreachable; any other `Pending`
otherwise. A query CloudWatch refuses (a bad expression, an unknown stat) fails the gate
as a ConfigurationError with CloudWatch's message; AccessDenied as a PermissionError.

Result: per returned query, the statistics and the last `RESULT_POINTS` points (never every
datapoint: the result lives in the run's DynamoDB item). With `role_arn` and `region`
(`orchestrator.targets`) the metrics are another account's, or region's.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator import aws
from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.expressions import Expression, reads, search, truthy
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps._rules import Measured
from orchestrator.targets import RoleError, Target, acted_as, as_whom, role_outcome
from orchestrator.text import clip, counted, format_instant

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_cloudwatch import CloudWatchClient

    from orchestrator.model import StepState

MAX_QUERIES = 20
MAX_POINTS = 1440
"""Datapoints one query may span (`window / period`): 24 hours of one-minute data. With
`MAX_QUERIES` that is 28,800 points, well inside one GetMetricData page (100,800)."""
MAX_PAGES = 10
RESULT_POINTS = 10
"""How many of each query's latest points the step's result keeps."""
HIGH_RESOLUTION = (1, 5, 10, 20, 30)
"""Periods under a minute CloudWatch accepts (for metrics stored at one-second resolution);
any other period is a multiple of 60 seconds."""
HIGH_RESOLUTION_RETENTION = 3 * 3600.0
"""CloudWatch keeps sub-minute datapoints for three hours: a longer window would be empty."""
MAX_MESSAGE_CHARS = 300

_ID = re.compile(r"[a-z][a-zA-Z0-9_]{0,254}")
_STAT = re.compile(
    r"SampleCount|Average|Sum|Minimum|Maximum|IQM"
    r"|(p|tm|tc|ts|wm)\d{1,2}(\.\d{1,10})?|p100"
    r"|(TM|TC|TS|WM|PR)\([^()]{1,40}\)"
)
_RATES: tuple[str, ...] = ("Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes")
_RATES += ("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Count")
_UNITS = frozenset(
    (
        *("Seconds", "Microseconds", "Milliseconds", "Percent", "None"),
        *_RATES,
        *(f"{unit}/Second" for unit in _RATES),
    )
)
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_NAME_IN_EXPRESSION = re.compile(r"(?<![\w.])([a-z][a-zA-Z0-9_]*)\b(?!\s*\()")

Missing = Literal["ignore", "breaching", "not_breaching", "fail"]


class Metric(BaseModel):
    """One metric and the statistic to take of it at each period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict, max_length=30)
    stat: str
    unit: str | None = None

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, value: dict[str, str]) -> dict[str, str]:
        for name, dimension in value.items():
            if not 1 <= len(name) <= 255 or not 1 <= len(dimension) <= 1024:
                raise ValueError(
                    f"dimension {clip(name, 40)!r}: names are 1 to 255 characters, values 1 to 1024"
                )
        return value

    @field_validator("stat")
    @classmethod
    def _stat(cls, value: str) -> str:
        if not _STAT.fullmatch(value) and "${" not in value:
            raise ValueError(
                f"invalid statistic {clip(value, 40)!r} (use Sum, Average, Minimum, Maximum, "
                "SampleCount, IQM, a percentile like p99 or p99.9, or tm90, TM(10%:90%)...)"
            )
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value not in _UNITS and "${" not in value:
            raise ValueError(f"invalid unit {clip(value, 40)!r} (a CloudWatch unit: Count...)")
        return value

    def request(self, period: int) -> dict[str, Any]:
        """GetMetricData's MetricStat."""
        stat: dict[str, Any] = {
            "Metric": {
                "Namespace": self.namespace,
                "MetricName": self.name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
            },
            "Period": period,
            "Stat": self.stat,
        }
        if self.unit is not None:
            stat["Unit"] = self.unit
        return stat


class MetricQuery(BaseModel):
    """A metric, or a metric math expression over other queries' ids."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    id: str
    metric: Metric | None = None
    expression: str | None = Field(default=None, min_length=1, max_length=2048)
    label: str | None = Field(default=None, min_length=1, max_length=1024)
    return_: bool = Field(default=True, alias="return")
    """False: an input of expressions only (CloudWatch's ReturnData), not in the document."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(
                f"invalid query id {clip(value, 40)!r}: a lowercase letter, then letters, "
                "digits and _ (CloudWatch's rule for metric math names)"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MetricQuery:
        if (self.metric is None) == (self.expression is None):
            raise ValueError(f"query '{self.id}': give exactly one of 'metric' and 'expression'")
        return self

    def request(self, period: int) -> dict[str, Any]:
        """GetMetricData's MetricDataQuery."""
        query: dict[str, Any] = {"Id": self.id, "ReturnData": self.return_}
        if self.metric is not None:
            query["MetricStat"] = self.metric.request(period)
        else:
            query["Expression"] = self.expression
            query["Period"] = period  # used by Metrics Insights queries, ignored by math
        if self.label is not None:
            query["Label"] = self.label
        return query

    def names_read(self) -> set[str]:
        """The query ids a metric math expression names (none for a metric, or a Metrics
        Insights `SELECT`): lowercase words that are not functions, outside quoted text."""
        if self.expression is None or self.expression.lstrip().upper().startswith("SELECT"):
            return set()
        text = _QUOTED.sub(" ", self.expression)
        return set(_NAME_IN_EXPRESSION.findall(text))


class MetricsQuery(BaseModel):
    """The `metrics` field: what to ask GetMetricData at each poll."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queries: list[MetricQuery] = Field(min_length=1, max_length=MAX_QUERIES)
    period: Duration = 60.0
    window: Duration = 300.0
    missing: Missing = "ignore"

    @field_validator("period")
    @classmethod
    def _period(cls, value: float) -> float:
        if value != int(value) or not (value in HIGH_RESOLUTION or value % 60 == 0):
            raise ValueError(
                f"invalid period {format_duration(value)}: a multiple of 60s, or 1, 5, 10, 20 "
                "or 30s for high-resolution metrics"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MetricsQuery:
        ids = [query.id for query in self.queries]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"query ids must be unique: {', '.join(repeated)} repeated")
        if not any(query.return_ for query in self.queries):
            raise ValueError('every query has "return": false: nothing to judge')
        for query in self.queries:
            unknown = sorted(query.names_read() - set(ids) - {query.id})
            if unknown:
                raise ValueError(
                    f"query '{query.id}': its expression names {', '.join(unknown)}, "
                    f"which no query is (ids: {', '.join(ids)})"
                )
        if self.window < self.period:
            raise ValueError(
                f"window {format_duration(self.window)} is shorter than the period "
                f"{format_duration(self.period)}"
            )
        if self.window / self.period > MAX_POINTS:
            raise ValueError(
                f"window {format_duration(self.window)} at period {format_duration(self.period)} "
                f"is more than {MAX_POINTS} points: lengthen the period or shorten the window"
            )
        if self.period < 60 and self.window > HIGH_RESOLUTION_RETENTION:
            raise ValueError(
                "a period under 1m reads high-resolution data, which CloudWatch keeps for 3h: "
                "the window must be at most 3h"
            )
        return self

    @property
    def returned(self) -> list[str]:
        return [query.id for query in self.queries if query.return_]


class MetricsStep(Measured, Target, Step):
    """Query CloudWatch every `every`; done when `until` holds, failed when `fail_if` does."""

    kind: ClassVar[str] = "metrics"
    not_a_guard: ClassVar[str | None] = None
    default_every: ClassVar[float] = 60.0

    metrics: MetricsQuery
    until: Expression | None = None
    fail_if: Expression | None = None

    @model_validator(mode="after")
    def _conditions(self) -> MetricsStep:
        if self.until is None and self.fail_if is None:
            raise ValueError("metrics: give 'until', 'fail_if' or both")
        returned = self.metrics.returned
        for field, expression in (("until", self.until), ("fail_if", self.fail_if)):
            if expression is None:
                continue
            unknown = sorted({path[0] for path in reads(expression)} - set(returned))
            if unknown:
                raise ValueError(
                    f"{field} reads {', '.join(unknown)}, which no returned query is "
                    f"(the document has: {', '.join(returned)})"
                )
        return self

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        assert ctx.services is not None, "the engine was run without services"
        target = self.acting_as(ctx.run_id, self.name)
        try:
            client = ctx.services.aws("cloudwatch", target=target)
            acted_as(state, target)
            found = _get_metric_data(client, self.metrics, ctx.now)
        except RoleError as exc:
            return role_outcome(self.name, exc)
        except ClientError as exc:
            fault, code = aws.classify(exc), aws.describe(exc)
            if fault.transient:
                return Pending(
                    f"CloudWatch unavailable ({code}); retrying", unobserved=True, error=True
                )
            if fault is aws.AwsFault.DENIED:
                return Failed(
                    f"step '{self.name}': GetMetricData failed ({code}){as_whom(target)}",
                    FailureType.PERMISSION_ERROR,
                )
            said = clip(str(exc.response.get("Error", {}).get("Message", "")), MAX_MESSAGE_CHARS)
            return Failed(
                f"step '{self.name}': CloudWatch refused the queries ({code}"
                f"{': ' + said if said else ''})",
                FailureType.CONFIGURATION_ERROR,
            )
        except BotoCoreError as exc:
            return Pending(
                f"CloudWatch unreachable ({type(exc).__name__}); retrying",
                unobserved=True,
                error=True,
            )
        except _Unusable as exc:
            return Failed(f"step '{self.name}': {exc}", exc.failure_type)
        return self._judge(found)

    def _judge(self, found: Mapping[str, _Series]) -> Outcome:
        spec = self.metrics
        erred = [i for i in spec.returned if found[i].status == "InternalError"]
        if erred:
            return Pending(
                f"CloudWatch could not compute {', '.join(erred)} (InternalError); retrying",
                error=True,
            )
        document = {i: found[i].document() for i in spec.returned}
        empty = [i for i in spec.returned if not found[i].values]
        if empty:
            return self._missing(empty, document)
        focus = self._focus()
        if self.fail_if is not None and truthy(search(self.fail_if, document)):
            return Failed(
                f"step '{self.name}': fail_if is true ({self.fail_if}): "
                f"{_evidence(focus, document[focus], 'max')}",
                by_condition=True,
            )
        if self.until is None or truthy(search(self.until, document)):
            return Done(_result(document))
        return Pending(f"{_evidence(focus, document[focus], 'latest')}; until false")

    def _missing(self, empty: list[str], document: dict[str, dict[str, Any]]) -> Outcome:
        mode = self.metrics.missing
        none = (
            f"no datapoints for {', '.join(empty)} in the last "
            f"{format_duration(self.metrics.window)}"
        )
        if mode == "fail":
            return Failed(
                f"step '{self.name}': {none} (missing: fail); check the namespace, name, "
                "dimensions and stat",
                FailureType.CONFIGURATION_ERROR,
            )
        if mode == "breaching":
            return Failed(f"step '{self.name}': {none} (missing: breaching)", by_condition=True)
        if mode == "not_breaching":
            return Done(_result(document))
        return Pending(f"{none} (missing: ignore)")

    def _focus(self) -> str:
        """The query a summary shows: the first one `until` (else `fail_if`) reads, else the
        last returned query (often the expression the others feed)."""
        for expression in (self.until, self.fail_if):
            if expression is not None:
                for path in reads(expression):
                    return path[0]
        return self.metrics.returned[-1]


class _Unusable(Exception):
    """GetMetricData answered with something no later poll will fix."""

    def __init__(self, message: str, failure_type: FailureType) -> None:
        super().__init__(message)
        self.failure_type = failure_type


class _Series:
    """One query's datapoints, oldest first, merged across pages."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.points: dict[float, float] = {}
        self.status = "Complete"

    def add(self, result: Mapping[str, Any]) -> None:
        for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.points[at.timestamp()] = float(value)
        if result.get("StatusCode") == "InternalError":
            self.status = "InternalError"  # one bad page spoils the series

    @property
    def values(self) -> list[float]:
        return [self.points[at] for at in sorted(self.points)]

    def document(self) -> dict[str, Any]:
        times = sorted(self.points)
        values = [self.points[at] for at in times]
        count = len(values)
        return {
            "values": values,
            "timestamps": [format_instant(at, "iso") for at in times],
            "latest": values[-1] if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "avg": sum(values) / count if values else None,
            "sum": sum(values) if values else None,
            "count": count,
            "label": self.label,
        }


def _get_metric_data(
    client: CloudWatchClient, spec: MetricsQuery, now: float
) -> dict[str, _Series]:
    """Every returned query's datapoints in `[now - window, now)`: one GetMetricData request,
    all its pages (at most MAX_PAGES)."""
    period = int(spec.period)
    request: dict[str, Any] = {
        "MetricDataQueries": [query.request(period) for query in spec.queries],
        "StartTime": datetime.fromtimestamp(now - spec.window, UTC),
        "EndTime": datetime.fromtimestamp(now, UTC),
        "ScanBy": "TimestampAscending",
    }
    labels = {query.id: query.label or query.id for query in spec.queries}
    found = {i: _Series(labels[i]) for i in spec.returned}
    token: str | None = None
    for _ in range(MAX_PAGES):
        more: dict[str, Any] = {"NextToken": token} if token else {}
        page = client.get_metric_data(**request, **more)
        seen: set[str] = set()
        for result in page.get("MetricDataResults", []):
            query_id = str(result.get("Id", ""))
            if query_id not in found:
                continue  # not ours to judge (CloudWatch returns only ReturnData queries)
            if query_id in seen:
                raise _Unusable(
                    f"query '{query_id}' gives several time series (a SEARCH or GROUP BY): "
                    "aggregate them into one, e.g. SUM(SEARCH(...))",
                    FailureType.CONFIGURATION_ERROR,
                )
            seen.add(query_id)
            found[query_id].add(result)
            if result.get("StatusCode") == "Forbidden":
                raise _Unusable(
                    f"CloudWatch refused query '{query_id}' (Forbidden"
                    f"{_messages(result.get('Messages', []))})",
                    FailureType.PERMISSION_ERROR,
                )
        token = page.get("NextToken")
        if not token:
            return found
    raise _Unusable(
        f"GetMetricData gave more than {MAX_PAGES} pages; shorten the window or lengthen the "
        "period",
        FailureType.CONFIGURATION_ERROR,
    )


def _messages(messages: Sequence[Mapping[str, Any]]) -> str:
    said = "; ".join(f"{m.get('Code', '')}: {m.get('Value', '')}" for m in messages[:3])
    return f": {clip(said, MAX_MESSAGE_CHARS)}" if said else ""


def _number(value: float | None) -> str:
    return "none" if value is None else format(value, ".6g")


def _evidence(name: str, entry: Mapping[str, Any], lead: Literal["latest", "max"]) -> str:
    """`rate latest 0.42 (max 0.9, 5 points)`: what a summary shows of a query."""
    other = "max" if lead == "latest" else "latest"
    points = counted(int(entry["count"]), "point")
    return f"{name} {lead} {_number(entry[lead])} ({other} {_number(entry[other])}, {points})"


def _result(document: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The step's result: each query's statistics and its last RESULT_POINTS points."""
    return {
        name: {
            **{k: v for k, v in entry.items() if k not in ("values", "timestamps")},
            "values": entry["values"][-RESULT_POINTS:],
            "timestamps": entry["timestamps"][-RESULT_POINTS:],
        }
        for name, entry in document.items()
    }
