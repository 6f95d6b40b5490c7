"""Event-bus targets: forward the payload to another bus through the router.

``arn:aws:events:<region>:<account>:event-bus/<name>`` targets hand the rendered payload
to ``forward_to_bus(arn, payload, rule_arn, account)``, which the router implements: it ingests
the event on the named bus, asks that bus's resource policy when the bus is in another
account than the rule, and enforces EventBridge's single-hop rule (an event that already
came from another bus is not forwarded again). This module only translates the router's
errors into retryable or permanent delivery failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eventyard.errors import (
    DeliveryError,
    LimitExceeded,
    ResourceNotFound,
    ServiceError,
    StoreError,
)
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import TargetKind
from eventyard.server.store import Delivery

__all__ = ["BusTarget"]


class BusTarget:
    """Forwards payloads to event buses.

    Args:
        forward_to_bus: ``await forward_to_bus(bus_arn, payload, rule_arn, account)``;
            returns once the event is durable on that bus (``rule_arn``: the forwarding
            rule; ``account``: its owner, :attr:`TargetSpec.account`, whom the bus's
            policy judges).
    """

    kind: TargetKind = "bus"
    settles = False

    def __init__(self, forward_to_bus: Callable[[str, bytes, str, str], Awaitable[None]]) -> None:
        self._forward = forward_to_bus

    async def send(self, spec: TargetSpec, delivery: Delivery) -> dict[str, Any]:
        """Forward ``delivery.payload`` to the bus ``spec.arn``; returns the ``bus`` ARN
        (the trace looks for the forwarded event there).

        Raises:
            DeliveryError: ``NO_RESOURCE`` if the bus does not exist, ``THROTTLING`` if
                it is over a limit, ``INTERNAL_FAILURE`` if the store failed (those two
                are retryable), ``INVALID_PARAMETER`` if the bus rejected the event.
        """
        try:
            await self._forward(spec.arn, delivery.payload, spec.rule_arn, spec.account)
        except DeliveryError:
            raise
        except ResourceNotFound as exc:
            raise DeliveryError(exc.message, retryable=False, error_code="NO_RESOURCE") from None
        except LimitExceeded as exc:
            raise DeliveryError(exc.message, retryable=True, error_code="THROTTLING") from None
        except ServiceError as exc:
            if exc.status >= 500:
                raise DeliveryError(
                    exc.message, retryable=True, error_code="INTERNAL_FAILURE"
                ) from None
            raise DeliveryError(
                f"{exc.code}: {exc.message}", retryable=False, error_code="INVALID_PARAMETER"
            ) from None
        except StoreError as exc:
            raise DeliveryError(
                f"store failed: {exc}", retryable=True, error_code="INTERNAL_FAILURE"
            ) from None
        return {"bus": spec.arn}
