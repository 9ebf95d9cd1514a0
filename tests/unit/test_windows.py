"""The window arithmetic (orchestrator.windows), pinned on the days that make it hard:
daylight saving in Europe/Berlin and America/New_York, ranges across midnight, deny over
allow, yearly dates, AWS crons with `?`, `L`, `#` and `W`."""

from __future__ import annotations

from datetime import datetime

import pytest

from orchestrator.windows import (
    AwsCron,
    Denial,
    Schedule,
    WeeklyRange,
    WindowSpecError,
    compile_schedule,
    describe_opening,
    load_zone,
    merge,
    subtract,
    utc_text,
)

H = 3600


def at(text: str) -> float:
    """An instant written in UTC, e.g. '2026-03-29 01:00'."""
    return datetime.fromisoformat(text.replace(" ", "T") + "+00:00").timestamp()


def stretches(schedule: Schedule, start: str, end: str) -> list[tuple[str, str]]:
    return [(utc_text(s), utc_text(e)) for s, e in schedule.timeline(at(start), at(end))]


def berlin(*allow: str, cron: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> Schedule:
    return compile_schedule("Europe/Berlin", allow, cron, deny)


def new_york(*allow: str, cron: tuple[str, ...] = ()) -> Schedule:
    return compile_schedule("America/New_York", allow, cron)


# region daylight saving: Berlin springs forward 2026-03-29 at 02:00 CET (01:00 UTC) and
# falls back 2026-10-25 at 03:00 CEST (01:00 UTC); New York springs forward 2026-03-08 at
# 02:00 EST (07:00 UTC) and falls back 2026-11-01 at 02:00 EDT (06:00 UTC).


def test_berlin_spring_forward_a_range_inside_the_skipped_hour_does_not_open() -> None:
    schedule = berlin("Sun 02:00-03:00")
    assert stretches(schedule, "2026-03-28 00:00", "2026-03-30 00:00") == []
    # the Sundays around it open for their hour
    assert stretches(schedule, "2026-03-21 00:00", "2026-03-23 00:00") == [
        ("2026-03-22T01:00:00Z", "2026-03-22T02:00:00Z")
    ]


def test_berlin_spring_forward_a_range_across_the_gap_is_an_hour_shorter() -> None:
    assert stretches(berlin("Sun 01:00-04:00"), "2026-03-29 00:00", "2026-03-30 00:00") == [
        ("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z")  # 01:00 CET to 04:00 CEST: 2 hours
    ]
    assert stretches(berlin("Sun 02:30-04:00"), "2026-03-29 00:00", "2026-03-30 00:00") == [
        ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")  # opens when the clock shows 03:00
    ]


def test_berlin_fall_back_the_repeated_hour_is_open_in_both_passes() -> None:
    assert stretches(berlin("Sun 02:00-03:00"), "2026-10-25 00:00", "2026-10-26 00:00") == [
        ("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z")  # 02:00 CEST to 03:00 CET: 2 hours
    ]
    assert stretches(berlin("Sun 01:00-04:00"), "2026-10-24 12:00", "2026-10-26 00:00") == [
        ("2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z")  # 01:00 CEST to 04:00 CET: 4 hours
    ]


def test_berlin_fall_back_a_range_starting_in_the_repeated_hour_closes_at_the_turn() -> None:
    # The clock shows 02:30-03:00 CEST, then 02:00 CET again (outside), then 02:30-03:30 CET.
    assert stretches(berlin("Sun 02:30-03:30"), "2026-10-25 00:00", "2026-10-26 00:00") == [
        ("2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"),
        ("2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"),
    ]
    schedule = berlin("Sun 02:30-03:30")
    assert schedule.open_at(at("2026-10-25 00:45"))
    assert not schedule.open_at(at("2026-10-25 01:15"))
    assert schedule.open_at(at("2026-10-25 01:45"))


def test_new_york_spring_forward_skips_2am() -> None:
    assert stretches(new_york("Sun 02:00-03:00"), "2026-03-07 00:00", "2026-03-09 00:00") == []
    assert stretches(new_york("Sun 01:30-03:30"), "2026-03-08 00:00", "2026-03-09 00:00") == [
        ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z")  # 01:30 EST to 03:30 EDT: 1 hour
    ]
    assert (
        stretches(new_york(cron=("* 2 ? * SUN *",)), "2026-03-08 00:00", "2026-03-09 00:00") == []
    )


def test_new_york_fall_back_repeats_1am() -> None:
    assert stretches(new_york("Sun 01:00-02:00"), "2026-11-01 00:00", "2026-11-02 00:00") == [
        ("2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z")  # 01:00 EDT to 02:00 EST: 2 hours
    ]
    # a cron minute in the repeated hour is open twice
    assert stretches(
        new_york(cron=("30 1 ? * SUN *",)), "2026-11-01 00:00", "2026-11-02 00:00"
    ) == [
        ("2026-11-01T05:30:00Z", "2026-11-01T05:31:00Z"),
        ("2026-11-01T06:30:00Z", "2026-11-01T06:31:00Z"),
    ]
    # 02:00-03:00 is shown once (EST)
    assert stretches(new_york(cron=("* 2 ? * SUN *",)), "2026-11-01 00:00", "2026-11-02 00:00") == [
        ("2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z")
    ]


def test_a_denied_date_is_the_whole_local_day_23_or_25_hours_long() -> None:
    spring = compile_schedule("Europe/Berlin", (), (), ("2026-03-29",))
    assert stretches(spring, "2026-03-28 12:00", "2026-03-30 12:00") == [
        ("2026-03-28T12:00:00Z", "2026-03-28T23:00:00Z"),
        ("2026-03-29T22:00:00Z", "2026-03-30T12:00:00Z"),  # 23 hours denied
    ]
    fall = compile_schedule("America/New_York", (), (), ("2026-11-01",))
    assert stretches(fall, "2026-10-31 12:00", "2026-11-02 12:00") == [
        ("2026-10-31T12:00:00Z", "2026-11-01T04:00:00Z"),
        ("2026-11-02T05:00:00Z", "2026-11-02T12:00:00Z"),  # 25 hours denied
    ]


def test_status_across_the_berlin_spring_gap() -> None:
    schedule = berlin("Sun 02:30-04:00")
    status = schedule.status(at("2026-03-29 00:00"))
    assert not status.open and status.opens_at == at("2026-03-29 01:00")
    status = schedule.status(at("2026-03-29 01:10"))
    assert status.open
    assert (status.opened_at, status.closes_at) == (at("2026-03-29 01:00"), at("2026-03-29 02:00"))


# endregion
# region ranges


def test_ranges_crossing_midnight_belong_to_the_day_they_start() -> None:
    schedule = compile_schedule("Europe/Berlin", ("Fri 22:00-02:00",))
    # Friday 2026-12-04 22:00 CET to Saturday 02:00 CET
    assert stretches(schedule, "2026-12-03 00:00", "2026-12-08 00:00") == [
        ("2026-12-04T21:00:00Z", "2026-12-05T01:00:00Z")
    ]
    assert schedule.open_at(at("2026-12-05 00:30"))  # Saturday 01:30, from Friday's range
    assert not schedule.open_at(at("2026-12-06 00:30"))  # Sunday 01:30: Saturday has none


def test_adjacent_ranges_merge_and_24_00_ends_a_day() -> None:
    schedule = compile_schedule(
        "UTC", ("Fri 18:00-24:00", "Sat-Sun 00:00-24:00", "Mon 00:00-06:00")
    )
    assert stretches(schedule, "2026-12-01 00:00", "2026-12-09 00:00") == [
        ("2026-12-04T18:00:00Z", "2026-12-07T06:00:00Z")
    ]


def test_days_lists_wrapping_ranges_and_full_names() -> None:
    assert WeeklyRange.parse("Fri-Mon 09:00-10:00").days == frozenset({4, 5, 6, 0})
    assert WeeklyRange.parse("mon,Wednesday 09:00-10:00").days == frozenset({0, 2})
    assert WeeklyRange.parse("09:00-10:00").days == frozenset(range(7))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Mon-Thu 9-16", "invalid range 'Mon-Thu 9-16'"),
        ("Mon 09:00-09:00", "starts and ends at the same time"),
        ("Mox 09:00-10:00", "unknown day 'Mox'"),
        ("Mon 25:00-26:00", "invalid time '25:00'"),
        ("Mon 24:00-02:00", "invalid time '24:00'"),
    ],
)
def test_bad_ranges_say_why(text: str, reason: str) -> None:
    with pytest.raises(WindowSpecError, match=reason):
        WeeklyRange.parse(text)


# endregion
# region deny


def test_deny_wins_over_allow() -> None:
    schedule = compile_schedule(
        "Europe/Berlin",
        ("Mon-Fri 09:00-17:00",),
        (),
        ("2026-12-21..2027-01-04", "2027-03-15 12:00..2027-03-16 10:00"),
    )
    # nothing from Monday 21 December through Monday 4 January, both days included
    assert schedule.status(at("2026-12-18 17:00")).opens_at == at("2027-01-05 08:00")
    assert stretches(schedule, "2027-03-15 00:00", "2027-03-17 00:00") == [
        ("2027-03-15T08:00:00Z", "2027-03-15T11:00:00Z"),  # until 12:00 CET
        ("2027-03-16T09:00:00Z", "2027-03-16T16:00:00Z"),  # from 10:00 CET
    ]


def test_yearly_dates_recur_and_may_wrap_the_year() -> None:
    schedule = compile_schedule("UTC", ("09:00-10:00",), (), ("*-12-24", "*-12-31..*-01-01"))
    for year in (2026, 2027, 2030):
        assert not schedule.open_at(at(f"{year}-12-24 09:30"))
        assert not schedule.open_at(at(f"{year}-12-31 09:30"))
        assert not schedule.open_at(at(f"{year + 1}-01-01 09:30"))
        assert schedule.open_at(at(f"{year}-12-23 09:30"))
        assert schedule.open_at(at(f"{year + 1}-01-02 09:30"))
    assert schedule.status(at("2026-12-30 10:00")).opens_at == at("2027-01-02 09:00")


def test_a_yearly_29_february_is_denied_in_leap_years_only() -> None:
    schedule = compile_schedule("UTC", (), (), ("*-02-29",))
    assert not schedule.open_at(at("2028-02-29 12:00"))
    assert schedule.open_at(at("2027-02-28 12:00")) and schedule.open_at(at("2027-03-01 12:00"))


def test_timestamps_with_an_offset_are_absolute_instants() -> None:
    denial = Denial.parse("2027-03-15T18:00Z..2027-03-16T06:00+01:00")
    assert (denial.kind, denial.start, denial.end) == (
        "absolute",
        at("2027-03-15 18:00"),
        at("2027-03-16 05:00"),
    )
    schedule = compile_schedule("Asia/Tokyo", (), (), (denial.text,))
    assert not schedule.open_at(at("2027-03-15 18:00"))
    assert schedule.open_at(at("2027-03-16 05:00"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-12-32", "invalid deny entry"),
        ("2027-01-04..2026-12-21", "ends before it starts"),
        ("2027-03-15 18:00Z..2027-03-16 06:00", "both ends with a UTC offset"),
        ("*-02-30", "no such date"),
        ("*-12", "invalid deny entry"),
        ("christmas", "invalid deny entry"),
        ("9999-12-31", "invalid deny entry"),  # its end, the next day, is past datetime's
    ],
)
def test_bad_deny_entries_say_why(text: str, reason: str) -> None:
    with pytest.raises(WindowSpecError, match=reason):
        Denial.parse(text)


# endregion
# region cron


def test_cron_question_mark_days_and_years() -> None:
    schedule = compile_schedule("UTC", (), ("* 9-15 ? * MON-THU 2027",))
    assert schedule.status(at("2026-12-31 12:00")).opens_at == at("2027-01-04 09:00")
    assert stretches(schedule, "2027-01-04 00:00", "2027-01-05 00:00") == [
        ("2027-01-04T09:00:00Z", "2027-01-04T16:00:00Z")  # every minute of 09:00-15:59
    ]
    assert compile_schedule("UTC", (), ("0 10 1 * ? *",)).status(
        at("2027-01-01 10:00")
    ).closes_at == at("2027-01-01 10:01")


def test_cron_L_is_the_last_day_of_the_month_or_week() -> None:
    last_day = compile_schedule("UTC", (), ("* 10 L * ? *",))
    assert last_day.status(at("2028-02-01 00:00")).opens_at == at("2028-02-29 10:00")
    assert last_day.status(at("2027-02-01 00:00")).opens_at == at("2027-02-28 10:00")
    saturday = compile_schedule("UTC", (), ("0 10 ? * L *",))
    assert saturday.status(at("2027-01-04 00:00")).opens_at == at("2027-01-09 10:00")
    last_friday = compile_schedule("UTC", (), ("0 9 ? * 6L *",))  # AWS: 6 is Friday
    assert last_friday.status(at("2026-01-01 00:00")).opens_at == at("2026-01-30 09:00")
    assert last_friday.status(at("2026-01-31 00:00")).opens_at == at("2026-02-27 09:00")


def test_cron_hash_is_the_nth_weekday_of_the_month() -> None:
    second_tuesday = compile_schedule("UTC", (), ("0-29 11 ? * 3#2 *",))  # 3 is Tuesday
    assert [utc_text(s) for s, _ in second_tuesday.upcoming(at("2026-01-01 00:00"), 3)] == [
        "2026-01-13T11:00:00Z",
        "2026-02-10T11:00:00Z",
        "2026-03-10T11:00:00Z",
    ]
    first_monday = compile_schedule("UTC", (), ("0 9 ? * MON#1 *",))
    assert first_monday.status(at("2026-06-02 00:00")).opens_at == at("2026-07-06 09:00")


def test_cron_W_is_the_nearest_weekday() -> None:
    schedule = compile_schedule("UTC", (), ("0 9 15W * ? *",))
    # 15 August 2026 is a Saturday: Friday the 14th
    assert schedule.status(at("2026-08-01 00:00")).opens_at == at("2026-08-14 09:00")


def test_aws_day_numbers_and_names_agree() -> None:
    by_number = AwsCron.parse("* 9 ? * 2-6 *")  # 1 is Sunday in AWS's numbering
    by_name = AwsCron.parse("* 9 ? * MON-FRI *")
    monday, sunday = datetime(2026, 12, 7, 9, 30), datetime(2026, 12, 6, 9, 30)
    assert by_number.matches(monday) and by_name.matches(monday)
    assert not by_number.matches(sunday) and not by_name.matches(sunday)


def test_a_deployment_window_rule_cron_with_seconds_first_is_accepted() -> None:
    eventbridge = AwsCron.parse("* 9-15 ? * MON-THU *")
    for text in ("* * 9-15 ? * MON-THU", "* * 9-15 ? * MON-THU *", "cron(* 9-15 ? * MON-THU *)"):
        assert AwsCron.parse(text).expression == eventbridge.expression, text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 9-15 * * MON-THU *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 9-15 ? * ? *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 9 * *", "4 fields"),
        ("0 61 ? * MON *", r"cron: hours '61': not a valid value"),
        ("0 9 ? * 3#1,6#3 *", "with '#', give one expression only"),
        ("0 9 LW * ? *", "'LW' and 'L-n' are not supported"),
        ("0 9 ? * 8 *", "'8' is not 1-7 or SUN-SAT"),
        ("0 * * 9 ? * MON", "seconds field must be '*'"),
        ("0 9 ? * MON 1969", r"cron: year '1969': not a valid value"),
    ],
)
def test_bad_crons_name_the_field(text: str, reason: str) -> None:
    with pytest.raises(WindowSpecError, match=reason):
        AwsCron.parse(text)


# endregion
# region min_remaining, status, helpers


def test_min_remaining_closes_the_window_early_and_skips_short_stretches() -> None:
    schedule = compile_schedule("UTC", ("Mon 09:00-10:00", "Tue 09:00-09:30"), (), (), 45 * 60)
    monday = at("2026-12-07 09:00")
    assert schedule.status(monday + 10 * 60).open
    late = schedule.status(monday + 20 * 60)  # only 40 minutes left
    assert not late.open
    # Tuesday's 30 minutes never count: next Monday
    assert late.opens_at == at("2026-12-14 09:00")
    assert [(utc_text(s), utc_text(e or 0)) for s, e in schedule.upcoming(monday, 2)] == [
        ("2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z"),
        ("2026-12-14T09:00:00Z", "2026-12-14T10:00:00Z"),
    ]


def test_blocked_stretches_close_the_window() -> None:
    schedule = compile_schedule("UTC", ("09:00-17:00",))
    t = at("2026-12-07 10:00")
    status = schedule.status(t, [(t - H, t + H)])
    assert not status.open and status.opens_at == t + H
    status = schedule.status(t, [(t + H, float("inf"))])
    assert status.open and status.closes_at == t + H and status.opened_at == at("2026-12-07 09:00")
    assert schedule.status(t, [(t, float("inf"))]) == type(status)(open=False)


def test_a_window_open_for_ever_has_no_closing_and_one_that_never_opens_no_opening() -> None:
    always = compile_schedule("UTC", (), (), ("2020-01-01",))
    status = always.status(at("2026-12-07 10:00"))
    assert status.open and status.closes_at is None
    never = compile_schedule("UTC", (), ("* 9 ? * MON 2020",))
    assert never.status(at("2026-12-07 10:00")) == type(status)(open=False)


def test_describe_opening_names_the_day_time_and_zone() -> None:
    zone = load_zone("Europe/Berlin")
    now = at("2026-12-06 18:00")  # Sunday 19:00 in Berlin
    assert describe_opening(at("2026-12-07 08:00"), now, zone) == (
        "Mon 09:00 Europe/Berlin (in 14h)"
    )
    assert describe_opening(at("2027-01-05 08:00"), now, zone) == (
        "Tue 2027-01-05 09:00 Europe/Berlin (in 29d14h)"
    )
    assert describe_opening(now + 90, now, zone).endswith("(in 2m)")


@pytest.mark.parametrize("name", ["Europe/Berln", "", "../etc/passwd", " UTC"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(WindowSpecError, match="unknown time zone"):
        load_zone(name)


def test_interval_helpers() -> None:
    assert merge([(3, 4), (1, 2), (2, 3), (5, 5)]) == [(1, 4)]
    assert subtract([(0, 10), (20, 30)], [(2, 3), (5, 22), (29, 40)]) == [
        (0, 2),
        (3, 5),
        (22, 29),
    ]


# endregion
