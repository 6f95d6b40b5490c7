"""Backpressure: ingest stops taking events while the delivery backlog is too deep.

Every pending delivery record is a promise the server has made, and a dead target lets
them pile up without bound: on disk, and in the time it takes to work them off. So
ingest watches the store's count of pending deliveries (:meth:`Store.pending_count`, a
counter, not a scan) with two marks. Once the count reaches ``max_backlog`` the server
*throttles*: PutEvents answers ``ThrottlingException`` for the whole request, having
acknowledged nothing, and ``/readyz`` answers 503 with the reason. It takes events again
once the count falls below ``resume_backlog`` (by default 90 % of ``max_backlog``), so
it does not flap at the mark.

botocore and the eventyard SDK retry ``ThrottlingException`` with backoff, so producers
slow down instead of failing. Events that bus targets forward are held back the same way
(their delivery is retried later), so the engine cannot grow the backlog either.
"""

from __future__ import annotations

import structlog

from eventyard.errors import Throttling
from eventyard.server.config import Settings
from eventyard.server.store import Store

__all__ = ["Backpressure"]

_log = structlog.get_logger("eventyard.server.backpressure")


class Backpressure:
    """The throttle with hysteresis over a store's pending delivery count.

    Args:
        store: the store whose :meth:`~Store.pending_count` is watched.
        settings: ``max_backlog`` (0: never throttle) and ``resume_backlog``.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self.high = settings.max_backlog
        self.low = settings.resume_backlog or (settings.max_backlog * 9) // 10
        self._throttling = False

    def reason(self) -> str | None:
        """Why new events are refused now, or None while they are taken."""
        if not self.high:
            return None
        count = self._store.pending_count()
        if self._throttling:
            if count < self.low:
                self._throttling = False
                _log.info(
                    "delivery backlog below the resume mark; taking events again",
                    backlog=count,
                    resume_backlog=self.low,
                )
                return None
        elif count >= self.high:
            self._throttling = True
            _log.warning(
                "delivery backlog at its limit; throttling PutEvents",
                backlog=count,
                max_backlog=self.high,
                resume_backlog=self.low,
            )
        if not self._throttling:
            return None
        return (
            f"the delivery backlog ({count} pending deliveries) passed max_backlog "
            f"({self.high}); new events are refused until it is below {self.low}"
        )

    def check(self) -> None:
        """Raise :class:`Throttling` while new events are refused.

        Raises:
            Throttling: the backlog passed ``max_backlog`` and is not yet back below
                ``resume_backlog``.
        """
        why = self.reason()
        if why is not None:
            raise Throttling(f"Rate exceeded: {why}.")
