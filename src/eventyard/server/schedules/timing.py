"""EventBridge Scheduler's timing: when a schedule's ticks fall, in its time zone.

A Scheduler schedule has an expression (``at(...)``, ``rate(...)`` or ``cron(...)``), a
time zone (``ScheduleExpressionTimezone``, an IANA name, UTC by default), an optional
``StartDate`` and ``EndDate`` and a flexible time window. :class:`Timing` holds them
parsed and answers when the ticks fall; it is a pure function of time, with no I/O:

``at(yyyy-mm-ddThh:mm:ss)``
    One tick, at that wall-clock time in the schedule's time zone (a time that the zone
    skips at a daylight-saving change is read with the offset before the change, as
    :mod:`zoneinfo` does).
``rate(value unit)``
    Every ``value`` units of elapsed time (a day is 86,400 seconds whatever the zone's
    clock does), from ``StartDate`` when there is one, else from when the schedule
    started (to the minute); the first tick is that moment itself, as on AWS ("rate
    schedules start at StartDate, or immediately").
``cron(...)``
    AWS's six fields (:mod:`eventyard.server.schedules.expression`) read on the zone's
    wall clock. At daylight-saving changes, as AWS documents: a time the clock skips in
    spring does not fire that day, and a time the clock goes through twice in autumn
    fires once, the first time.

``StartDate``/``EndDate`` bound the ticks (none before the start, none after the end).

**Flexible windows.** With ``FlexibleTimeWindow`` ``FLEXIBLE`` and
``MaximumWindowInMinutes`` ``m``, a tick fires at a point within ``m`` minutes after its
time, drawn from a hash of the schedule and the tick (:func:`flex_offset`): spread like
a random draw across schedules and ticks, but the same every time it is computed, so a
restart does not move a tick that is already waiting.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventyard.errors import InvalidScheduleExpression
from eventyard.server.schedules.expression import Cron, Rate, floor_minute, parse

__all__ = ["At", "Timing", "flex_offset", "parse_at", "parse_expression", "zone"]

_AT_RE: Final = re.compile(
    r"at\(([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\)"
)
# how many skipped or repeated wall-clock times a cron search steps over at most (each
# daylight-saving change costs one per firing minute in the changed hour)
_MAX_STEPS: Final = 10_000


@dataclass(slots=True, frozen=True)
class At:
    """``at(...)``: one wall-clock time (naive), read in the schedule's time zone."""

    expression: str
    local: datetime


def parse_at(expression: str) -> At:
    """The one-time schedule ``at(yyyy-mm-ddThh:mm:ss)`` describes.

    Raises:
        InvalidScheduleExpression: the expression is not of that form or not a real date.
    """
    match = _AT_RE.fullmatch(expression)
    if match is None:
        raise InvalidScheduleExpression(
            f"{expression}: a one-time schedule is at(yyyy-mm-ddThh:mm:ss)"
        )
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise InvalidScheduleExpression(f"{expression}: {exc}") from None
    return At(expression, local)


def parse_expression(expression: str) -> At | Rate | Cron:
    """The schedule of an ``at``, ``rate`` or ``cron`` expression.

    Raises:
        InvalidScheduleExpression: the expression is not one Scheduler accepts.
    """
    if expression.startswith("at("):
        return parse_at(expression)
    return parse(expression)


def zone(name: str | None) -> ZoneInfo:
    """The time zone of an IANA name (None: UTC).

    Raises:
        InvalidScheduleExpression: no such time zone.
    """
    if name is None or name == "UTC":
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidScheduleExpression(f"{name!r} is not a time zone") from None


def flex_offset(key: str, tick: float, window: float) -> float:
    """Where in a flexible window of ``window`` seconds tick ``tick`` of the schedule
    ``key`` fires, in seconds after the tick (whole milliseconds, below ``window``).

    A hash, not a random number: the same schedule and tick always answer the same.
    """
    if window <= 0:
        return 0.0
    digest = hashlib.sha256(f"{key}\n{tick!r}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return int(fraction * window * 1000) / 1000


@dataclass(slots=True, frozen=True)
class Timing:
    """A schedule's ticks; see the module docstring.

    Attributes:
        schedule: the parsed expression.
        zone: the time zone the expression is read in.
        start: ``StartDate`` (epoch seconds), None without one.
        end: ``EndDate`` (epoch seconds), None without one.
        window: the flexible window in seconds (0: ``OFF``).
    """

    schedule: At | Rate | Cron
    zone: ZoneInfo
    start: float | None = None
    end: float | None = None
    window: float = 0.0

    @classmethod
    def of(
        cls,
        expression: str,
        timezone: str | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        window_minutes: int = 0,
    ) -> Timing:
        """Parse a schedule's timing.

        Raises:
            InvalidScheduleExpression: the expression or the time zone is not valid.
        """
        return cls(parse_expression(expression), zone(timezone), start, end, window_minutes * 60.0)

    @property
    def one_time(self) -> bool:
        """Whether it is an ``at(...)`` schedule."""
        return isinstance(self.schedule, At)

    def anchor(self, now: float) -> float:
        """Where a ``rate`` counts from when the schedule starts at ``now``: its
        ``StartDate``, or ``now``, to the minute."""
        return floor_minute(self.start if self.start is not None else now)

    def first(self, now: float, anchor: float) -> float | None:
        """The first tick of a schedule that starts (or starts afresh) at ``now``.

        A one-time time or a rate tick within the current minute still counts (a rate
        fires at once); a cron time must be after ``now``. None: it never fires.
        """
        if isinstance(self.schedule, Cron):
            return self.next_after(now, anchor)
        return self.next_after(floor_minute(now) - 0.001, anchor)

    def next_after(self, after: float, anchor: float) -> float | None:
        """The first tick strictly after ``after`` within the start and end dates, or
        None when there is none (``anchor``: see :meth:`anchor`)."""
        if self.start is not None and after < self.start:
            after = self.start - 0.001
        schedule = self.schedule
        if isinstance(schedule, At):
            tick: float | None = schedule.local.replace(tzinfo=self.zone).timestamp()
            if tick is not None and tick <= after:
                tick = None
        elif isinstance(schedule, Rate):
            # ticks anchor + k * period for k >= 0
            tick = schedule.next_after(after, anchor=anchor - schedule.seconds)
        else:
            tick = self._cron_after(schedule, after)
        if tick is None or (self.end is not None and tick > self.end):
            return None
        return tick

    def _cron_after(self, cron: Cron, after: float) -> float | None:
        """The first wall-clock time of ``cron`` in the zone strictly after ``after``."""
        if self.zone.key == "UTC":
            return cron.next_after(after)
        local = datetime.fromtimestamp(after, self.zone).replace(tzinfo=None)
        cursor = local.replace(tzinfo=UTC).timestamp()  # the wall clock, as if it were UTC
        for _ in range(_MAX_STEPS):
            candidate = cron.next_after(cursor)
            if candidate is None:
                return None
            wall = datetime.fromtimestamp(candidate, UTC).replace(tzinfo=None)
            instant = wall.replace(tzinfo=self.zone, fold=0).timestamp()
            back = datetime.fromtimestamp(instant, self.zone).replace(tzinfo=None)
            # skipped in spring (no such wall time), or already gone by (the first pass
            # of an hour the clock repeats in autumn): not this one
            if back == wall and instant > after:
                return instant
            cursor = candidate
        return None

    def fire_time(self, key: str, tick: float) -> float:
        """When tick ``tick`` of the schedule ``key`` fires (its flexible-window point)."""
        return tick + flex_offset(key, tick, self.window)
