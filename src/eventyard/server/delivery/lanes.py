"""The delivery engine's internal records: a :class:`Lane` per target, a :class:`Job`
per record held in memory.

Each target has a *lane* that knows whether the store may have claimable records of
it, and when the next one is due; it holds the target's ready records (a FIFO of jobs),
counts its workers and records in memory, and carries the target's concurrency limit
and failure streak. The engine (:mod:`.engine`) owns and mutates both; nothing here
does any I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from eventyard.server.store import Delivery

__all__ = ["Job", "Lane"]


@dataclass(slots=True, eq=False)
class Job:
    """A record the engine holds, with the last failure (for the dead-letter message).

    ``stored`` is false while the record in memory differs from the one in the store (a
    retry whose write failed, an attempt that crashed): such a job is never evicted.
    ``gone`` is set once the record leaves memory (settled, given back, or its lease
    lost): a worker or timer that still has the job skips it.
    """

    delivery: Delivery
    lane: Lane
    error_code: str = ""
    error_message: str = ""
    stored: bool = True
    gone: bool = False


@dataclass(slots=True, eq=False)
class Lane:
    """One target: its ready records and workers, and whether the store has more.

    ``ceiling`` is the spec's concurrency (0 until the first attempt reads it) and
    ``limit`` the concurrency allowed now: it halves on every retryable failure and grows
    by one on every success, up to the ceiling (additive increase, multiplicative
    decrease). A dead target thus holds one connection instead of all of them, and its
    timeouts stop arriving in bursts that would cost every other target CPU. ``active``
    counts workers inside an attempt, so ``workers - active`` are about to take a job.

    ``streak`` counts the retryable failures in a row (any of the target's records; a
    success ends it); from ``failing_after`` on, ``next_attempt`` is the earliest time
    of the lane's next attempt (the pace of a failing target).

    ``held`` counts the target's records in memory (ready, in an attempt, or waiting for
    their outcome to be written). ``disk`` says the store may hold claimable records of
    the target, none before ``next_due``. While a claim is on its way, what the lane
    learns meanwhile (a hint, a retry written) collects in ``noted`` and is applied
    once the claim is in.
    """

    key: str
    limit: int = 1
    ceiling: int = 0
    ready: deque[Job] = field(default_factory=deque)
    workers: int = 0
    active: int = 0
    held: int = 0
    disk: bool = False
    next_due: float = math.inf
    claiming: bool = False
    noted: float = math.inf
    streak: int = 0
    next_attempt: float = 0.0
