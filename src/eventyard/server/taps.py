"""Live taps: the events a bus accepts, as they are committed, for ``eventyard tail``.

A :class:`Tap` is one watcher's subscription to one bus. :class:`Taps` keeps the router's
taps by bus: the router offers each event it commits (put, forwarded, replayed, its own)
to the taps of the event's bus, after the store transaction, and each tap also follows
the events other processes sharing the store append to its bus
(:meth:`~eventyard.server.store.Store.follow_log`). A tap is a hint for a live view,
never a delivery: a tap that falls behind loses the newest events and counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable

from eventyard.envelope import Envelope
from eventyard.server.store import Store

__all__ = ["Tap", "Taps"]


def _nothing() -> None:
    pass


class Tap:
    """A live subscription to the events a bus accepts (``eventyard tail``).

    Events arrive in ``queue`` as their envelope JSON after they are committed. A tap
    that falls behind by more than ``maxsize`` events loses the newest ones and counts
    them in ``dropped``, so a slow watcher never slows ingest.
    """

    def __init__(self, bus: str, maxsize: int = 10_000) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.stop_following: Callable[[], None] = _nothing

    def offer(self, body: bytes) -> None:
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            self.dropped += 1


class Taps:
    """The taps of every bus, fed with the events this process commits.

    Args:
        store: the store whose other processes' events each tap also follows.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._taps: dict[str, set[Tap]] = {}

    def subscribe(self, bus: str) -> Tap:
        """Start receiving the events bus ``bus`` accepts from now on."""
        tap = Tap(bus)
        self._taps.setdefault(bus, set()).add(tap)
        # events other processes sharing the store accept on the bus (a cluster)
        tap.stop_following = self.store.follow_log(bus, tap.offer)
        return tap

    def unsubscribe(self, tap: Tap) -> None:
        """Stop a subscription made by :meth:`subscribe`."""
        tap.stop_following()
        taps = self._taps.get(tap.bus)
        if taps is not None:
            taps.discard(tap)
            if not taps:
                del self._taps[tap.bus]

    def of(self, bus: str) -> Collection[Tap]:
        """The taps of bus ``bus`` now (none: empty)."""
        return self._taps.get(bus, ())

    def offer(self, envelopes: Iterable[Envelope]) -> None:
        """Give each committed event to the taps of its bus."""
        if self._taps:
            for env in envelopes:
                for tap in self._taps.get(env.bus, ()):
                    tap.offer(env.body)
