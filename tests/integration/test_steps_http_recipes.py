"""docs/STEPS.md's Prometheus and Datadog recipes (the `http` kind), run as written in the
docs against local servers answering in those APIs' formats.

The gates are read from the docs' json blocks; only the host is pointed at the stub (and
the Datadog secret's name at one made for the test in moto's Secrets Manager). The stubs
check what the real APIs would: Prometheus gets its PromQL URL-decoded, Datadog refuses a
request without both keys (403, `{"errors": ["Forbidden"]}`) or without integer `from`/`to`.
The Datadog keys are secret canaries for the whole session (tests/reliability/canaries.py)
and are looked for, besides, in the function's logs, the runs table and the answers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.http_stub import Loopback, QuietHandler
from tests.integration.test_steps_rig import StepsRig, steps_rig
from tests.integration.test_steps_secrets import assert_nowhere
from tests.reliability.canaries import SCANNER

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.local.driver import ActionResult

STEPS_DOC = Path(__file__).resolve().parents[2] / "docs" / "STEPS.md"
PROMQL = (
    'sum(rate(http_requests_total{job="checkout",code=~"5.."}[5m])) / '
    'sum(rate(http_requests_total{job="checkout"}[5m]))'
)
DATADOG_QUERY = (
    "(sum:trace.http.request.errors{service:checkout}.as_count().rollup(sum,300) / "
    "sum:trace.http.request.hits{service:checkout}.as_count().rollup(sum,300)) * 100"
)


def recipe(name: str) -> dict[str, Any]:
    """The gate of docs/STEPS.md whose step is called `name`."""
    for block in re.findall(r"```json\n(.*?)```", STEPS_DOC.read_text(), flags=re.DOTALL):
        try:
            found = json.loads(block)
        except ValueError:
            continue
        if isinstance(found, dict) and [s.get("name") for s in found.get("steps", [])] == [name]:
            return dict(found)
    raise AssertionError(f"docs/STEPS.md has no recipe '{name}'")


def pointed_at(gate: dict[str, Any], host: str, url: str) -> dict[str, Any]:
    text = json.dumps(gate)
    assert host in text
    return dict(json.loads(text.replace(host, url)))


class QueryApi(Loopback):
    """GET /api/v1/query: answers from a script of bodies (the last repeats); records the
    query string and headers of each request; `check(params, headers)` may refuse one with
    (status, body)."""

    def __init__(self, script: list[Any], check: Any = None) -> None:
        self.script = list(script)
        self.requests: list[tuple[dict[str, list[str]], dict[str, str]]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = parse_qs(parts.query)
                headers = dict(self.headers.items())
                with api._lock:
                    api.requests.append((params, headers))
                    refusal = check(params, headers) if check else None
                    body = api.script.pop(0) if len(api.script) > 1 else api.script[0]
                if parts.path != "/api/v1/query":
                    self.reply(404, b'{"errors": ["Not found"]}')
                elif refusal is not None:
                    self.reply(refusal[0], json.dumps(refusal[1]).encode())
                else:
                    self.reply(200, json.dumps(body).encode())

        super().__init__(Handler)


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def summaries(result: ActionResult) -> list[str]:
    return [
        job.answer["params"].get("executionDetails", {}).get("summary", "")
        for job in result.jobs
        if job.answer
    ]


# region Prometheus


def prometheus(value: str | None) -> dict[str, Any]:
    """An instant vector answer of /api/v1/query (no series when `value` is None)."""
    result = [] if value is None else [{"metric": {}, "value": [1796185939.781, value]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_the_prometheus_recipe_waits_for_a_low_error_ratio(rig: StepsRig) -> None:
    with QueryApi([prometheus(None), prometheus("0.02"), prometheus("0.004")]) as api:
        gate = pointed_at(recipe("prometheus"), "https://prometheus.example.com", api.url)
        gate["outputs"] = {"Ratio": "steps.prometheus.body.data.result[0].value[1]"}
        result = rig.run(gate)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Ratio": "0.004"}
    assert [params["query"] for params, _ in api.requests] == [[PROMQL]] * 3
    said = summaries(result)
    assert any('until is null: body.status is "success"' in s for s in said)
    assert any('until false: body.status is "success"' in s for s in said)


def test_the_prometheus_recipe_fails_on_a_high_error_ratio(rig: StepsRig) -> None:
    with QueryApi([prometheus("0.02"), prometheus("0.07")]) as api:
        gate = pointed_at(recipe("prometheus"), "https://prometheus.example.com", api.url)
        result = rig.run(gate)
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert result.failure_message == (
        "step 'prometheus': fail_if is true "
        "(to_number(body.data.result[0].value[1]) > `0.05`); HTTP 200"
    )


# endregion

# region Datadog


def datadog(*values: float | None) -> dict[str, Any]:
    """A /api/v1/query answer: one series, one point per five minutes."""
    points = [[1796185800000.0 + 300_000 * i, v] for i, v in enumerate(values)]
    series = {
        "metric": "trace.http.request.errors",
        "expression": DATADOG_QUERY,
        "scope": "service:checkout",
        "interval": 300,
        "length": len(points),
        "pointlist": points,
    }
    return {"status": "ok", "res_type": "time_series", "query": DATADOG_QUERY, "series": [series]}


def datadog_keys(rig: StepsRig) -> tuple[str, dict[str, str]]:
    """A secret like the recipe's, holding fresh keys (session-wide canaries)."""
    name = f"datadog/gate-reader-{uuid.uuid4().hex[:8]}"
    keys = {"api_key": uuid.uuid4().hex, "app_key": uuid.uuid4().hex + uuid.uuid4().hex[:8]}
    for which, value in keys.items():
        SCANNER.add(value, f"a Datadog {which} in Secrets Manager")
    rig.aws("secretsmanager").create_secret(Name=name, SecretString=json.dumps(keys))
    return name, keys


def keys_checked(keys: dict[str, str]) -> Any:
    def check(params: dict[str, list[str]], headers: dict[str, str]) -> Any:
        given = {k.lower(): v for k, v in headers.items()}
        if (given.get("dd-api-key"), given.get("dd-application-key")) != (
            keys["api_key"],
            keys["app_key"],
        ):
            return 403, {"errors": ["Forbidden"]}
        frm, to = params.get("from", [""])[0], params.get("to", [""])[0]
        if not (frm.isdigit() and to.isdigit() and int(frm) <= int(to)):
            return 400, {"errors": ["Invalid from/to"]}
        return None

    return check


def datadog_gate(rig: StepsRig, url: str, secret: str) -> dict[str, Any]:
    """The recipe, pointed at the stub and the test's secret."""
    gate = pointed_at(recipe("datadog"), "https://api.datadoghq.com", url)
    text = json.dumps(gate).replace('"datadog/gate-reader"', json.dumps(secret))
    return dict(json.loads(text))


def test_the_datadog_recipe_sends_the_keys_from_the_secret_and_nowhere_else(
    rig: StepsRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # every logger at INFO (botocore's DEBUG prints bodies)
    secret, keys = datadog_keys(rig)
    script = [datadog(0.2, 3.0, None), datadog(0.2, 0.9, 0.4, None)]
    with QueryApi(script, keys_checked(keys)) as api:
        gate = datadog_gate(rig, api.url, secret)
        gate["outputs"] = {"Query": "steps.datadog.body.query"}
        result = rig.run(gate)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Query": DATADOG_QUERY}
    assert len(api.requests) == 2
    for params, headers in api.requests:
        assert params["query"] == [DATADOG_QUERY]
        given = {k.lower(): v for k, v in headers.items()}
        assert (given["dd-api-key"], given["dd-application-key"]) == (
            keys["api_key"],
            keys["app_key"],
        )
    said = summaries(result)
    assert any("until false" in s for s in said)  # 3.0 was the latest point at first
    assert_nowhere(rig, [result], caplog, keys.values())


def test_the_datadog_recipe_fails_on_a_spike_and_on_a_wrong_key(
    rig: StepsRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secret, keys = datadog_keys(rig)
    with QueryApi([datadog(0.2, 7.5, 0.3)], keys_checked(keys)) as api:
        spiked = rig.run(datadog_gate(rig, api.url, secret))
    assert spiked.status == "Failed" and spiked.failure_type == "JobFailed"
    assert spiked.failure_message == (
        "step 'datadog': fail_if is true "
        "(max(body.series[0].pointlist[?@[1] != null][1] || `[]`) > `5`); HTTP 200"
    )
    wrong = {"api_key": keys["api_key"], "app_key": "not-the-key"}
    with QueryApi([datadog(0.2)], keys_checked(wrong)) as api:
        gate = datadog_gate(rig, api.url, secret)
        gate["steps"][0]["timeout"] = "5m"
        refused = rig.run(gate)
    assert refused.status == "Failed"
    assert "last HTTP 403): until false: body has no 'status'" in (refused.failure_message or "")
    assert_nowhere(rig, [spiked, refused], caplog, keys.values())


def test_the_datadog_recipe_asks_from_the_gates_start_to_each_polls_now(rig: StepsRig) -> None:
    """`${run.started}` and `${run.now}`: epoch seconds on the gate's clock."""
    secret, keys = datadog_keys(rig)
    with QueryApi([datadog(0.2)], keys_checked(keys)) as api:
        result = rig.run(datadog_gate(rig, api.url, secret))
    assert result.status == "Succeeded", result.failure_message
    ((params, _),) = api.requests
    start, end = int(params["from"][0]), int(params["to"][0])
    assert start <= end <= rig.clock.now() and start >= result.started_at - 1


# endregion
