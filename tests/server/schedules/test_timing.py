"""Scheduler timing: at(), rate() from its start, cron() in a time zone across DST, the
start and end dates, and flexible windows that do not move."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from eventyard.errors import InvalidScheduleExpression
from eventyard.server.schedules.timing import Timing, flex_offset, parse_expression, zone

NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def local(tz: ZoneInfo, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=tz, fold=fold).timestamp()  # type: ignore[misc]


def ticks(timing: Timing, after: float, count: int, anchor: float = 0.0) -> list[float]:
    found: list[float] = []
    while len(found) < count:
        tick = timing.next_after(after, anchor)
        if tick is None:
            break
        found.append(tick)
        after = tick
    return found


def test_at_is_one_wall_clock_time_in_its_zone() -> None:
    timing = Timing.of("at(2026-07-01T09:30:00)", "Europe/Paris")
    assert timing.one_time
    when = utc(2026, 7, 1, 7, 30)  # CEST is UTC+2
    assert timing.first(when - 3600, 0.0) == when
    assert timing.next_after(when, 0.0) is None
    # the time within the current minute still fires; one gone before does not
    assert timing.first(when + 20, 0.0) == when
    assert timing.first(when + 60, 0.0) is None


@pytest.mark.parametrize(
    "expression",
    ["at(2026-02-30T00:00:00)", "at(2026-01-01 00:00:00)", "at(2026-01-01T00:00)", "at()"],
)
def test_malformed_or_impossible_at_is_refused(expression: str) -> None:
    with pytest.raises(InvalidScheduleExpression):
        parse_expression(expression)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidScheduleExpression):
        zone("Mars/Olympus_Mons")
    with pytest.raises(InvalidScheduleExpression):
        zone("../etc/passwd")
    assert zone(None).key == "UTC"


def test_a_rate_fires_at_once_then_every_period_and_from_its_start_date() -> None:
    timing = Timing.of("rate(5 minutes)")
    now = utc(2026, 1, 1, 12, 0, 40)
    anchor = timing.anchor(now)
    assert anchor == utc(2026, 1, 1, 12, 0)
    first = timing.first(now, anchor)
    assert first == anchor  # at once, as AWS: "rate schedules start immediately"
    assert ticks(timing, first or 0.0, 2, anchor) == [anchor + 300, anchor + 600]
    start = utc(2026, 1, 2, 8, 0)
    later = Timing.of("rate(1 hour)", start=start)
    assert later.anchor(now) == start
    assert later.first(now, later.anchor(now)) == start


def test_a_rate_day_is_24_hours_across_a_dst_change() -> None:
    timing = Timing.of("rate(1 day)", "America/New_York")
    anchor = local(NEW_YORK, 2026, 3, 7, 12, 0)
    # New York springs forward on 2026-03-08: elapsed time, not the wall clock, counts
    assert ticks(timing, anchor, 2, anchor) == [anchor + 86400, anchor + 2 * 86400]


def test_cron_reads_the_zones_wall_clock() -> None:
    timing = Timing.of("cron(0 9 * * ? *)", "America/New_York")
    winter, summer = ticks(timing, utc(2026, 1, 15), 1), ticks(timing, utc(2026, 7, 15), 1)
    assert winter == [utc(2026, 1, 15, 14)]  # EST, UTC-5
    assert summer == [utc(2026, 7, 15, 13)]  # EDT, UTC-4


def test_a_time_skipped_in_spring_does_not_fire_that_day() -> None:
    # New York: 2026-03-08 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day
    timing = Timing.of("cron(30 2 * * ? *)", "America/New_York")
    found = ticks(timing, local(NEW_YORK, 2026, 3, 7, 0, 0), 2)
    assert found == [local(NEW_YORK, 2026, 3, 7, 2, 30), local(NEW_YORK, 2026, 3, 9, 2, 30)]


def test_a_time_repeated_in_autumn_fires_once() -> None:
    # New York: 2026-11-01 02:00 EDT falls back to 01:00 EST; 01:30 happens twice
    timing = Timing.of("cron(30 1 * * ? *)", "America/New_York")
    found = ticks(timing, local(NEW_YORK, 2026, 10, 31, 12, 0), 3)
    assert found == [
        local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0),  # the first 01:30 (EDT)
        local(NEW_YORK, 2026, 11, 2, 1, 30),
        local(NEW_YORK, 2026, 11, 3, 1, 30),
    ]
    # asked from within the repeated hour, the first pass already gone: not again
    second_pass = local(NEW_YORK, 2026, 11, 1, 1, 10, fold=1)
    assert timing.next_after(second_pass, 0.0) == local(NEW_YORK, 2026, 11, 2, 1, 30)


def test_an_hourly_cron_across_the_autumn_change_fires_each_wall_time_once() -> None:
    timing = Timing.of("cron(0 * * * ? *)", "America/New_York")
    found = ticks(timing, local(NEW_YORK, 2026, 11, 1, 0, 30), 3)
    # 01:00 EDT, then 02:00 EST: the repeated 01:00 EST is not fired again
    assert found == [
        local(NEW_YORK, 2026, 11, 1, 1, 0, fold=0),
        local(NEW_YORK, 2026, 11, 1, 2, 0),
        local(NEW_YORK, 2026, 11, 1, 3, 0),
    ]
    assert found[1] - found[0] == 7200


def test_start_and_end_dates_bound_the_ticks() -> None:
    start, end = utc(2026, 5, 1, 10, 0, 30), utc(2026, 5, 1, 10, 3)
    timing = Timing.of("cron(* * * * ? *)", start=start, end=end)
    assert ticks(timing, utc(2026, 4, 1), 10) == [
        utc(2026, 5, 1, 10, 1),
        utc(2026, 5, 1, 10, 2),
        utc(2026, 5, 1, 10, 3),
    ]


def test_flexible_offsets_are_within_the_window_deterministic_and_spread() -> None:
    window = 15 * 60.0
    offsets = [flex_offset("default/s", 1_000_000_000.0 + 60 * n, window) for n in range(500)]
    assert all(0 <= offset < window for offset in offsets)
    again = [flex_offset("default/s", 1_000_000_000.0 + 60 * n, window) for n in range(500)]
    assert offsets == again  # a restart computes the same point
    # spread over the window: every third of it is used
    thirds = {int(offset // (window / 3)) for offset in offsets}
    assert thirds == {0, 1, 2}
    assert flex_offset("default/other", 1_000_000_000.0, window) != offsets[0]
    assert flex_offset("default/s", 1_000_000_000.0, 0.0) == 0.0
    timing = Timing.of("rate(1 hour)", window_minutes=15)
    assert timing.fire_time("default/s", 1_000_000_000.0) == 1_000_000_000.0 + offsets[0]
