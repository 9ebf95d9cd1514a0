"""The `window` kind through the engine: its summary and ETA while it waits, its result once
open, freezes (an honest fake of the `Freezes` seam), change calendars (a fake of SSM's
GetCalendarState that keeps the real API's rules), and its definition errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.exceptions import DefinitionError, FailureType, StoreUnavailable
from orchestrator.model import RunState, RunStatus
from orchestrator.steps.window import Freezes, parse_window
from tests.fakes import ManualClock, client_error

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    from orchestrator.services import HttpClient


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace(" ", "T") + "+00:00").timestamp()


SUNDAY_EVENING = at("2026-12-06 18:00")  # 19:00 in Berlin
MONDAY_OPENING = at("2026-12-07 08:00")  # 09:00 in Berlin
BUSINESS = {"timezone": "Europe/Berlin", "allow": ["Mon-Thu 09:00-16:00", "Fri 09:00-12:00"]}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Freeze:
    by: str
    since: float
    reason: str
    until: float | None = None


@dataclass
class MemoryFreezes:
    """Freezes by name; `down` makes every lookup fail as a store outage does."""

    on: dict[str, Freeze] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    down: bool = False

    def active(self, name: str, now: float) -> Freeze | None:
        self.lookups.append(name)
        if self.down:
            raise StoreUnavailable("freezes: down")
        found = self.on.get(name)
        if found is not None and found.until is not None and found.until <= now:
            return None
        return found


class FakeSsm:
    """GetCalendarState over closed stretches [start, end) shared by the named calendars."""

    def __init__(self, closed: list[tuple[float, float]] | None = None) -> None:
        self.closed = sorted(closed or [])
        self.calls: list[dict[str, Any]] = []
        self.errors: list[ClientError] = []
        self.known = {"prod-change-calendar", "arn:aws:ssm:eu-west-1:111122223333:document/ops"}

    def get_calendar_state(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        names = kwargs["CalendarNames"]
        assert names and all(isinstance(n, str) for n in names)
        if any(name not in self.known for name in names):
            raise client_error("InvalidDocument", operation="GetCalendarState")
        when = datetime.fromisoformat(kwargs["AtTime"].replace("Z", "+00:00")).timestamp()
        closed = any(s <= when < e for s, e in self.closed)
        edges = sorted({x for pair in self.closed for x in pair if x > when})
        answer: dict[str, Any] = {"State": "CLOSED" if closed else "OPEN", "AtTime": iso(when)}
        if edges:
            answer["NextTransitionTime"] = iso(edges[0])
        return answer


class FakeServices:
    """ServiceClients with an SSM client and, optionally, a freeze source."""

    def __init__(self, ssm: FakeSsm | None = None, freezes: Freezes | None = None) -> None:
        self.ssm = ssm or FakeSsm()
        self._freezes = freezes

    @property
    def governance(self) -> Any:
        if self._freezes is None:
            raise RuntimeError("no governance store")
        return self._freezes

    @property
    def http(self) -> HttpClient:
        raise AssertionError("no HTTP in this test")

    def aws(self, service: str, *, single_attempt: bool = False, target: Any = None) -> Any:
        assert service == "ssm"
        return self.ssm


class Runner:
    def __init__(self, window: dict[str, Any], start: float, **step: Any) -> None:
        self.definition: GateDefinition = parse_definition(
            json.dumps({"steps": [{"name": "business-hours", "window": window, **step}]})
        )
        self.clock = ManualClock(start)
        self.services = FakeServices()
        self.state: RunState = engine.start(self.definition, "run-1", start)

    def tick(self, until: float | None = None) -> RunState:
        if until is not None:
            self.clock.t = until
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        self.state = engine.advance(
            self.definition, self.state, self.clock.now, budget, self.services
        )
        return self.state

    @property
    def step(self) -> Any:
        return self.state.steps[0]

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)


def test_waits_for_the_opening_saying_when_then_is_done_with_its_times() -> None:
    runner = Runner(BUSINESS, SUNDAY_EVENING, every="5m")
    runner.tick()
    assert runner.summary == (
        "step 1/1 'business-hours': window opens Mon 09:00 Europe/Berlin (in 14h)"
    )
    assert runner.step.eta == MONDAY_OPENING
    assert runner.step.next_check == SUNDAY_EVENING + 300  # min(opening, now + every)
    assert engine.percent(runner.state, SUNDAY_EVENING + 7 * 3600) == 50
    runner.tick(MONDAY_OPENING - 60)
    assert runner.step.next_check == MONDAY_OPENING  # the opening comes before now + every
    assert runner.summary.endswith("(in 1m)")
    assert runner.tick(MONDAY_OPENING).status is RunStatus.SUCCEEDED
    assert runner.step.result == {
        "opened_at": "2026-12-07T08:00:00Z",
        "closes_at": "2026-12-07T15:00:00Z",
        "timezone": "Europe/Berlin",
        "remaining_seconds": 25200.0,
    }


def test_already_open_is_done_at_once_with_when_it_opened() -> None:
    runner = Runner(BUSINESS, MONDAY_OPENING + 5400)
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert runner.step.result["opened_at"] == "2026-12-07T08:00:00Z"
    assert runner.step.result["remaining_seconds"] == 25200.0 - 5400


def test_min_remaining_waits_for_a_stretch_long_enough() -> None:
    friday_late = at("2026-12-11 10:30")  # 11:30 in Berlin: 30 minutes left of Friday's
    runner = Runner({**BUSINESS, "min_remaining": "45m"}, friday_late)
    runner.tick()
    assert runner.state.status is RunStatus.RUNNING
    assert runner.step.eta == at("2026-12-14 08:00")
    assert "window opens Mon 09:00 Europe/Berlin" in runner.summary


def test_a_freeze_holds_the_window_shut_naming_who_when_and_why() -> None:
    freezes = MemoryFreezes()
    freezes.on["payments"] = Freeze(
        "arn:aws:sts::111122223333:assumed-role/Release/ana", at("2026-12-07 07:00"), "incident 42"
    )
    runner = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING + 60)
    runner.services = FakeServices(freezes=freezes)
    runner.tick()
    assert runner.summary == (
        "step 1/1 'business-hours': freeze 'payments': frozen by "
        "arn:aws:sts::111122223333:assumed-role/Release/ana since 2026-12-07 07:00 UTC: incident 42"
    )
    assert runner.step.eta is None
    del freezes.on["payments"]  # lifted
    assert runner.tick(MONDAY_OPENING + 120).status is RunStatus.SUCCEEDED
    assert freezes.lookups == ["payments", "payments"]
    # open by the rules since 09:00, but held by the freeze at the first poll
    assert runner.step.result["opened_at"] == iso(MONDAY_OPENING + 60)


def test_a_freeze_with_an_end_puts_the_eta_at_the_first_opening_after_it() -> None:
    freezes = MemoryFreezes()
    freezes.on["payments"] = Freeze(
        "ana", MONDAY_OPENING, "quarter end", until=at("2026-12-08 20:00")
    )
    runner = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING)
    runner.services = FakeServices(freezes=freezes)
    runner.tick()
    assert runner.step.eta == at("2026-12-09 08:00")  # Wednesday 09:00 in Berlin


def test_an_unreadable_freeze_store_is_retried_and_no_freeze_source_means_not_frozen() -> None:
    freezes = MemoryFreezes(down=True)
    runner = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING)
    runner.services = FakeServices(freezes=freezes)
    runner.tick()
    assert runner.state.status is RunStatus.RUNNING
    assert "freeze store unavailable (freezes: down); retrying" in runner.summary
    without = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING)
    assert without.tick().status is RunStatus.SUCCEEDED


def test_a_closed_change_calendar_keeps_an_open_window_shut_until_it_reopens() -> None:
    reopens = MONDAY_OPENING + 2 * 3600
    runner = Runner(
        {**BUSINESS, "calendars": ["prod-change-calendar"]}, MONDAY_OPENING, every="10m"
    )
    runner.services = FakeServices(FakeSsm([(MONDAY_OPENING - 3600, reopens)]))
    runner.tick()
    assert runner.summary == (
        "step 1/1 'business-hours': change calendar closed until 2026-12-07 10:00 UTC "
        "(prod-change-calendar); window opens Mon 11:00 Europe/Berlin (in 2h)"
    )
    assert runner.step.eta == reopens
    calls = runner.services.ssm.calls
    assert calls == [{"CalendarNames": ["prod-change-calendar"], "AtTime": "2026-12-07T08:00:00Z"}]
    assert runner.tick(reopens).status is RunStatus.SUCCEEDED
    assert runner.step.result["opened_at"] == "2026-12-07T10:00:00Z"


def test_a_calendar_closing_soon_ends_the_window_there_and_min_remaining_sees_it() -> None:
    closes = MONDAY_OPENING + 1800
    ssm = FakeSsm([(closes, closes + 3600)])
    window = {**BUSINESS, "calendars": ["prod-change-calendar"]}
    runner = Runner(window, MONDAY_OPENING)
    runner.services = FakeServices(ssm)
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert runner.step.result["closes_at"] == "2026-12-07T08:30:00Z"
    # the second call asked when the calendar reopens after it closes
    assert [c["AtTime"] for c in ssm.calls] == ["2026-12-07T08:00:00Z", "2026-12-07T08:30:00Z"]
    short = Runner({**window, "min_remaining": "45m"}, MONDAY_OPENING)
    short.services = FakeServices(FakeSsm([(closes, closes + 3600)]))
    short.tick()
    assert short.state.status is RunStatus.RUNNING
    assert short.step.eta == closes + 3600  # 10:30 in Berlin, when the calendar reopens


def test_every_calendar_must_be_open() -> None:
    ssm = FakeSsm([(MONDAY_OPENING - 60, MONDAY_OPENING + 600)])
    names = ["prod-change-calendar", "arn:aws:ssm:eu-west-1:111122223333:document/ops"]
    runner = Runner({"calendars": names}, MONDAY_OPENING)
    runner.services = FakeServices(ssm)
    runner.tick()
    assert ssm.calls[0]["CalendarNames"] == names  # one call: OPEN only if all are
    assert "change calendar closed until 2026-12-07 08:10 UTC" in runner.summary


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("ThrottlingException", 400, "SSM unavailable (ThrottlingException); retrying"),
        ("InternalServerError", 500, "SSM unavailable (InternalServerError); retrying"),
        ("AccessDeniedException", 400, FailureType.PERMISSION_ERROR),
        ("InvalidDocument", 400, FailureType.CONFIGURATION_ERROR),
    ],
)
def test_calendar_errors(code: str, status: int, outcome: str | FailureType) -> None:
    runner = Runner({"calendars": ["prod-change-calendar"]}, MONDAY_OPENING)
    runner.services.ssm.errors.append(client_error(code, status, "GetCalendarState"))
    runner.tick()
    if isinstance(outcome, str):
        assert runner.state.status is RunStatus.RUNNING and outcome in runner.summary
        assert runner.tick(MONDAY_OPENING + 60).status is RunStatus.SUCCEEDED
    else:
        assert runner.state.failure is not None
        assert runner.state.failure.type is outcome
        assert runner.state.failure.message == (
            f"step 'business-hours': GetCalendarState of prod-change-calendar failed ({code})"
        )


def test_an_unknown_calendar_fails_the_gate_naming_it() -> None:
    runner = Runner({"calendars": ["nope-calendar"]}, MONDAY_OPENING)
    runner.tick()
    assert runner.state.failure is not None
    assert runner.state.failure.type is FailureType.CONFIGURATION_ERROR
    assert "nope-calendar failed (InvalidDocument)" in runner.state.failure.message


def test_a_window_that_never_opens_fails_at_once() -> None:
    runner = Runner({"cron": "* 9 ? * MON 2020"}, MONDAY_OPENING)
    runner.tick()
    assert runner.state.failure is not None
    assert runner.state.failure.type is FailureType.CONFIGURATION_ERROR
    assert "the window never opens within 400 days" in runner.state.failure.message


def test_templated_fields_are_checked_once_rendered() -> None:
    freezes = MemoryFreezes()
    runner = Runner({**BUSINESS, "freeze": "${run.id}"}, MONDAY_OPENING)
    runner.services = FakeServices(freezes=freezes)
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert freezes.lookups == ["run-1"]
    bad = Runner({"timezone": "${run.id}", "allow": ["09:00-10:00"]}, MONDAY_OPENING)
    bad.tick()
    assert bad.state.failure is not None
    assert bad.state.failure.message == (
        "step 'business-hours': window.timezone: unknown time zone 'run-1' "
        "(use an IANA name, e.g. 'Europe/Berlin')"
    )


@pytest.mark.parametrize(
    ("window", "error"),
    [
        (
            {"allow": ["Mon-Thu 09:00-16:00", "Fri 9-12"]},
            "steps[0].window.allow[1]: invalid range 'Fri 9-12'",
        ),
        ({"timezone": "Mars/Olympus", "allow": ["09:00-10:00"]}, "steps[0].window.timezone:"),
        ({"cron": ["0 9 * * MON *"]}, "steps[0].window.cron[0]: invalid cron"),
        ({"deny": ["2026-13-01"]}, "steps[0].window.deny[0]: invalid deny entry"),
        ({"freeze": "no spaces"}, "steps[0].window.freeze: invalid freeze name"),
        ({"calendars": ["s3://x"]}, "steps[0].window.calendars[0]: invalid change calendar"),
        ({"allow": ["09:00-10:00"], "min_remaining": "8d"}, "steps[0].window.min_remaining"),
        ({"timezone": "UTC"}, "steps[0].window: give at least one of"),
        ({"allow": ["09:00-10:00"], "hours": 1}, "steps[0].window.hours: unknown field"),
    ],
)
def test_definition_errors_name_the_field(window: dict[str, Any], error: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps({"steps": [{"name": "w", "window": window}]}))
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_parse_window_names_fields_under_window() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_window({"allow": ["Fri 9-12"], "deny": ["x"]})
    assert [line.split(":")[0] for line in caught.value.errors] == [
        "window.allow[0]",
        "window.deny[0]",
    ]
    assert parse_window({"cron": "* 9-15 ? * MON-THU *"}).cron == ["* 9-15 ? * MON-THU *"]


def test_the_steps_doc_snippets_are_real() -> None:
    """docs/STEPS.md's window example is a valid step and its result example has the keys
    a done poll gives."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "STEPS.md").read_text()
    section = doc.split("## `window`", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```json\n")[1:]]
    step, result = json.loads(blocks[0]), json.loads(blocks[1])
    definition = parse_definition(json.dumps({"steps": [step]}))
    assert definition.steps[0].kind == "window"
    runner = Runner(step["window"] | {"calendars": []}, MONDAY_OPENING)
    assert runner.tick().status is RunStatus.SUCCEEDED
    assert runner.step.result == result


def test_the_production_services_carry_the_freezes_the_handler_gives_them() -> None:
    """`Services(governance=...)` is the integration point: the window step finds freezes
    there, and services without a table (the CLI's) mean nothing is frozen."""
    from orchestrator.governance import Governance
    from orchestrator.services import Services
    from tests.fakes import MemoryGovernanceStore

    governance = Governance(MemoryGovernanceStore())
    governance.freeze("payments", "ana", "incident 42", None, MONDAY_OPENING)
    runner = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING)
    runner.services = Services(governance=governance)  # type: ignore[assignment]
    runner.tick()
    assert "frozen by ana" in runner.summary
    unfrozen = Runner({**BUSINESS, "freeze": "payments"}, MONDAY_OPENING)
    unfrozen.services = Services()  # type: ignore[assignment]
    assert unfrozen.tick().status is RunStatus.SUCCEEDED
