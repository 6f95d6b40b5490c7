"""Event search: a bus's stored events that match a pattern, over a time window, paged.

:func:`search_events` answers ``GET /v1/buses/{bus}/events`` (and ``eventyard events
search``). It reads the log by ingestion time (:meth:`Store.read_log_window`, whose
time index makes the cost proportional to the window, never to the whole log) and
keeps the events that match an EventBridge pattern (any pattern a rule could have).

A page holds at most ``limit`` events and reads at most ``scan`` log records: a
pattern that matches little over a long window answers a short (even empty) page
with a ``next`` token rather than a slow request. ``next`` is opaque to clients: it
holds the absolute window (a relative ``since`` such as ``1h`` is resolved once, on
the first page), where the scan stopped and a digest of the bus and pattern, so a
token is refused with another search.

Times (:func:`parse_time`) are ISO 8601 (``2026-01-02T03:04:05Z``; no zone means
UTC), epoch seconds, or a duration before now: ``90s``, ``15m``, ``1h``, ``2d``, ``1w``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from eventyard.errors import ValidationError
from eventyard.patterns import CompiledPattern, Matcher
from eventyard.server.store import LogRecord, Store

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_TIME",
    "SearchPage",
    "check_time",
    "parse_limit",
    "parse_time",
    "search_events",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: log records one page reads at most
SCAN = 10_000
_READ = 1000
#: the latest time a search or trace accepts: 9999-12-31T23:59:59Z (times are 0..MAX_TIME)
MAX_TIME = 253_402_300_799.0
_RELATIVE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(slots=True, frozen=True)
class SearchPage:
    """One page of a search: the matching records and the token of the next page
    (None when the window is exhausted)."""

    records: list[LogRecord]
    next: str | None
    since: float
    until: float


def check_time(value: float, name: str) -> float:
    """``value`` when it is a finite time from 1970 to 9999 (0..:data:`MAX_TIME`).

    Raises:
        ValidationError: it is not.
    """
    if not 0.0 <= value <= MAX_TIME:  # also refuses NaN
        raise ValidationError(
            f"{name} must be a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z "
            f"(epoch seconds 0 to {MAX_TIME:.0f})."
        )
    return value


def parse_time(text: str, now: float, name: str) -> float:
    """An absolute or relative time as epoch seconds, from 1970 to 9999.

    Raises:
        ValidationError: ``text`` is none of the accepted forms, or is out of that
            range (``name`` says which parameter it was).
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative is not None:
        return check_time(now - float(relative.group(1)) * _UNIT[relative.group(2)], name)
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return check_time(number, name)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 time (2026-01-02T03:04:05Z), epoch seconds or a "
            f"duration before now (90s, 15m, 1h, 2d, 1w), not {text!r}."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return check_time(when.timestamp(), name)


def parse_limit(text: str | None) -> int:
    """The ``limit`` parameter: 1 to 1000, 100 by default.

    Raises:
        ValidationError: not an integer in range.
    """
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return value


def _digest(bus: str, pattern: str | None) -> str:
    return hashlib.sha256(f"{bus}\n{pattern or ''}".encode()).hexdigest()[:16]


def _token(bus: str, pattern: str | None, since: float, until: float, after: int) -> str:
    raw = orjson.dumps({"d": _digest(bus, pattern), "s": since, "u": until, "a": after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _untoken(token: str, bus: str, pattern: str | None) -> tuple[float, float, int]:
    """``(since, until, after_seq)`` of a ``next`` token of this search.

    Raises:
        ValidationError: the token is malformed or belongs to another search.
    """
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        since, until, after = float(data["s"]), float(data["u"]), int(data["a"])
        digest = data["d"]
        check_time(since, "since")
        check_time(until, "until")
    except (
        binascii.Error,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        OverflowError,
        ValidationError,
    ):
        raise ValidationError("The next token is not valid.") from None
    if not 0 <= after < 2**63:
        raise ValidationError("The next token is not valid.")
    if digest != _digest(bus, pattern):
        raise ValidationError(
            "The next token belongs to another search: repeat the bus and pattern of "
            "the search that gave it."
        )
    return since, until, after


async def search_events(
    store: Store,
    bus: str,
    *,
    pattern: tuple[str, CompiledPattern] | None,
    window: tuple[float, float],
    limit: int = DEFAULT_LIMIT,
    next_token: str | None = None,
    scan: int = SCAN,
) -> SearchPage:
    """One page of the events of ``bus`` ingested in ``window`` that match ``pattern``.

    Args:
        store: the store whose log is read.
        bus: the bus's internal name.
        pattern: ``(text, compiled)``, None for every event.
        window: ``(since, until)`` in epoch seconds; ignored when ``next_token`` is given
            (the token holds the first page's window).
        limit: the most events on the page.
        next_token: the ``next`` of the previous page.
        scan: the most log records the page reads.

    Raises:
        ValidationError: the window is empty, or the token is not this search's.
        StoreError: the store failed.
    """
    text = None if pattern is None else pattern[0]
    if next_token is not None:
        since, until, after = _untoken(next_token, bus, text)
    else:
        (since, until), after = window, 0
    if not since < until:
        raise ValidationError("since must be before until.")
    matcher: Matcher | None = None
    if pattern is not None:
        matcher = Matcher()
        matcher.add("search", pattern[1])
    found: list[LogRecord] = []
    scanned = 0
    while scanned < scan:
        want = min(_READ, scan - scanned)
        page = await store.read_log_window(bus, since, until, after, want)
        scanned += len(page)
        for record in page:
            after = record.seq
            if matcher is None or _matches(matcher, record.body):
                found.append(record)
                if len(found) == limit:
                    return SearchPage(found, _token(bus, text, since, until, after), since, until)
        if len(page) < want:
            return SearchPage(found, None, since, until)
    return SearchPage(found, _token(bus, text, since, until, after), since, until)


def _matches(matcher: Matcher, body: bytes) -> bool:
    try:
        event: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and bool(matcher.match(event))
