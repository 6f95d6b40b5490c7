"""Schedule expressions with AWS's syntax: :func:`parse` and the next fire time.

``rate(value unit)``
    ``value`` a positive integer without sign or leading zero, ``unit`` one of
    ``minute|minutes|hour|hours|day|days``, singular exactly when the value is 1; one
    space, no other blank. A rate schedule fires every ``value`` units counted from its
    *anchor* (when the rule was created or its expression last changed, to the minute).

``cron(minutes hours day-of-month month day-of-week year)``
    Exactly six fields separated by single spaces, evaluated in UTC:

    ============  ==============  =========================
    field         values          wildcards
    ============  ==============  =========================
    minutes       0-59            ``, - * /``
    hours         0-23            ``, - * /``
    day-of-month  1-31            ``, - * ? / L W``
    month         1-12, JAN-DEC   ``, - * /``
    day-of-week   1-7, SUN-SAT    ``, - * ? L #``
    year          1970-2199       ``, - * /``
    ============  ==============  =========================

    Exactly one of day-of-month and day-of-week is ``?``. A range may wrap (hours
    ``22-2`` is 22, 23, 0, 1, 2); ``a/n`` and ``a-b/n`` step from ``a``. Day-of-month
    ``L`` is the month's last day, ``LW`` its last weekday, ``15W`` the weekday nearest
    the 15th within the month. Day-of-week ``L`` alone is Saturday (the last day of the
    week, 1 being Sunday), ``6L`` the month's last Friday, ``3#2`` its second Tuesday;
    ``L`` and ``#`` forms stand alone in their field. Names are case-insensitive.

Why this is hand-written rather than built on a cron library: ``croniter``, the usual
choice, speaks Unix cron (0 = Sunday, day fields OR-ed when both are restricted,
seconds rather than years as the sixth field) and has no ``W``; the AWS-flavoured
packages on PyPI (``aws-croniter``, ``aws-cron-expression-validator``) are small,
single-maintainer projects that validate but do not compute fire times, or compute them
without ``W``. An adapter would have to rewrite every field and still hand-write ``W``
and the ``?`` rule, which is most of the work. The computation below is a direct search
over the expanded fields (years, then months, then the days of that month, hours,
minutes), so each answer is exact and costs at most a few thousand set look-ups even
for an expression that never fires again (2199 is the last year).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from eventyard.errors import InvalidScheduleExpression

__all__ = ["Cron", "Rate", "Schedule", "floor_minute", "parse"]

_RATE_RE: Final = re.compile(r"rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS: Final = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NUMBER_RE: Final = re.compile(r"[0-9]+")
#: the last year a cron expression may name, and so the end of every search
LAST_YEAR: Final = 2199
FIRST_YEAR: Final = 1970


def floor_minute(epoch: float) -> float:
    """``epoch`` rounded down to the minute."""
    return float(int(epoch // 60) * 60)


@dataclass(slots=True, frozen=True)
class Rate:
    """``rate(value unit)``: every ``seconds`` from an anchor."""

    expression: str
    seconds: int

    def next_after(self, after: float, *, anchor: float) -> float | None:
        """The first tick strictly after ``after``: ``anchor + k * seconds``, ``k >= 1``.

        ``anchor`` is rounded down to the minute, so ticks fall on whole minutes.
        """
        start = floor_minute(anchor)
        if after < start + self.seconds:
            return start + self.seconds
        periods = int((after - start) // self.seconds) + 1
        return start + periods * self.seconds


@dataclass(slots=True, frozen=True)
class _DayOfMonth:
    kind: str  # "any", "values", "last", "last_weekday", "nearest_weekday"
    values: frozenset[int] = frozenset()
    day: int = 0

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        if self.kind == "any":
            return set(range(1, last + 1))
        if self.kind == "values":
            return {d for d in self.values if d <= last}
        if self.kind == "last":
            return {last}
        if self.kind == "last_weekday":
            return {_nearest_weekday(year, month, last, last)}
        if self.day > last:
            return set()
        return {_nearest_weekday(year, month, self.day, last)}


@dataclass(slots=True, frozen=True)
class _DayOfWeek:
    kind: str  # "any", "values", "last_of_month", "nth"
    values: frozenset[int] = frozenset()  # AWS numbering: 1 = Sunday … 7 = Saturday
    day: int = 0
    nth: int = 0

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        if self.kind == "any":
            return set(range(1, last + 1))
        if self.kind == "values":
            return {d for d in range(1, last + 1) if _aws_weekday(year, month, d) in self.values}
        matching = [d for d in range(1, last + 1) if _aws_weekday(year, month, d) == self.day]
        if self.kind == "last_of_month":
            return {matching[-1]}
        return {matching[self.nth - 1]} if self.nth <= len(matching) else set()


@dataclass(slots=True, frozen=True)
class Cron:
    """``cron(...)``: the expanded fields; see the module docstring for the syntax."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_of_month: _DayOfMonth
    months: tuple[int, ...]
    day_of_week: _DayOfWeek
    years: tuple[int, ...]

    def days(self, year: int, month: int) -> list[int]:
        """The days of that month the expression fires on, in order."""
        return sorted(self.day_of_month.days(year, month) & self.day_of_week.days(year, month))

    def next_after(self, after: float, *, anchor: float = 0.0) -> float | None:
        """The first fire time strictly after ``after`` (epoch seconds, UTC), or None
        when the expression never fires again. ``anchor`` is unused (a cron schedule has
        fixed times); it is accepted so that both kinds answer the same call."""
        del anchor
        start = datetime.fromtimestamp(floor_minute(after), UTC) + timedelta(minutes=1)
        first_day = start.date()
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in self.days(year, month):
                    today = date(year, month, day)
                    if today < first_day:
                        continue
                    for hour in self.hours:
                        if today == first_day and hour < start.hour:
                            continue
                        for minute in self.minutes:
                            if today == first_day and hour == start.hour and minute < start.minute:
                                continue
                            return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
        return None


#: a parsed schedule expression
Schedule = Rate | Cron


def parse(expression: str) -> Schedule:
    """The schedule an expression describes.

    Raises:
        InvalidScheduleExpression: the expression is not one AWS accepts; the message
            says why (the AWS API answers with its own fixed text).
    """
    rate = _RATE_RE.fullmatch(expression)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if (value == 1) != (not unit.endswith("s")):
            raise InvalidScheduleExpression(
                f"{expression}: the unit is singular exactly when the value is 1"
            )
        return Rate(expression, value * _UNIT_SECONDS[unit.removesuffix("s")])
    if expression.startswith("rate("):
        raise InvalidScheduleExpression(
            f"{expression}: a rate is rate(N minute|minutes|hour|hours|day|days), N >= 1"
        )
    if not (expression.startswith("cron(") and expression.endswith(")")):
        raise InvalidScheduleExpression(f"{expression}: not a rate(...) or cron(...) expression")
    fields = expression[5:-1].split(" ")
    if len(fields) != 6:
        raise InvalidScheduleExpression(f"{expression}: a cron expression has six fields")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise InvalidScheduleExpression(
            f"{expression}: exactly one of day-of-month and day-of-week must be '?'"
        )
    try:
        return Cron(
            expression,
            minutes=_field(minutes, 0, 59),
            hours=_field(hours, 0, 23),
            day_of_month=_day_of_month(dom),
            months=_field(month, 1, 12, _MONTHS),
            day_of_week=_day_of_week(dow),
            years=_field(year, FIRST_YEAR, LAST_YEAR),
        )
    except _FieldError as exc:
        raise InvalidScheduleExpression(f"{expression}: {exc}") from None


class _FieldError(Exception):
    """A field that does not parse; caught in :func:`parse`, never raised out of it."""


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if _NUMBER_RE.fullmatch(text):
        value = int(text)
        if low <= value <= high:
            return value
        raise _FieldError(f"{text} is not between {low} and {high}")
    upper = text.upper()
    if upper in names:
        return names.index(upper) + low
    raise _FieldError(f"{text!r} is not a value of this field")


def _item(item: str, low: int, high: int, names: tuple[str, ...]) -> list[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _NUMBER_RE.fullmatch(step_text) or int(step_text) < 1:
            raise _FieldError(f"{item!r}: the increment must be a positive integer")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    else:
        first_text, dash, last_text = base.partition("-")
        first = _value(first_text, low, high, names)
        # "a/n" runs from a to the field's end; "a" alone is one value
        last = _value(last_text, low, high, names) if dash else (high if slash else first)
    span = high - low + 1
    # a range may wrap around the field's end (hours 22-2)
    count = (last - first) % span + 1
    ordered = [low + (first - low + i) % span for i in range(count)]
    return ordered[::step]


def _field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> tuple[int, ...]:
    if not text:
        raise _FieldError("an empty field")
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item(item, low, high, names))
    return tuple(sorted(values))


def _day_of_month(text: str) -> _DayOfMonth:
    if text == "?":
        return _DayOfMonth("any")
    upper = text.upper()
    if upper == "L":
        return _DayOfMonth("last")
    if upper == "LW":
        return _DayOfMonth("last_weekday")
    if upper.endswith("W"):
        return _DayOfMonth("nearest_weekday", day=_value(upper[:-1], 1, 31, ()))
    values = _field(text, 1, 31)
    if values == tuple(range(1, 32)):
        return _DayOfMonth("any")
    return _DayOfMonth("values", frozenset(values))


def _day_of_week(text: str) -> _DayOfWeek:
    if text == "?":
        return _DayOfWeek("any")
    upper = text.upper()
    if upper == "L":
        return _DayOfWeek("values", frozenset({7}))
    if "#" in upper:
        day, _, nth = upper.partition("#")
        if not (_NUMBER_RE.fullmatch(nth) and 1 <= int(nth) <= 5):
            raise _FieldError(f"{text!r}: '#' takes a week of the month from 1 to 5")
        return _DayOfWeek("nth", day=_value(day, 1, 7, _DAYS), nth=int(nth))
    if upper.endswith("L"):
        return _DayOfWeek("last_of_month", day=_value(upper[:-1], 1, 7, _DAYS))
    values = _field(text, 1, 7, _DAYS)
    if values == tuple(range(1, 8)):
        return _DayOfWeek("any")
    return _DayOfWeek("values", frozenset(values))


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday … 7 = Saturday."""
    return (date(year, month, day).weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """The weekday (Monday to Friday) nearest ``day`` without leaving the month."""
    weekday = date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day
