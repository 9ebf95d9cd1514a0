"""Change windows as arithmetic on instants: when is a window open, when does it next open
and close. Pure: no I/O, no clock (every function takes the instant it is asked about), so
the `window` step kind, `orchestrator window` and the tests share one implementation.

    Schedule.open_at(t)           the window's own rule at instant t (allow, cron, deny)
    Schedule.timeline(a, b, ...)  the open stretches in [a, b), merged, as UTC epoch seconds
    Schedule.status(t, ...)       open now? since when, until when; else when it next opens
    Schedule.upcoming(t, n, ...)  the next n stretches that count as open (min_remaining)

**Wall-clock semantics.** Every rule is about the time the clocks in `timezone` show: an
instant is inside "Mon-Thu 09:00-16:00" when a wall clock in that zone reads a Monday to
Thursday between 09:00 and 16:00 (16:00 excluded). That one rule settles daylight saving:

- the skipped hour (spring forward: Berlin's 02:00-03:00 on the last Sunday of March,
  New York's on the second Sunday of March) is never shown, so a range inside it does not
  open that day, and a range across it is an hour shorter in real time ("01:00-04:00" lasts
  2 hours; "02:30-04:00" opens at 03:00);
- the repeated hour (fall back: Berlin's 02:00-03:00 on the last Sunday of October, New
  York's 01:00-02:00 on the first Sunday of November) is shown twice, so a range around it
  is an hour longer ("01:00-04:00" lasts 4 hours), a range inside it is open during both
  passes (merged when they touch: Berlin's "02:00-03:00" is two real hours), and a range
  starting inside it ("02:30-03:30" in Berlin) is open from the first 02:30 to the turn of
  the clock, closed from 02:00 to 02:30 (second pass), then open until 03:30;
- a cron minute is open whenever the clock shows it: not at all in the skipped hour, twice
  in the repeated one; a denied date is the whole local day (23 or 25 hours on those days).

`calendars` and freezes are not known here: callers pass what they learned as `blocked`
instants (UTC intervals during which the window is closed whatever its rules say).

`min_remaining`: a stretch counts as open from its opening until `min_remaining` before its
closing, so a stretch shorter than that never counts.

croniter (imported when a cron is compiled or matched, not when this module is loaded) does
the cron field arithmetic in local wall time; the mapping between wall time and instants,
where daylight saving lives, is done here, once, for allow, cron and deny alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from zoneinfo import ZoneInfo

DAY = 86400
HORIZONS = (8 * DAY, 32 * DAY, 128 * DAY, 400 * DAY)
"""How far ahead (and back) the open stretches are looked for, widening step by step: a
window that does not open within the last of these is reported as never opening."""
MAX_MIN_REMAINING = 7 * DAY

Interval = tuple[float, float]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EPOCH = datetime(1970, 1, 1)


class WindowSpecError(ValueError):
    """A window rule that cannot be read; the message says why and gives an example."""


# region zones


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (from the tzdata package when the system has no database)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name or name != name.strip() or ".." in name:
        raise WindowSpecError(
            f"unknown time zone {name!r} (use an IANA name, e.g. 'Europe/Berlin')"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise WindowSpecError(
            f"unknown time zone {name!r} (use an IANA name, e.g. 'Europe/Berlin')"
        ) from None


def _offset(zone: ZoneInfo, t: float) -> int:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _segments(zone: ZoneInfo, a: float, b: float) -> list[tuple[float, float, int]]:
    """[a, b) cut where the zone's UTC offset changes: (start, end, offset seconds) pieces.
    Offsets are sampled every 3 hours and each change is found to the second by bisection
    (zones change offset at whole seconds, and never twice within 3 hours)."""
    step = 3 * 3600
    pieces: list[tuple[float, float, int]] = []
    start, current = a, _offset(zone, a)
    x = math.floor(a)
    while x < b:
        y = min(x + step, math.ceil(b))
        following = _offset(zone, y)
        if following != current:
            lo, hi = x, y  # offset(lo) == current, offset(hi) == following
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, mid) == current:
                    lo = mid
                else:
                    hi = mid
            if hi > start:
                pieces.append((start, min(float(hi), b), current))
            start, current = max(float(hi), a), following
        x = y
    if start < b:
        pieces.append((start, b, current))
    return pieces


def _local_seconds(moment: datetime) -> float:
    """A naive wall-clock reading as seconds since 1970-01-01 00:00 on that wall clock."""
    return (moment - _EPOCH).total_seconds()


def _preimage(
    naive: Iterable[tuple[float, float]], pieces: Sequence[tuple[float, float, int]]
) -> list[Interval]:
    """The instants whose wall-clock reading falls inside one of the `naive` intervals
    (local seconds): within a piece of constant offset o, reading = t + o."""
    found: list[Interval] = []
    for start, end in naive:
        for p, q, offset in pieces:
            lo, hi = max(p, start - offset), min(q, end - offset)
            if lo < hi:
                found.append((lo, hi))
    return merge(found)


# endregion
# region interval arithmetic


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(base: Sequence[Interval], cut: Sequence[Interval]) -> list[Interval]:
    """`base` without `cut` (both merged)."""
    out: list[Interval] = []
    j = 0
    for start, end in base:
        s = start
        while j < len(cut) and cut[j][1] <= s:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < end:
            if cut[k][0] > s:
                out.append((s, cut[k][0]))
            s = max(s, cut[k][1])
            k += 1
        if s < end:
            out.append((s, end))
    return out


# endregion
# region allow: weekly ranges

_RANGE = re.compile(
    r"^(?:(?P<days>[A-Za-z][A-Za-z,\- ]*?)\s+)?"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$"
)
_RANGE_EXAMPLE = "use e.g. 'Mon-Thu 09:00-16:00', 'Fri 22:00-02:00' or '09:00-17:00'"


def _weekday(name: str) -> int:
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL_DAYS:
        return _FULL_DAYS.index(key)
    raise WindowSpecError(f"unknown day {name.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        if not part.strip():
            raise WindowSpecError(f"empty day in {text.strip()!r}")
        first, sep, last = part.partition("-")
        a = _weekday(first)
        if not sep:
            days.add(a)
            continue
        b = _weekday(last)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))  # Fri-Mon wraps the week
    return frozenset(days)


def _clock(text: str, allow_24: bool) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if allow_24 and (hours, minutes) == (24, 0):
        return DAY
    if hours > 23 or minutes > 59:
        raise WindowSpecError(f"invalid time {text!r} (00:00 to 23:59, or 24:00 as an end)")
    return hours * 3600 + minutes * 60


@dataclass(frozen=True)
class WeeklyRange:
    """Open from `start` to `end` (seconds into the local day) on each day of `days`
    (0 = Monday); an `end` not after `start` is on the next day (the range crosses midnight)."""

    text: str
    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> WeeklyRange:
        match = _RANGE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise WindowSpecError(f"invalid range {text!r} ({_RANGE_EXAMPLE})")
        days = _days(match["days"]) if match["days"] else frozenset(range(7))
        start, end = _clock(match["start"], False), _clock(match["end"], True)
        if start == end:
            raise WindowSpecError(
                f"invalid range {text!r}: it starts and ends at the same time "
                "(a whole day is '00:00-24:00')"
            )
        return cls(text, days, start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, reading: datetime) -> bool:
        """Whether the wall-clock `reading` is inside the range."""
        second = reading.hour * 3600 + reading.minute * 60 + reading.second
        second_f = second + reading.microsecond / 1e6
        today = reading.weekday()
        if not self.crosses_midnight:
            return today in self.days and self.start <= second_f < self.end
        yesterday = (today - 1) % 7
        return (today in self.days and second_f >= self.start) or (
            yesterday in self.days and second_f < self.end
        )

    def on(self, day: date) -> tuple[float, float] | None:
        """The range that starts on `day`, as local seconds (None if it does not)."""
        if day.weekday() not in self.days:
            return None
        midnight = _local_seconds(datetime(day.year, day.month, day.day))
        end = self.end + (DAY if self.crosses_midnight else 0)
        return midnight + self.start, midnight + end


# endregion
# region deny: dates, date ranges, timestamp ranges, yearly dates

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARLY = re.compile(r"\*-(\d{2})-(\d{2})")
_DENY_EXAMPLE = (
    "use e.g. '2026-12-24', '2026-12-21..2027-01-04', '2027-03-15 18:00..2027-03-16 06:00' "
    "or '*-12-24'"
)


def _instant(text: str, at_end: bool) -> tuple[datetime, bool]:
    """A date or a timestamp: (naive wall time, or an aware instant; whether it is aware).
    A date that ends a range means the end of that day."""
    value = text.strip()
    if _DATE.fullmatch(value):
        day = date.fromisoformat(value)
        moment = datetime(day.year, day.month, day.day)
        return (moment + timedelta(days=1) if at_end else moment), False
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?", value):
        raise ValueError(value)
    moment = datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))
    return moment, moment.tzinfo is not None


@dataclass(frozen=True)
class Denial:
    """A closed stretch: local wall time [start, end), an absolute [start, end) (timestamps
    with `Z` or an offset), or a yearly day or range of days (`month_day`s inclusive)."""

    text: str
    kind: Literal["local", "absolute", "yearly"]
    start: float = 0.0
    end: float = 0.0
    first: tuple[int, int] = (1, 1)
    last: tuple[int, int] = (1, 1)

    @classmethod
    def parse(cls, text: str) -> Denial:
        if not isinstance(text, str):
            raise WindowSpecError(f"invalid deny entry {text!r} ({_DENY_EXAMPLE})")
        value = text.strip()
        left, sep, right = value.partition("..")
        if value.startswith("*"):
            return cls._yearly(text, left, right if sep else left)
        try:
            start, start_aware = _instant(left, at_end=False)
            end, end_aware = _instant(right if sep else left, at_end=True)
        except (ValueError, OverflowError):  # not a date, or 9999-12-31's next day
            raise WindowSpecError(f"invalid deny entry {text!r} ({_DENY_EXAMPLE})") from None
        if start_aware != end_aware:
            raise WindowSpecError(
                f"invalid deny entry {text!r}: give both ends with a UTC offset (or 'Z'), "
                "or neither (wall time in the window's time zone)"
            )
        if start_aware:
            a, b = start.timestamp(), end.timestamp()
        else:
            a, b = _local_seconds(start), _local_seconds(end)
        if b <= a:
            raise WindowSpecError(f"invalid deny entry {text!r}: it ends before it starts")
        return cls(text, "absolute" if start_aware else "local", a, b)

    @classmethod
    def _yearly(cls, text: str, left: str, right: str) -> Denial:
        ends: list[tuple[int, int]] = []
        for part in (left, right):
            match = _YEARLY.fullmatch(part.strip())
            if match is None:
                raise WindowSpecError(f"invalid deny entry {text!r} ({_DENY_EXAMPLE})")
            month, day = int(match[1]), int(match[2])
            try:
                date(2024, month, day)  # a leap year: *-02-29 is a date (in leap years)
            except ValueError:
                raise WindowSpecError(f"invalid deny entry {text!r}: no such date") from None
            ends.append((month, day))
        return cls(text, "yearly", first=ends[0], last=ends[1])

    def yearly_day(self, day: date) -> bool:
        """Whether `day` is inside a yearly denial (a range may wrap the year's end)."""
        key = (day.month, day.day)
        if self.first <= self.last:
            return self.first <= key <= self.last
        return key >= self.first or key <= self.last

    def contains(self, reading: datetime, t: float) -> bool:
        """Whether the instant `t`, whose wall-clock reading is `reading`, is denied."""
        if self.kind == "absolute":
            return self.start <= t < self.end
        if self.kind == "local":
            return self.start <= _local_seconds(reading) < self.end
        return self.yearly_day(reading.date())


# endregion
# region cron: AWS's six fields on croniter

_AWS_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # AWS numbers them 1-7
_CRON_EXAMPLE = (
    "use AWS's six fields 'minutes hours day-of-month month day-of-week year', "
    "e.g. '* 9-15 ? * MON-THU *'"
)
_FIELD_CHARS = {
    "minutes": r"[0-9,\-*/]+",
    "hours": r"[0-9,\-*/]+",
    "day-of-month": r"[0-9,\-*/?LW]+",
    "month": r"[0-9A-Za-z,\-*/]+",
    "day-of-week": r"[0-9A-Za-z,\-*/?#]+",
    "year": r"[0-9,\-*/]+",
}


def _aws_day(text: str, what: str) -> int:
    """An AWS day of week (1-7 or SUN-SAT) as croniter's (0-6, Sunday 0)."""
    key = text.strip().upper()
    if key in _AWS_DAY_NAMES:
        return _AWS_DAY_NAMES.index(key)
    if key.isdigit() and 1 <= int(key) <= 7:
        return int(key) - 1
    raise WindowSpecError(f"cron: day-of-week {what!r}: {text!r} is not 1-7 or SUN-SAT")


def _day_of_week(value: str) -> str:
    """AWS's day-of-week (1-7 or SUN-SAT; `?`, `L`, `nL`, `n#k`) in croniter's terms."""
    if value in ("?", "*"):
        return "*"
    items = value.upper().split(",")
    if any("#" in item for item in items) and len(items) > 1:
        raise WindowSpecError(
            f"cron: day-of-week {value!r}: with '#', give one expression only (AWS's rule)"
        )
    out: list[str] = []
    for item in items:
        if item == "L":
            out.append("6")  # on its own, L is the last day of the week: Saturday
        elif item.endswith("L"):
            out.append(f"L{_aws_day(item[:-1], value)}")  # 6L: the last Friday of the month
        elif "#" in item:
            day, _, nth = item.partition("#")
            if not (nth.isdigit() and 1 <= int(nth) <= 5):
                raise WindowSpecError(f"cron: day-of-week {value!r}: '#' takes 1 to 5")
            out.append(f"{_aws_day(day, value)}#{nth}")
        else:
            base, slash, step = item.partition("/")
            if slash and not step.isdigit():
                raise WindowSpecError(f"cron: day-of-week {value!r}: invalid step {step!r}")
            if base == "*":
                days = "*"
            else:
                first, dash, last = base.partition("-")
                days = str(_aws_day(first, value))
                if dash:
                    days += f"-{_aws_day(last, value)}"
            out.append(days + (f"/{step}" if slash else ""))
    return ",".join(out)


def _day_of_month(value: str) -> str:
    if value in ("?", "*"):
        return "*"
    upper = value.upper()
    if "LW" in upper or "L-" in upper:
        raise WindowSpecError(
            f"cron: day-of-month {value!r}: 'LW' and 'L-n' are not supported "
            "(AWS documents L, W and ranges)"
        )
    return upper.replace("L", "l")


@dataclass(frozen=True)
class AwsCron:
    """An AWS cron (EventBridge's `minutes hours day-of-month month day-of-week year`, or a
    DeploymentWindow rule's, which puts a seconds field first): each minute it matches, as
    read on the wall clock, is open."""

    text: str
    expression: str
    """croniter's seven fields: minute hour day month day-of-week second year."""
    day_expression: str
    minutes: tuple[int, ...] = field(default=())
    hours: tuple[int, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> AwsCron:
        if not isinstance(text, str):
            raise WindowSpecError(f"invalid cron {text!r} ({_CRON_EXAMPLE})")
        body = text.strip()
        if body.lower().startswith("cron(") and body.endswith(")"):
            body = body[5:-1]
        fields = body.split()
        fields = _drop_seconds(text, fields)
        names = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
        for name, value in zip(names, fields, strict=True):
            if not re.fullmatch(_FIELD_CHARS[name], value):
                raise WindowSpecError(
                    f"cron: {name} {value!r}: not a valid value ({_CRON_EXAMPLE})"
                )
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise WindowSpecError(
                f"invalid cron {text!r}: exactly one of day-of-month and day-of-week must be "
                "'?' (AWS's rule), e.g. '* 9-15 ? * MON-THU *'"
            )
        day, weekday = _day_of_month(dom), _day_of_week(dow)
        expression = f"{minute} {hour} {day} {month} {weekday} 0 {year}"
        day_expression = f"0 0 {day} {month} {weekday} 0 {year}"
        minutes, hours = _expand(text, expression, fields)
        return cls(text, expression, day_expression, minutes, hours)

    def matches(self, reading: datetime) -> bool:
        """Whether the minute the wall clock shows matches."""
        from croniter import croniter

        minute = reading.replace(second=0, microsecond=0)
        return bool(croniter.match(self.expression, minute))

    def runs(self, day: date) -> list[tuple[float, float]]:
        """The open minutes of `day`, joined into runs, as local seconds."""
        from croniter import croniter

        midnight = datetime(day.year, day.month, day.day)
        if not croniter.match(self.day_expression, midnight):
            return []
        base = _local_seconds(midnight)
        out: list[tuple[float, float]] = []
        for hour in self.hours:
            for minute in self.minutes:
                start = base + hour * 3600 + minute * 60
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], start + 60)
                else:
                    out.append((start, start + 60))
        return out


def _drop_seconds(text: str, fields: list[str]) -> list[str]:
    """AWS's six fields; a DeploymentWindow rule's cron (a seconds field first, then the
    same fields, the year optional) is told apart by where its '?' stands."""
    quartz = len(fields) == 7 or (
        len(fields) == 6 and "?" in (fields[3], fields[5]) and "?" not in (fields[2], fields[4])
    )
    if quartz:
        if fields[0] != "*":
            raise WindowSpecError(
                f"invalid cron {text!r}: in a DeploymentWindow cron the seconds field must be "
                "'*' (a matching minute is open as a whole)"
            )
        fields = fields[1:] + (["*"] if len(fields) == 6 else [])
    if len(fields) != 6:
        raise WindowSpecError(f"invalid cron {text!r}: {len(fields)} fields ({_CRON_EXAMPLE})")
    return fields


def _expand(text: str, expression: str, fields: list[str]) -> tuple[tuple[int, ...], ...]:
    """Minutes and hours as croniter reads them; a refusal names the field croniter refuses
    (each field tried alone, the others wildcards)."""
    from croniter import croniter

    names = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
    try:
        expanded = croniter.expand(expression)[0]
        croniter(expression, datetime(2026, 1, 1))
    except Exception as exc:  # croniter's errors are ValueErrors, KeyErrors, IndexErrors...
        parts = expression.split()
        for index, name, value in zip((0, 1, 2, 3, 4, 6), names, fields, strict=True):
            probe = ["*", "*", "*", "*", "*", "0", "*"]
            probe[index] = parts[index]
            try:
                croniter.expand(" ".join(probe))
            except Exception:
                raise WindowSpecError(
                    f"cron: {name} {value!r}: not a valid value ({_CRON_EXAMPLE})"
                ) from None
        raise WindowSpecError(f"invalid cron {text!r}: {exc}") from None
    minutes = range(60) if expanded[0] == ["*"] else sorted(int(m) for m in expanded[0])
    hours = range(24) if expanded[1] == ["*"] else sorted(int(h) for h in expanded[1])
    return tuple(minutes), tuple(hours)


# endregion
# region the schedule


@dataclass(frozen=True)
class WindowStatus:
    """The window at one instant, `min_remaining` and blocked stretches taken into account.

    Open: `opened_at` is when this open stretch began (None: before the look-back), and
    `closes_at` when it ends (None: not within the horizon). Closed: `opens_at` is the next
    opening that counts (None: none within the horizon)."""

    open: bool
    opened_at: float | None = None
    closes_at: float | None = None
    opens_at: float | None = None


@dataclass(frozen=True)
class Schedule:
    """A compiled window: zone, weekly ranges, crons, denials and `min_remaining` seconds.
    With neither ranges nor crons, every time not denied is open."""

    zone: ZoneInfo
    allow: tuple[WeeklyRange, ...] = ()
    cron: tuple[AwsCron, ...] = ()
    deny: tuple[Denial, ...] = ()
    min_remaining: float = 0.0

    @property
    def zone_name(self) -> str:
        return str(self.zone.key)

    def reading(self, t: float) -> datetime:
        """The wall clock in the zone at instant `t` (naive)."""
        return datetime.fromtimestamp(t, self.zone).replace(tzinfo=None)

    def open_at(self, t: float) -> bool:
        """The window's own rule at `t`, instant by instant (no min_remaining, no blocks)."""
        reading = self.reading(t)
        allowed = (
            (not self.allow and not self.cron)
            or any(r.contains(reading) for r in self.allow)
            or any(c.matches(reading) for c in self.cron)
        )
        return allowed and not any(d.contains(reading, t) for d in self.deny)

    def timeline(self, a: float, b: float, blocked: Sequence[Interval] = ()) -> list[Interval]:
        """The open stretches within [a, b), merged (no min_remaining)."""
        if b <= a:
            return []
        pieces = _segments(self.zone, a, b)
        first = self.reading(a).date() - timedelta(days=2)
        last = self.reading(b).date() + timedelta(days=1)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if self.allow or self.cron:
            naive: list[tuple[float, float]] = []
            for day in days:
                naive.extend(span for r in self.allow if (span := r.on(day)) is not None)
                for c in self.cron:
                    naive.extend(c.runs(day))
            allowed = _preimage(naive, pieces)
        else:
            allowed = [(a, b)]
        denied_naive: list[tuple[float, float]] = []
        cut: list[Interval] = [(s, e) for s, e in blocked]
        for d in self.deny:
            if d.kind == "absolute":
                cut.append((d.start, d.end))
            elif d.kind == "local":
                denied_naive.append((d.start, d.end))
            else:
                for day in days:
                    if d.yearly_day(day):
                        midnight = _local_seconds(datetime(day.year, day.month, day.day))
                        denied_naive.append((midnight, midnight + DAY))
        cut.extend(_preimage(denied_naive, pieces))
        open_ = subtract(allowed, merge(cut))
        return [(max(s, a), min(e, b)) for s, e in open_ if min(e, b) > max(s, a)]

    def _first(self, t: float, blocked: Sequence[Interval]) -> tuple[float, float | None] | None:
        """The first stretch at or after `t` that counts (longer than min_remaining from its
        start, or from `t` when it is open at `t`): (start, end), end None past the horizon."""
        m = self.min_remaining
        for index, horizon in enumerate(HORIZONS):
            end = t + horizon
            last = index == len(HORIZONS) - 1
            for s, e in self.timeline(t, end, blocked):
                if e >= end:  # cut at the horizon: it lasts at least this long
                    if e - s > m and last:
                        return s, None
                    break  # look further to see its end
                if e - s > m:
                    return s, e
        return None

    def status(self, t: float, blocked: Sequence[Interval] = ()) -> WindowStatus:
        """Open or closed at `t`, and when that changes."""
        found = self._first(t, blocked)
        if found is None:
            return WindowStatus(open=False)
        start, end = found
        if start > t:
            return WindowStatus(open=False, opens_at=start)
        return WindowStatus(open=True, opened_at=self._began(t, blocked), closes_at=end)

    def _began(self, t: float, blocked: Sequence[Interval]) -> float | None:
        """When the open stretch that holds `t` began (None: before the look-back)."""
        for lookback in (DAY, *HORIZONS):
            stretches = self.timeline(t - lookback, t, blocked)
            if not stretches or stretches[-1][1] < t:
                return t
            if stretches[-1][0] > t - lookback:
                return stretches[-1][0]
        return None

    def upcoming(
        self, t: float, count: int, blocked: Sequence[Interval] = ()
    ) -> list[tuple[float, float | None]]:
        """The next `count` stretches that count as open, from `t` (the first may hold `t`)."""
        out: list[tuple[float, float | None]] = []
        at = t
        while len(out) < count:
            found = self._first(at, blocked)
            if found is None:
                break
            out.append(found)
            if found[1] is None:
                break
            at = found[1]
        return out


@lru_cache(maxsize=64)
def compile_schedule(
    timezone: str,
    allow: tuple[str, ...] = (),
    cron: tuple[str, ...] = (),
    deny: tuple[str, ...] = (),
    min_remaining: float = 0.0,
) -> Schedule:
    """A Schedule from a window's fields (cached: a warm function compiles each once)."""
    return Schedule(
        zone=load_zone(timezone),
        allow=tuple(WeeklyRange.parse(text) for text in allow),
        cron=tuple(AwsCron.parse(text) for text in cron),
        deny=tuple(Denial.parse(text) for text in deny),
        min_remaining=min_remaining,
    )


def describe_opening(at: float, now: float, zone: ZoneInfo) -> str:
    """'Mon 09:00 Europe/Berlin (in 14h)': the weekday and time in the zone, with the date
    when it is a week or more away."""
    local = datetime.fromtimestamp(at, zone)
    when = local.strftime("%a %H:%M") if at - now < 6 * DAY else local.strftime("%a %Y-%m-%d %H:%M")
    return f"{when} {zone.key} (in {_rough(at - now)})"


def _rough(seconds: float) -> str:
    """A wait, to the minute: 14h, 3h20m, 5m, under 1m."""
    minutes = math.ceil(max(0.0, seconds) / 60)
    if minutes < 1:
        return "under 1m"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if mins and not days:
        parts.append(f"{mins}m")
    return "".join(parts) or f"{days}d"


def utc_text(at: float) -> str:
    """An instant in RFC 3339, UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# endregion
