"""A local CloudWatch endpoint that adds metric math (and pages, and faults) to moto's.

moto's GetMetricData computes metric statistics from what PutMetricData stored, but its
"metric math" only copies a query whose id is the whole expression (`100 * err / req` gives
nothing), and it never pages. This peer speaks CloudWatch's protocol as botocore sends it
(JSON 1.0 with `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`; the service is
`awsQueryCompatible`, so errors carry `x-amzn-query-error: Code;Sender`) and:

- forwards every request but GetMetricData to moto unchanged (PutMetricData included);
- answers GetMetricData by asking moto for the `MetricStat` queries (all of them, returned),
  then evaluating the expressions itself: numbers, query ids, `+ - * /`, parentheses and
  `FILL(x, value)`; a point is computed where every operand has one (non-finite results
  are dropped, as CloudWatch drops them); `ReturnData: false` queries are left out;
- with `page_size`, returns at most that many points per result per page, with NextToken;
- `fail_next(*fates)`: the next GetMetricData requests get "throttled" (400 Throttling),
  "unavailable" (503 ServiceUnavailable), "invalid" (400 ValidationError) or "internal"
  (200, every result with StatusCode InternalError, CloudWatch's per-query error).

`calls` records every GetMetricData request as decoded JSON.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import threading
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from tests.http_stub import Loopback, QuietHandler

TARGET = "GraniteServiceVersion20100801."
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
_FAULTS = {
    "throttled": (400, "Throttling", "Rate exceeded"),
    "unavailable": (503, "ServiceUnavailable", "Service unavailable"),
    "invalid": (400, "ValidationError", "Error in expression 'rate': Unrecognized token"),
}
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(.))")

Series = dict[int, float]


class CloudWatchPeer(Loopback):
    """CloudWatch with metric math, in front of moto's server at `upstream`."""

    def __init__(self, upstream: str, page_size: int | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.page_size = page_size
        self.calls: list[dict[str, Any]] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        peer = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                peer._handle(self)

        super().__init__(Handler)

    def fail_next(self, *fates: str) -> None:
        assert set(fates) <= {*_FAULTS, "internal"}, fates
        with self._lock:
            self._faults.extend(fates)

    def get_metric_data_calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.calls)

    # -- the wire ----------------------------------------------------------------------

    def _handle(self, handler: QuietHandler) -> None:
        body = handler.body()
        target = handler.headers.get("X-Amz-Target", "")
        if target != TARGET + "GetMetricData":
            status, headers, data = self._forward(handler, body)
            handler.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        request = json.loads(body)
        with self._lock:
            self.calls.append(request)
            fate = self._faults.popleft() if self._faults else None
        if fate in _FAULTS:
            status, code, message = _FAULTS[fate]
            handler.reply(
                status,
                json.dumps(
                    {"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}
                ).encode(),
                {"x-amzn-query-error": f"{code};{'Receiver' if status >= 500 else 'Sender'}"},
                content_type="application/x-amz-json-1.0",
            )
            return
        answer = self._get_metric_data(handler, request, internal=fate == "internal")
        handler.reply(200, json.dumps(answer).encode(), content_type="application/x-amz-json-1.0")

    def _forward(
        self, handler: QuietHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request("POST", handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    # -- GetMetricData -----------------------------------------------------------------

    def _get_metric_data(
        self, handler: QuietHandler, request: dict[str, Any], internal: bool
    ) -> dict[str, Any]:
        queries = request["MetricDataQueries"]
        stats = [
            {**query, "ReturnData": True, "Label": query.get("Label", query["Id"])}
            for query in queries
            if "MetricStat" in query
        ]
        found: dict[str, Series] = {}
        if stats:
            upstream = {**request, "MetricDataQueries": stats}
            upstream.pop("NextToken", None)
            status, _, data = self._forward(handler, json.dumps(upstream).encode())
            assert status == 200, data
            for result in json.loads(data)["MetricDataResults"]:
                found[result["Id"]] = dict(
                    zip((int(t) for t in result["Timestamps"]), result["Values"], strict=True)
                )
        expressions = {q["Id"]: q["Expression"] for q in queries if "Expression" in q}
        start, end = int(request["StartTime"]), int(request["EndTime"])
        period = next(
            (int(q.get("MetricStat", {}).get("Period") or q.get("Period") or 60) for q in queries),
            60,
        )
        grid = list(range(start, end, period))
        evaluator = _Math(found, expressions, grid)
        offset = int(request.get("NextToken") or 0)
        results, more = [], False
        for query in queries:
            if not query.get("ReturnData", True):
                continue
            series = evaluator.series(query["Id"])
            times = sorted(series)
            if request.get("ScanBy", "TimestampDescending") == "TimestampDescending":
                times.reverse()
            if self.page_size is not None:
                more = more or offset + self.page_size < len(times)
                times = times[offset : offset + self.page_size]
            results.append(
                {
                    "Id": query["Id"],
                    "Label": query.get("Label", query["Id"]),
                    "Timestamps": times,
                    "Values": [series[t] for t in times],
                    "StatusCode": "InternalError" if internal else "Complete",
                }
            )
        answer: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if more and self.page_size is not None:
            answer["NextToken"] = str(offset + self.page_size)
        return answer


class _Math:
    """Metric math over series keyed by timestamp (a tiny subset: see the module)."""

    def __init__(self, found: dict[str, Series], expressions: dict[str, str], grid: list[int]):
        self.found = dict(found)
        self.expressions = expressions
        self.grid = grid

    def series(self, query_id: str) -> Series:
        if query_id not in self.found:
            value = self._evaluate(self.expressions[query_id])
            self.found[query_id] = value if isinstance(value, dict) else {}
        return self.found[query_id]

    def _evaluate(self, text: str) -> Series | float:
        tokens = [m.group(1) or m.group(2) or m.group(3) for m in _TOKEN.finditer(text)]
        tokens = [t for t in tokens if t and not t.isspace()]
        value, rest = self._sum(tokens)
        assert not rest, f"unparsed: {rest}"
        return value

    def _sum(self, tokens: list[str]) -> tuple[Series | float, list[str]]:
        left, tokens = self._product(tokens)
        while tokens and tokens[0] in "+-":
            op, (right, tokens) = tokens[0], self._product(tokens[1:])
            left = _apply(op, left, right)
        return left, tokens

    def _product(self, tokens: list[str]) -> tuple[Series | float, list[str]]:
        left, tokens = self._unary(tokens)
        while tokens and tokens[0] in "*/":
            op, (right, tokens) = tokens[0], self._unary(tokens[1:])
            left = _apply(op, left, right)
        return left, tokens

    def _unary(self, tokens: list[str]) -> tuple[Series | float, list[str]]:
        if tokens[0] == "-":
            value, rest = self._unary(tokens[1:])
            return _apply("*", -1.0, value), rest
        return self._atom(tokens)

    def _atom(self, tokens: list[str]) -> tuple[Series | float, list[str]]:
        head, rest = tokens[0], tokens[1:]
        if head == "(":
            value, rest = self._sum(rest)
            assert rest[0] == ")"
            return value, rest[1:]
        if head == "FILL":
            assert rest[0] == "("
            series, rest = self._sum(rest[1:])
            assert rest[0] == ","
            fill, rest = self._sum(rest[1:])
            assert rest[0] == ")" and isinstance(series, dict) and isinstance(fill, float)
            return {t: series.get(t, fill) for t in sorted({*self.grid, *series})}, rest[1:]
        if head[0].isdigit():
            return float(head), rest
        return dict(self.series(head)), rest


def _apply(op: str, left: Series | float, right: Series | float) -> Series | float:
    def one(a: float, b: float) -> float:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b if b else math.inf

    if isinstance(left, float) and isinstance(right, float):
        return one(left, right)
    if isinstance(left, float):
        assert isinstance(right, dict)
        out = {t: one(left, v) for t, v in right.items()}
    elif isinstance(right, float):
        out = {t: one(v, right) for t, v in left.items()}
    else:
        out = {t: one(left[t], right[t]) for t in left.keys() & right.keys()}
    return {t: v for t, v in out.items() if math.isfinite(v)}
