"""Telling a store's listeners what its writes changed: the notes of a write, the fan-out.

A store collects, while a write runs, what the write changed that someone may wait for
(:class:`Notes`: catalog changes, targets with new due deliveries, queues with new
messages) and, once the write is durable, hands the notes of every committed write to
:class:`Listeners`, which calls each registered
:class:`~eventyard.server.store.protocol.StoreListener`. Notes of a write that failed or
was rolled back are dropped: listeners hear only of what is on disk.

A listener that raises is logged and skipped; the write it was told about stays done,
and the other listeners are still told. Listeners run on the event loop and must not
block (a notification is a hint to look again, never the data itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from eventyard.server.store.protocol import CatalogChange, StoreListener

__all__ = ["Listeners", "Notes"]

log = structlog.get_logger("eventyard.server.store")

_A = TypeVar("_A")


@dataclass(slots=True)
class Notes:
    """What one write (or a batch of writes) changed, for the listeners.

    Attributes:
        changes: catalog changes, in global revision order.
        targets: target keys that got delivery records due now (or became due again).
        queues: queues that got messages.
    """

    changes: list[CatalogChange] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.changes or self.targets or self.queues)

    def add(self, other: Notes) -> None:
        """Add the notes of a later write."""
        self.changes.extend(other.changes)
        self.targets |= other.targets
        self.queues |= other.queues


class Listeners:
    """The listeners of one store, in registration order."""

    def __init__(self) -> None:
        self._listeners: list[StoreListener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: StoreListener) -> None:
        """Register ``listener`` for every change told from now on."""
        self._listeners.append(listener)

    def tell(self, notes: Notes) -> None:
        """Tell every listener about committed ``notes``: the catalog changes one by one
        and in order, then the targets, then the queues. Never raises."""
        if not notes:
            return
        targets = frozenset(notes.targets)
        queues = frozenset(notes.queues)
        for listener in list(self._listeners):
            for change in notes.changes:
                _call(listener.catalog_changed, change)
            if targets:
                _call(listener.deliveries_ready, targets)
            if queues:
                _call(listener.queues_ready, queues)


def _call(method: Callable[[_A], None], argument: _A) -> None:
    try:
        method(argument)
    except Exception:
        # the write is committed and must stay so: a listener's failure is its own
        log.exception("a store listener failed; the change it was told about stands")
