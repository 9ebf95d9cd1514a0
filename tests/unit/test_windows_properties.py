"""Properties of the window arithmetic for random windows and instants: "open at t" (the
rules read instant by instant) agrees with the stretches, the next opening and the next
closing (the rules mapped interval by interval), around daylight-saving changes above all.

The two sides are separate code: `open_at` reads the wall clock at t and asks each rule;
`timeline`/`status` map each rule's local stretches to instants through the zone's offsets.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.windows import Schedule, compile_schedule

EPSILON = 0.5  # every boundary is a whole second; a stretch lasts at least a minute
DAY = 86400

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "UTC",
    "Australia/Lord_Howe",  # a 30-minute daylight-saving shift
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
]
# Instants near the 2026 changes of those zones, where the arithmetic is hardest.
CHANGES = [
    datetime.fromisoformat(text).timestamp()
    for text in (
        "2026-03-29T01:00:00+00:00",  # Berlin, spring
        "2026-10-25T01:00:00+00:00",  # Berlin, fall
        "2026-03-08T07:00:00+00:00",  # New York, spring
        "2026-11-01T06:00:00+00:00",  # New York, fall
        "2026-04-04T15:00:00+00:00",  # Lord Howe, fall (30 minutes)
        "2026-10-03T15:30:00+00:00",  # Lord Howe, spring
        "2026-04-05T03:00:00+00:00",  # Santiago
        "2026-09-06T04:00:00+00:00",  # Santiago
    )
]

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@st.composite
def clock_times(draw: st.DrawFn, allow_24: bool = False) -> str:
    hour = draw(st.integers(0, 23))
    minute = draw(st.sampled_from([0, 15, 30, 45, draw(st.integers(0, 59))]))
    if allow_24 and draw(st.booleans()) and draw(st.booleans()):
        return "24:00"
    return f"{hour:02d}:{minute:02d}"


@st.composite
def ranges(draw: st.DrawFn) -> str:
    start, end = draw(clock_times()), draw(clock_times(allow_24=True))
    if start == end:
        end = "24:00" if start != "00:00" else "12:00"
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return f"{start}-{end}"
    first, last = draw(st.sampled_from(DAYS)), draw(st.sampled_from(DAYS))
    days = first if kind == 1 else f"{first}-{last}"
    return f"{days} {start}-{end}"


@st.composite
def crons(draw: st.DrawFn) -> str:
    minute = draw(st.sampled_from(["*", "0", "0-29", "*/15", "5,35", "59"]))
    hour = draw(st.sampled_from(["*", "2", "1-3", "9-15", "22-23", "0,12"]))
    month = draw(st.sampled_from(["*", "*", "3,10,11", "JAN-JUN"]))
    if draw(st.booleans()):
        dom, dow = "?", draw(st.sampled_from(["*", "MON-FRI", "SUN", "6L", "1#1", "L", "2,4"]))
    else:
        dom, dow = draw(st.sampled_from(["*", "L", "15W", "1-7", "25-31"])), "?"
    return f"{minute} {hour} {dom} {month} {dow} *"


@st.composite
def denials(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    day = draw(st.integers(0, 700))
    start = datetime.fromtimestamp(CHANGES[0] - 60 * DAY + day * DAY).date()
    if kind == 0:
        return start.isoformat()
    if kind == 1:
        end = datetime.fromtimestamp(CHANGES[0] - 60 * DAY + (day + draw(st.integers(0, 9))) * DAY)
        return f"{start.isoformat()}..{end.date().isoformat()}"
    if kind == 2:
        hours = draw(st.integers(1, 60))
        begin = datetime(start.year, start.month, start.day, draw(st.integers(0, 23)))
        end_at = datetime.fromtimestamp(begin.timestamp() + hours * 3600)
        return f"{begin:%Y-%m-%d %H:%M}..{end_at:%Y-%m-%d %H:%M}"
    return f"*-{start:%m-%d}"


@st.composite
def schedules(draw: st.DrawFn, min_remaining: bool = False) -> Schedule:
    zone = draw(st.sampled_from(ZONES))
    allow = tuple(draw(st.lists(ranges(), max_size=3)))
    cron = tuple(draw(st.lists(crons(), max_size=2)))
    deny = tuple(draw(st.lists(denials(), max_size=2)))
    remaining = float(draw(st.sampled_from([0, 60, 1800, 5400]))) if min_remaining else 0.0
    return compile_schedule(zone, allow, cron, deny, remaining)


@st.composite
def instants(draw: st.DrawFn) -> float:
    if draw(st.booleans()):
        base = draw(st.sampled_from(CHANGES))
        return base + draw(st.integers(-2 * DAY, 2 * DAY)) + draw(st.sampled_from([0, 0.25]))
    return CHANGES[0] + draw(st.integers(-90 * DAY, 400 * DAY))


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(schedules(), instants())
def test_open_at_agrees_with_the_stretches(schedule: Schedule, t: float) -> None:
    stretches = schedule.timeline(t - 2 * DAY, t + 2 * DAY)
    assert schedule.open_at(t) == any(s <= t < e for s, e in stretches)
    for s, e in stretches:  # each stretch is open inside and closed just outside
        assert schedule.open_at(s) and schedule.open_at(e - EPSILON)
        if s > t - 2 * DAY:
            assert not schedule.open_at(s - EPSILON)
        if e < t + 2 * DAY:
            assert not schedule.open_at(e)


@PROPERTY
@given(schedules(), instants())
def test_open_at_agrees_with_next_opening_and_next_closing(schedule: Schedule, t: float) -> None:
    status = schedule.status(t)
    assert status.open == schedule.open_at(t)
    if status.open:
        if status.closes_at is not None:
            assert schedule.open_at(status.closes_at - EPSILON)
            assert not schedule.open_at(status.closes_at)
            middle = (t + status.closes_at) / 2
            assert schedule.open_at(middle)
        if status.opened_at is not None:
            assert status.opened_at <= t
            assert schedule.open_at(status.opened_at)
            assert not schedule.open_at(status.opened_at - EPSILON)
    elif status.opens_at is not None:
        assert status.opens_at > t
        assert schedule.open_at(status.opens_at)
        assert not schedule.open_at(status.opens_at - EPSILON)
        # closed all the way until then (sampled)
        for fraction in (0.0, 0.1, 0.37, 0.5, 0.81, 0.999):
            assert not schedule.open_at(t + (status.opens_at - t) * fraction)
        assert schedule.status(status.opens_at).open


@PROPERTY
@given(schedules(min_remaining=True), instants())
def test_min_remaining_counts_a_stretch_open_only_while_enough_of_it_is_left(
    schedule: Schedule, t: float
) -> None:
    status = schedule.status(t)
    raw = compile_schedule(
        schedule.zone_name,
        tuple(r.text for r in schedule.allow),
        tuple(c.text for c in schedule.cron),
        tuple(d.text for d in schedule.deny),
    ).status(t)
    if status.open:
        assert raw.open
        assert status.closes_at == raw.closes_at
        assert raw.closes_at is None or raw.closes_at - t > schedule.min_remaining
    elif raw.open:  # open by the rules, but too little of it is left
        assert raw.closes_at is not None and raw.closes_at - t <= schedule.min_remaining
    if not status.open and status.opens_at is not None:
        later = schedule.status(status.opens_at)
        assert later.open
        assert later.closes_at is None or later.closes_at - status.opens_at > schedule.min_remaining


@PROPERTY
@given(schedules(), instants(), st.integers(1, 6))
def test_upcoming_stretches_are_ordered_disjoint_and_open(
    schedule: Schedule, t: float, count: int
) -> None:
    found = schedule.upcoming(t, count)
    previous_end = t
    for index, (start, end) in enumerate(found):
        assert start >= previous_end if index else start >= t
        assert schedule.open_at(start)
        if end is None:
            assert index == len(found) - 1
            break
        assert end > start and not schedule.open_at(end)
        previous_end = end
