"""Schedule expressions: AWS's syntax and validation, and the next fire time.

The fire-time cases are checked against dates worked out by hand (the calendar of the
month is in each case's comment) and against a brute-force minute-by-minute reference
built from the same expanded fields, with hypothesis choosing the start times.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.errors import InvalidScheduleExpression, ValidationError
from eventyard.server.schedules.expression import Cron, Rate, parse


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M")


def following(expression: str, after: str, count: int = 1) -> list[str | None]:
    schedule = parse(expression)
    times: list[str | None] = []
    t: float | None = at(after)
    for _ in range(count):
        assert t is not None
        t = schedule.next_after(t, anchor=at(after))
        times.append(iso(t))
    return times


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "cron(0 2 ? * SAT *)",
        "cron(5,35 14 * * ? *)",
        "cron(15 10 ? * 6L 2002-2005)",
        "cron(0 2 ? * SAT#3 *)",
        "cron(* * ? * SAT#3 *)",
        "cron(0/5 5 ? JAN 1-5 2022)",
        "cron(0-15/1 8-8 ? * 2,3,4,5,6,7 *)",
        "cron(1-31/30 1-1 ? * 1,7 *)",
        "cron(0 8 L * ? *)",
        "cron(0 8 LW * ? *)",
        "cron(0 8 3W * ? *)",
        "cron(0 22-2 ? * L *)",
        "cron(0 0 1 jan,Jul ? 2199)",
        "cron(*/10 * * * ? 1970-2199/2)",
    ],
)
def test_valid_expressions_parse(expression: str) -> None:
    assert parse(expression).expression == expression


@pytest.mark.parametrize(
    "expression",
    [
        # rate: unit, plural rule, value, blanks
        "rate(10 seconds)",
        "rate(10 years)",
        "rate(1 minutes)",
        "rate(1 hours)",
        "rate(1 days)",
        "rate(10 minute)",
        "rate(10 hour)",
        "rate(10 day)",
        "rate()",
        "rate(10)",
        "rate(10 minutess)",
        "rate(foo minutes)",
        "rate(0 minutes)",
        "rate(-10 minutes)",
        "rate(010 minutes)",
        "rate(10 MINUTES)",
        "rate( 10 minutes )",
        "rate(10  minutes)",
        " rate(10 minutes)",
        "rate(10 minutes) ",
        # cron: the day fields' '?' rule
        "cron(0 1 * * * *)",
        "cron(0 1 ? * ? *)",
        "cron(0 1 1 * MON *)",
        # cron: fields, values, names, wildcards in the wrong field
        "cron(INVALID)",
        "cron(0 1 * * ?)",
        "cron(0 1 * * ? * *)",
        "cron(7 20 * * NOT *)",
        "cron(0 dummy ? * MON-FRI *)",
        "cron(71 8 1 * ? *)",
        "cron(0 24 1 * ? *)",
        "cron(0 8 32 * ? *)",
        "cron(0 8 0 * ? *)",
        "cron(0 8 1 13 ? *)",
        "cron(0 8 ? * 8 *)",
        "cron(0 8 ? * 0 *)",
        "cron(0 8 1 * ? 1969)",
        "cron(0 8 1 * ? 2200)",
        "cron(0 8 1 * ? MON)",
        "cron(0 8 1 FOO ? *)",
        "cron(? 8 1 * ? *)",
        "cron(L 8 1 * ? *)",
        "cron(0 8 1W,15 * ? *)",
        "cron(0 8 W * ? *)",
        "cron(0 8 ? * 3#1,6#3 *)",
        "cron(0 8 ? * 3#6 *)",
        "cron(0 8 ? * 3#0 *)",
        "cron(0 8 ? * 6L,2 *)",
        "cron(*/0 8 1 * ? *)",
        "cron(0/x 8 1 * ? *)",
        "cron(0,,5 8 1 * ? *)",
        "cron(0  8 1 * ? *)",
        "cron 0 8 1 * ? *",
        "at(2030-01-01T00:00:00)",
        "",
    ],
)
def test_invalid_expressions_are_refused_with_a_reason(expression: str) -> None:
    with pytest.raises(InvalidScheduleExpression) as info:
        parse(expression)
    assert isinstance(info.value, ValidationError)
    assert info.value.message.startswith(expression)


# -- rate ----------------------------------------------------------------------------------


def test_a_rate_ticks_every_period_from_its_anchor_to_the_minute() -> None:
    schedule = parse("rate(5 minutes)")
    assert isinstance(schedule, Rate) and schedule.seconds == 300
    anchor = at("2026-03-01T10:07:42")
    assert iso(schedule.next_after(anchor, anchor=anchor)) == "2026-03-01T10:12"
    assert iso(schedule.next_after(at("2026-03-01T10:12"), anchor=anchor)) == "2026-03-01T10:17"
    # long after the anchor: the first period boundary strictly after the time
    assert iso(schedule.next_after(at("2026-03-02T00:00:30"), anchor=anchor)) == (
        "2026-03-02T00:02"
    )
    assert parse("rate(1 day)").next_after(anchor, anchor=anchor) == at("2026-03-02T10:07")
    assert parse("rate(2 hours)").next_after(anchor, anchor=anchor) == at("2026-03-01T12:07")


# -- cron ----------------------------------------------------------------------------------


def test_plain_fields_lists_ranges_and_increments() -> None:
    assert following("cron(5,35 14 * * ? *)", "2026-03-01T14:05", 3) == [
        "2026-03-01T14:35",
        "2026-03-02T14:05",
        "2026-03-02T14:35",
    ]
    assert following("cron(0/20 8-9 ? * MON-FRI *)", "2026-03-06T09:45", 3) == [
        # Friday 6 March 2026; the weekend is skipped
        "2026-03-09T08:00",
        "2026-03-09T08:20",
        "2026-03-09T08:40",
    ]
    # a wrapping range of hours, with an increment
    assert following("cron(0 22-2/2 * * ? *)", "2026-03-01T21:00", 3) == [
        "2026-03-01T22:00",
        "2026-03-02T00:00",
        "2026-03-02T02:00",
    ]


def test_the_minute_given_is_excluded_and_seconds_are_ignored() -> None:
    assert following("cron(* * * * ? *)", "2026-03-01T10:00:59") == ["2026-03-01T10:01"]
    assert following("cron(0 10 * * ? *)", "2026-03-01T10:00") == ["2026-03-02T10:00"]


def test_month_ends_and_leap_years() -> None:
    # the 31st fires only in months that have one
    assert following("cron(0 0 31 * ? *)", "2026-01-31T12:00", 3) == [
        "2026-03-31T00:00",
        "2026-05-31T00:00",
        "2026-07-31T00:00",
    ]
    # 29 February: only leap years (2100 is none)
    assert following("cron(0 0 29 2 ? *)", "2024-03-01T00:00", 2) == [
        "2028-02-29T00:00",
        "2032-02-29T00:00",
    ]
    assert following("cron(0 0 29 2 ? 2097-2103)", "2096-03-01T00:00") == [None]
    # L: the last day, whatever the month's length
    assert following("cron(0 0 L * ? *)", "2028-01-31T12:00", 3) == [
        "2028-02-29T00:00",
        "2028-03-31T00:00",
        "2028-04-30T00:00",
    ]


def test_w_is_the_nearest_weekday_within_the_month() -> None:
    # Nov 2026: the 15th is a Sunday → Monday 16th; Aug 2026: the 15th is a Saturday →
    # Friday 14th; Aug 2026: the 1st is a Saturday → Monday 3rd (not July's 31st)
    assert following("cron(0 0 15W * ? *)", "2026-11-01T00:00") == ["2026-11-16T00:00"]
    assert following("cron(0 0 15W * ? *)", "2026-08-01T00:00") == ["2026-08-14T00:00"]
    assert following("cron(0 0 1W * ? *)", "2026-07-31T00:00") == ["2026-08-03T00:00"]
    # May 2026: the 31st is a Sunday → Friday 29th (not June's 1st)
    assert following("cron(0 0 31W * ? *)", "2026-05-01T00:00") == ["2026-05-29T00:00"]
    assert following("cron(0 0 LW * ? *)", "2026-05-01T00:00") == ["2026-05-29T00:00"]
    # 31W in a 30-day month does not fire
    assert following("cron(0 0 31W 6 ? 2026)", "2026-01-01T00:00") == [None]


def test_day_of_week_l_and_hash() -> None:
    # 1 = Sunday: 6L is the last Friday; January 2002 ends on a Thursday (the 31st)
    assert following("cron(15 10 ? * 6L 2002-2005)", "2002-01-01T00:00") == ["2002-01-25T10:15"]
    # L alone: Saturday, the last day of the week
    assert following("cron(0 0 ? * L *)", "2026-03-01T00:00", 2) == [
        "2026-03-07T00:00",
        "2026-03-14T00:00",
    ]
    # SAT#3: the third Saturday; December 2026 starts on a Tuesday
    assert following("cron(0 2 ? * SAT#3 *)", "2026-12-03T00:00") == ["2026-12-19T02:00"]
    # 2#5: a fifth Monday, only in months that have five (March 2026 has; April has not)
    assert following("cron(0 0 ? * 2#5 *)", "2026-03-01T00:00", 2) == [
        "2026-03-30T00:00",
        "2026-06-29T00:00",
    ]


def test_an_expression_whose_years_are_over_never_fires_again() -> None:
    assert following("cron(0/5 5 ? JAN 1-5 2022)", "2026-01-01T00:00") == [None]
    # 1-5 is Sunday to Thursday; 1 January 2022 is a Saturday
    assert following("cron(0/5 5 ? JAN 1-5 2022)", "2021-12-31T00:00", 2) == [
        "2022-01-02T05:00",
        "2022-01-02T05:05",
    ]


def _reference(cron: Cron, after: float, horizon: int) -> float | None:
    """Minute by minute, the first time whose fields all match (within ``horizon``)."""
    t = datetime.fromtimestamp(after - after % 60, UTC) + timedelta(minutes=1)
    for _ in range(horizon):
        if (
            t.year in cron.years
            and t.month in cron.months
            and t.hour in cron.hours
            and t.minute in cron.minutes
            and t.day in cron.days(t.year, t.month)
        ):
            return t.timestamp()
        t += timedelta(minutes=1)
    return None


@settings(max_examples=60, deadline=None)
@given(
    expression=st.sampled_from(
        [
            "cron(0/7 */5 ? * MON,WED,FRI *)",
            "cron(30 23 L * ? *)",
            "cron(0 12 15W * ? *)",
            "cron(*/13 3-4 ? * 6L *)",
            "cron(45 1 ? * 1#2 *)",
            "cron(0 20-3 1,15,31 * ? *)",
        ]
    ),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_the_search_agrees_with_a_minute_by_minute_reference(
    expression: str, start: datetime
) -> None:
    cron = parse(expression)
    assert isinstance(cron, Cron)
    after = start.replace(tzinfo=UTC).timestamp()
    expected = _reference(cron, after, horizon=62 * 24 * 60)
    assert expected is not None  # each of these fires at least every two months
    assert cron.next_after(after) == expected


def test_the_day_sets_follow_the_calendar() -> None:
    cron = parse("cron(0 0 ? * 2#1 *)")
    assert isinstance(cron, Cron)
    for month in range(1, 13):
        [day] = cron.days(2026, month)
        assert calendar.weekday(2026, month, day) == calendar.MONDAY and day <= 7
