"""Which archives keep an event: the router's in-memory view of the archives, and the
envelope of a replayed event.

An archive (catalog kind ``archive``) belongs to one bus. Its pattern is compiled into
that bus's :class:`~eventyard.patterns.Matcher` beside the rules, under an id no rule key
can have (:data:`MATCH_PREFIX` and the archive's key), so one match of an event tells both
the rules and the archives it concerns; an archive without a pattern keeps every event
of its bus. :class:`ArchiveIndex` holds that per bus, and :meth:`BusArchives.split` parts
a match into rule keys and archive keys. A bus without an archive has no entry: its
events pay nothing for archives.

A replayed event is the archived envelope with ``replay-name`` right after ``region``
(:func:`with_replay_name`), as AWS writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import structlog

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import Matcher
from eventyard.server.catalog import INTERNAL_BUS, ArchiveDoc, archive_store

__all__ = [
    "MATCH_PREFIX",
    "REPLAY_NAME",
    "ArchiveIndex",
    "BusArchives",
    "event_time",
    "is_archive_match",
    "with_replay_name",
]

log = structlog.get_logger("eventyard.server.archiving")

#: the prefix of an archive's id in a bus's matcher: no rule key starts with "@" (bus
#: names cannot)
MATCH_PREFIX: Final = "@archive/"
#: the envelope key a replayed event carries (AWS's), placed right after ``region``
REPLAY_NAME: Final = "replay-name"


def is_archive_match(key: str) -> bool:
    """Whether a matcher id is an archive's (not a rule's)."""
    return key.startswith(MATCH_PREFIX)


@dataclass(slots=True)
class BusArchives:
    """The archives of one bus: the store keys of those that keep every event, and the
    patterns of those with one (compiled into the bus's matcher as ``MATCH_PREFIX +
    key``), with the store key of each archive key (:func:`archive_store`)."""

    every: list[str] = field(default_factory=list)
    patterns: dict[str, str] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)

    def split(self, matched: list[str]) -> tuple[list[str], tuple[str, ...]]:
        """The rule keys among the matcher's ids ``matched`` and the store keys of the
        archives that keep the event."""
        if not self.patterns:
            return matched, tuple(self.every)
        rules = [k for k in matched if not k.startswith(MATCH_PREFIX)]
        if len(rules) == len(matched):
            return matched, tuple(self.every)
        stores = self.stores
        archived = [stores[k[len(MATCH_PREFIX) :]] for k in matched if k.startswith(MATCH_PREFIX)]
        return rules, (*self.every, *archived)

    def __bool__(self) -> bool:
        return bool(self.every or self.patterns)


class ArchiveIndex:
    """The archives of every bus, as the router matches them.

    ``matcher_of(bus)`` gives (creating it if needed) the bus's matcher, which the router
    owns and shares with its rules.
    """

    def __init__(self, matcher_of: Callable[[str], Matcher]) -> None:
        self._matcher_of = matcher_of
        self._buses: dict[str, BusArchives] = {}
        self._bus_of: dict[str, str] = {}  # the bus of each archive key

    def __bool__(self) -> bool:
        return bool(self._buses)

    def of(self, bus: str) -> BusArchives | None:
        """The archives of ``bus``, None when it has none."""
        return self._buses.get(bus)

    def changed(
        self, key: str, archive: ArchiveDoc | None, matchers: Mapping[str, Matcher]
    ) -> None:
        """Apply a committed archive change (``archive`` None: it was deleted);
        ``matchers`` are the router's matchers by bus."""
        bus = self._bus_of.pop(key, None)
        if bus is not None:
            held = self._buses[bus]
            if held.patterns.pop(key, None) is not None:
                matcher = matchers.get(bus)
                if matcher is not None:
                    matcher.remove(MATCH_PREFIX + key)
            store = held.stores.pop(key, None)
            if store is not None and store in held.every:
                held.every.remove(store)
            if not held:
                del self._buses[bus]
        if archive is None or archive.get("State", "ENABLED") != "ENABLED":
            return
        bus = archive[INTERNAL_BUS]
        pattern = archive.get("EventPattern")
        held = self._buses.setdefault(bus, BusArchives())
        if pattern:
            try:
                self._matcher_of(bus).add(MATCH_PREFIX + key, pattern)
            except InvalidEventPattern:
                log.exception("archive pattern does not compile; archive skipped", archive=key)
                if not held:
                    del self._buses[bus]
                return
            held.patterns[key] = pattern
        else:
            held.every.append(archive_store(key, archive))
        held.stores[key] = archive_store(key, archive)
        self._bus_of[key] = bus

    def matcher_dropped(self, bus: str) -> None:
        """The bus's matcher was dropped (the bus was deleted): archives outlive their
        bus, and one created again under the name fills them again, so their patterns go
        into the bus's next matcher."""
        held = self._buses.get(bus)
        if held is not None and held.patterns:
            matcher = self._matcher_of(bus)
            for key, pattern in held.patterns.items():
                matcher.add(MATCH_PREFIX + key, pattern)


def event_time(event: Mapping[str, Any], default: float) -> float:
    """An envelope's ``time`` as epoch seconds (``default`` if it does not parse)."""
    text = event.get("time")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return default


def with_replay_name(event: dict[str, Any], name: str) -> dict[str, Any]:
    """``event`` with ``replay-name`` inserted right after ``region`` (at the end when
    it has no ``region``), replacing any it had."""
    out: dict[str, Any] = {}
    placed = False
    for key, value in event.items():
        if key == REPLAY_NAME:
            continue
        out[key] = value
        if key == "region":
            out[REPLAY_NAME] = name
            placed = True
    if not placed:
        out[REPLAY_NAME] = name
    return out
