"""The delivery engine's Prometheus metrics, defined once per process.

The engine and its settle batcher (:mod:`.settler`) count here; ``/metrics`` serves them
from the default registry. Children the hot path uses are bound once (``labels()`` takes
a lock and a dict look-up on every call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar, cast

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

__all__ = [
    "ATTEMPTS",
    "ATTEMPT_SECONDS",
    "BACKLOG",
    "DEAD_LETTERED",
    "DELIVERED",
    "DELIVERIES",
    "DROPPED",
    "LEASES_LOST",
    "PACED",
    "SETTLE_BATCH",
    "SETTLE_FAILURES",
    "WINDOW",
    "metric",
]

_M = TypeVar("_M", Counter, Gauge, Histogram)


def metric(name: str, make: Callable[[], _M]) -> _M:
    """The collector registered as ``name``, made by ``make()`` the first time.

    prometheus_client refuses a second collector with the same name, which happens when
    a module is imported again (reloads, test runners): the first one is reused.
    """
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is not None:
        return cast(_M, existing)
    return make()


DELIVERIES: Final = metric(
    "eventyard_deliveries",
    lambda: Counter(
        "eventyard_deliveries",
        "Delivery records finished: delivered, dead_lettered (to a DLQ) or dropped.",
        ["outcome"],
    ),
)
ATTEMPTS: Final = metric(
    "eventyard_delivery_attempts",
    lambda: Counter(
        "eventyard_delivery_attempts",
        "Delivery attempts by target kind and result (success, retryable, failed).",
        ["kind", "result"],
    ),
)
ATTEMPT_SECONDS: Final = metric(
    "eventyard_delivery_attempt_seconds",
    lambda: Histogram(
        "eventyard_delivery_attempt_seconds",
        "Duration of one delivery attempt.",
        ["kind"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    ),
)
SETTLE_BATCH: Final = metric(
    "eventyard_delivery_settle_batch_size",
    lambda: Histogram(
        "eventyard_delivery_settle_batch_size",
        "Delivery records settled by one store write.",
        buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    ),
)
SETTLE_FAILURES: Final = metric(
    "eventyard_delivery_settle_failures",
    lambda: Counter(
        "eventyard_delivery_settle_failures",
        "Batched settle writes the store refused (their records are then settled one by one).",
    ),
)
LEASES_LOST: Final = metric(
    "eventyard_delivery_leases_lost",
    lambda: Counter(
        "eventyard_delivery_leases_lost",
        "Delivery records this engine held whose lease ended and passed to another owner "
        "before it settled them (that owner delivers them: at least once).",
    ),
)
PACED: Final = metric(
    "eventyard_delivery_paced",
    lambda: Counter(
        "eventyard_delivery_paced",
        "Delivery attempts held back because their target is failing (target_failing_after "
        "retryable failures in a row): such a target gets one attempt per "
        "failing_target_interval, not its whole backlog at once.",
    ),
)
BACKLOG: Final = metric(
    "eventyard_delivery_backlog",
    lambda: Gauge(
        "eventyard_delivery_backlog",
        "Delivery records pending in the store: committed, not yet delivered, "
        "dead-lettered or dropped.",
    ),
)
WINDOW: Final = metric(
    "eventyard_delivery_window",
    lambda: Gauge(
        "eventyard_delivery_window",
        "Delivery records held in memory by the engine (at most delivery_window): ready, "
        "in an attempt, or waiting for their outcome to be written.",
    ),
)

DELIVERED: Final = DELIVERIES.labels(outcome="delivered")
DEAD_LETTERED: Final = DELIVERIES.labels(outcome="dead_lettered")
DROPPED: Final = DELIVERIES.labels(outcome="dropped")
