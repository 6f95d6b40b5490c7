"""Delivery leases of a single-process store, and where each target's next claim starts.

The SQLite store admits one process per file (:mod:`.filelock`), so its leases live in
this process's memory, in a :class:`LeaseBook`, not in the database: a lease cannot
outlive the process that holds it, and a restart, which ends every owner, clears them
all, which is exactly what a lease means. Nothing durable depends on a lease: a record
whose lease is lost is delivered again by its next owner (at least once).

**Claims never re-read leased records.** A claim must return due, unleased records of
one target in ``(due, id)`` order. With a large backlog (a dead target, a million
records) most of the target's due records are leased to the engine at any moment, and
a claim that scanned from the first due record would wade through all of them. So each
target has a *claim mark*, a ``(due, id)`` position: every record at or before the mark
is leased, gone, or listed in the target's *returned* heap. A claim takes the returned
positions that are due and reads the index range after the mark (one indexed range
read), merges both in ``(due, id)`` order, and moves the mark to the last record it
used from the range. Records after the mark are leased only in a rare case (one whose
settle was committing while the claim read past it), so the range read almost never
meets a leased record. The mark never moves back:

* a record whose lease ends without its deletion (a retry or release settled by its
  owner, a lease that ran out) goes on the returned heap if its position is at or
  before the mark; after it, the range read finds it anyway;
* a record created at or before the mark (its due time was taken before a later due
  record was claimed; clocks of producers differ by a little) goes there too.

The heap's entries are hints: a claim checks each against the lease book and the row
itself (a record that moved again, or was settled, is skipped), so a stale entry costs
a look-up, never a wrong claim. A target without leases and returned positions forgets
its mark (there is nothing before it), so idle targets cost no memory.

**Settles are conditional and exact.** A settle marks the leases it holds as
*settling* when its write runs (:meth:`LeaseBook.begin_settle`), so a lease that runs
out during the commit is not claimed by another owner before the commit lands; the
commit's outcome then ends the leases or, if the write failed, keeps them
(:meth:`LeaseBook.end_settle`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["START", "LeaseBook", "Position"]

#: a record's place in its target's claim order
Position = tuple[float, int]
#: the mark of a target no claim has read: before every record
START: Final[Position] = (-math.inf, 0)


@dataclass(slots=True)
class _Lease:
    """One owner's lease on one record, which sat at ``(due, id)`` when claimed."""

    owner: str
    target: str
    due: float
    until: float
    settling: bool = False


@dataclass(slots=True)
class _Target:
    """A target's claim mark, its returned positions, and its lease ends by owner (heaps)."""

    mark: Position = START
    returned: list[Position] = field(default_factory=list)
    ends: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    leases: int = 0

    def push_end(self, owner: str, until: float, delivery_id: int) -> None:
        heapq.heappush(self.ends.setdefault(owner, []), (until, delivery_id))


class LeaseBook:
    """The leases of one store, and each target's claim mark (see the module docstring).

    It does no I/O: the store reads rows and asks the book which it may claim. Every
    method is synchronous, so a claim (read, check, lease) is atomic on the event loop.
    """

    def __init__(self) -> None:
        self._leases: dict[int, _Lease] = {}
        self._targets: dict[str, _Target] = {}

    def __len__(self) -> int:
        return len(self._leases)

    def mark(self, target: str) -> Position:
        """Where the target's next range read starts (records after it)."""
        state = self._targets.get(target)
        return START if state is None else state.mark

    def claimable(self, delivery_id: int, now: float) -> bool:
        """Whether nobody holds the record: no lease, or one that ran out and is not
        being settled."""
        lease = self._leases.get(delivery_id)
        return lease is None or (lease.until <= now and not lease.settling)

    def take_returned(self, target: str, now: float, limit: int) -> list[Position]:
        """Pop up to ``limit`` returned positions due by ``now``, leases that ran out
        first moved among them. Positions the claim does not use go back with
        :meth:`put_back`; the claim validates each (see the module docstring)."""
        state = self._targets.get(target)
        if state is None:
            return []
        self._expire(state, now)
        taken: list[Position] = []
        heap = state.returned
        while heap and heap[0][0] <= now and len(taken) < limit:
            position = heapq.heappop(heap)
            if not taken or taken[-1] != position:  # the same position pushed twice
                taken.append(position)
        return taken

    def put_back(self, target: str, positions: Iterable[Position]) -> None:
        """Return positions :meth:`take_returned` gave that the claim did not use."""
        state = self._state(target)
        for position in positions:
            heapq.heappush(state.returned, position)

    def lease(self, owner: str, target: str, claimed: Sequence[Position], until: float) -> None:
        """Lease the records at ``claimed`` to ``owner`` until ``until``."""
        state = self._state(target)
        for due, delivery_id in claimed:
            old = self._leases.get(delivery_id)
            if old is None:
                state.leases += 1
            self._leases[delivery_id] = _Lease(owner, target, due, until)
            state.push_end(owner, until, delivery_id)

    def advance(self, target: str, position: Position) -> None:
        """Move the mark on to ``position`` (the last record a range read covered)."""
        state = self._state(target)
        state.mark = max(state.mark, position)

    def renew(self, owner: str, ids: Iterable[int], until: float) -> list[int]:
        """Extend ``owner``'s leases on ``ids`` to ``until``; returns the ids it does
        not hold (a lease that ran out but nobody claimed since is still held)."""
        lost: list[int] = []
        targets: set[str] = set()
        for delivery_id in ids:
            lease = self._leases.get(delivery_id)
            if lease is None or lease.owner != owner:
                lost.append(delivery_id)
                continue
            if until > lease.until:
                lease.until = until
                self._state(lease.target).push_end(owner, until, delivery_id)
                targets.add(lease.target)
        for target in targets:
            self._compact(target, owner)
        return lost

    def begin_settle(self, owner: str, ids: Iterable[int]) -> tuple[set[int], list[int]]:
        """Mark ``owner``'s leases on ``ids`` as settling; returns (held ids, lost ids)."""
        held: set[int] = set()
        lost: list[int] = []
        for delivery_id in ids:
            lease = self._leases.get(delivery_id)
            if lease is None or lease.owner != owner or lease.settling:
                # settling: an earlier settle of the same record is being written
                if delivery_id not in held:
                    lost.append(delivery_id)
                continue
            lease.settling = True
            held.add(delivery_id)
        return held, lost

    def end_settle(
        self, held: Iterable[int], committed: bool, moved: dict[int, float] | None = None
    ) -> None:
        """A settle's write ended. Committed: its leases end, and each record still
        pending (``moved``: id -> its new due time) returns to its target's claims.
        Failed: the owner keeps its leases as they were."""
        moved = moved or {}
        for delivery_id in held:
            lease = self._leases.get(delivery_id)
            if lease is None or not lease.settling:
                continue
            state = self._state(lease.target)
            if not committed:
                lease.settling = False
                # its end may have passed meanwhile; expiry looks at the heap again
                state.push_end(lease.owner, lease.until, delivery_id)
                continue
            del self._leases[delivery_id]
            state.leases -= 1
            due = moved.get(delivery_id)
            if due is not None:
                self._arrived(state, (due, delivery_id))
            self._drop_if_idle(lease.target, state)

    def arrived(self, target: str, positions: Iterable[Position]) -> None:
        """New unleased records of ``target`` were committed at ``positions``."""
        state = self._targets.get(target)
        if state is None:
            return  # no mark yet: the next range read starts before them
        for position in positions:
            self._arrived(state, position)

    def next_due(self, target: str, claimer: str) -> float:
        """The earliest returned due time of ``target``, or end of a lease another owner
        than ``claimer`` holds on one of its records (inf: none). The claimer's own
        leases do not count: it settles or renews what it holds."""
        state = self._targets.get(target)
        if state is None:
            return math.inf
        first = state.returned[0][0] if state.returned else math.inf
        for owner, ends in list(state.ends.items()):
            while ends and not self._current(ends[0]):
                heapq.heappop(ends)
            if not ends:
                del state.ends[owner]
            elif owner != claimer:
                first = min(first, ends[0][0])
        return first

    def forget_if_idle(self, target: str) -> None:
        """Drop the target's state if it holds nothing (called after a claim)."""
        state = self._targets.get(target)
        if state is not None:
            self._drop_if_idle(target, state)

    # -- internals -------------------------------------------------------------------
    def _state(self, target: str) -> _Target:
        state = self._targets.get(target)
        if state is None:
            state = self._targets[target] = _Target()
        return state

    def _compact(self, target: str, owner: str) -> None:
        """Rebuild an owner's lease-end heap once renewals left it mostly stale entries
        (each renewal adds one; stale ones leave only as they reach the top)."""
        state = self._targets[target]
        ends = state.ends.get(owner, [])
        if len(ends) <= 2 * state.leases + 64:
            return
        ends[:] = [
            (lease.until, delivery_id)
            for delivery_id, lease in self._leases.items()
            if lease.target == target and lease.owner == owner
        ]
        heapq.heapify(ends)

    def _current(self, end: tuple[float, int]) -> bool:
        lease = self._leases.get(end[1])
        return lease is not None and lease.until == end[0]

    def _expire(self, state: _Target, now: float) -> None:
        """Move the records whose lease ran out among the returned positions. The lease
        itself stays until another owner claims the record: its owner may still settle
        or renew it meanwhile."""
        for ends in state.ends.values():
            while ends and ends[0][0] <= now:
                until, delivery_id = heapq.heappop(ends)
                lease = self._leases.get(delivery_id)
                if lease is None or lease.until != until or lease.settling:
                    continue  # renewed, settled, or being settled (end_settle looks again)
                self._arrived(state, (lease.due, delivery_id))

    @staticmethod
    def _arrived(state: _Target, position: Position) -> None:
        if position <= state.mark:
            heapq.heappush(state.returned, position)

    def _drop_if_idle(self, target: str, state: _Target) -> None:
        if not state.leases and not state.returned and self._targets.get(target) is state:
            # nothing is leased or returned, so no record lies at or before the mark
            del self._targets[target]
