"""`window` end to end: the handler, through the CodePipeline emulator's job loop on a
virtual clock, state in DynamoDB Local; change calendars from a local endpoint speaking
SSM's JSON protocol (moto has no GetCalendarState), reached by boto3 through
AWS_ENDPOINT_URL_SSM exactly as the function reaches AWS."""

from __future__ import annotations

import json
import math
import re
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.windows import utc_text
from tests.http_stub import Loopback, QuietHandler
from tests.integration.test_steps_rig import StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year: no daylight saving to dodge here


class ChangeCalendars(Loopback):
    """SSM's GetCalendarState for calendars made of closed stretches (epoch seconds), over
    the JSON 1.1 protocol botocore speaks (X-Amz-Target: AmazonSSM.GetCalendarState).
    Several calendars are OPEN only when each is; the next transition is the combined one."""

    def __init__(self, calendars: dict[str, list[tuple[float, float]]]) -> None:
        self.calendars = calendars
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                target = self.headers.get("X-Amz-Target", "")
                body = json.loads(self.body() or b"{}")
                with stub._lock:
                    stub.requests.append({"target": target, **body})
                if target != "AmazonSSM.GetCalendarState":
                    self._error(400, "UnknownOperationException", target)
                    return
                unknown = [n for n in body.get("CalendarNames", []) if n not in stub.calendars]
                if unknown or not body.get("CalendarNames"):
                    self._error(400, "InvalidDocument", f"calendar {unknown} not found")
                    return
                when = datetime.fromisoformat(body["AtTime"].replace("Z", "+00:00")).timestamp()
                self._answer(stub.state(body["CalendarNames"], when))

            def _answer(self, document: dict[str, Any]) -> None:
                self.reply(200, json.dumps(document).encode(), content_type=JSON11)

            def _error(self, status: int, code: str, message: str) -> None:
                payload = json.dumps({"__type": code, "message": message}).encode()
                self.reply(status, payload, content_type=JSON11)

        super().__init__(Handler)

    def state(self, names: list[str], when: float) -> dict[str, Any]:
        stretches = [s for name in names for s in self.calendars[name]]
        closed = any(a <= when < b for a, b in stretches)
        edges = sorted({x for pair in stretches for x in pair if x > when and math.isfinite(x)})
        # the combined state changes at the first edge where it differs
        after = next(
            (edge for edge in edges if any(a <= edge < b for a, b in stretches) != closed), None
        )
        answer: dict[str, Any] = {"State": "CLOSED" if closed else "OPEN", "AtTime": iso(when)}
        if after is not None:
            answer["NextTransitionTime"] = iso(after)
        return answer


JSON11 = "application/x-amz-json-1.1"


def iso(epoch: float) -> str:
    return utc_text(epoch)


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def summaries(result: Any) -> list[str]:
    return [j.answer["params"]["executionDetails"]["summary"] for j in result.jobs if j.answer]


def test_a_gate_waits_for_a_window_that_opens_in_ten_minutes_and_passes_then(
    rig: StepsRig,
) -> None:
    now = rig.clock.now()
    opening = math.ceil((now + 600) / 60) * 60  # a whole minute, 10 to 11 minutes from now
    local = datetime.fromtimestamp(opening, KOLKATA)
    closing = datetime.fromtimestamp(opening + 3600, KOLKATA)
    allow = f"{local:%a} {local:%H:%M}-{closing:%H:%M}"  # may cross midnight: that works too
    result = rig.run(
        {
            "steps": [
                {
                    "name": "hours",
                    "window": {"timezone": "Asia/Kolkata", "allow": [allow]},
                    "every": "2m",
                    "timeout": "2h",
                }
            ],
            "outputs": {"OpenedAt": "steps.hours.opened_at", "ClosesAt": "steps.hours.closes_at"},
        }
    )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {
        "OpenedAt": utc_text(opening),
        "ClosesAt": utc_text(opening + 3600),
    }
    waiting = [s for s in summaries(result) if "window opens" in s]
    assert waiting, summaries(result)
    assert re.fullmatch(
        rf"step 1/1 'hours': window opens {local:%a %H:%M} Asia/Kolkata \(in (1[01]m|\d+m)\)",
        waiting[0],
    ), waiting[0]
    assert result.ended_at >= opening  # not a moment before the window opened
    assert result.rounds >= 3  # it waited over several jobs
    progress = [
        j.answer["params"]["executionDetails"].get("percentComplete")
        for j in result.jobs
        if j.answer and "continuationToken" in j.answer["params"]
    ]
    assert progress[-1] > progress[0]  # the ETA moved the progress bar


def test_a_closed_change_calendar_holds_the_gate_until_it_reopens(
    rig: StepsRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = rig.clock.now()
    reopens = math.floor(now) + 1200
    with ChangeCalendars({"prod-change-calendar": [(now - 3600, reopens)]}) as calendars:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", calendars.url)
        result = rig.run(
            {
                "steps": [
                    {
                        "name": "calendar",
                        "window": {"calendars": ["prod-change-calendar"]},
                        "every": "5m",
                        "timeout": "2h",
                    }
                ],
                "outputs": {"OpenedAt": "steps.calendar.opened_at"},
            }
        )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"OpenedAt": utc_text(reopens)}
    closed = [s for s in summaries(result) if "change calendar closed" in s]
    assert closed and closed[0].startswith("step 1/1 'calendar': change calendar closed until "), (
        closed
    )
    assert "(prod-change-calendar); window opens" in closed[0]
    assert result.ended_at >= reopens
    asked = calendars.requests
    assert {r["target"] for r in asked} == {"AmazonSSM.GetCalendarState"}
    # asked at the gate's (virtual) clock, not the machine's
    first = datetime.fromisoformat(asked[0]["AtTime"].replace("Z", "+00:00")).timestamp()
    assert abs(first - now) < 600


def test_a_change_calendar_closes_an_open_window_until_the_step_times_out(
    rig: StepsRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = rig.clock.now()
    with ChangeCalendars({"freeze-cal": [(now - 60, math.inf)]}) as calendars:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", calendars.url)
        result = rig.run(
            {
                "steps": [
                    {
                        "name": "hours",
                        "window": {"allow": ["00:00-24:00"], "calendars": ["freeze-cal"]},
                        "every": "5m",
                        "timeout": "30m",
                    }
                ]
            }
        )
    assert result.status == "Failed"
    assert result.failure_message == (
        "step 'hours' timed out after 30m (last: change calendar closed (freeze-cal), "
        "with no reopening scheduled)"
    )


def test_an_unknown_change_calendar_fails_the_gate_as_a_configuration_error(
    rig: StepsRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ChangeCalendars({}) as calendars:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", calendars.url)
        result = rig.run({"steps": [{"name": "w", "window": {"calendars": ["missing-calendar"]}}]})
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        "step 'w': GetCalendarState of missing-calendar failed (InvalidDocument)"
    )
