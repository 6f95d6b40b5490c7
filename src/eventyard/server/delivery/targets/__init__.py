"""Target kinds: what one delivery attempt to one kind of target means.

A target turns a pending delivery record into one attempt: an HTTP POST
(:mod:`.http`), a call of an API destination with its connection's authorization and
rate limit (:mod:`.api_destination`), a message on one of eventyard's own queues
(:mod:`.queue`) or an event put on another bus (:mod:`.bus`). Every kind implements the
small :class:`Target` protocol: ``await send(spec, delivery)`` returns when the attempt
succeeded and raises :class:`eventyard.errors.DeliveryError` (``retryable``,
``error_code``) when it did not; no other exception may escape. Retry, backoff and
dead-lettering are the engine's job, not the target's. :func:`target_kind` tells which
kind an ARN names.

May import: the store protocol, the target spec and the shared modules; never the
engine, which imports them.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from eventyard.errors import DeliveryDeferred
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.store import Delivery

__all__ = ["DeliveryDeferred", "Target", "TargetKind", "target_kind"]

TargetKind = Literal["http", "queue", "bus", "api-destination"]


class Target(Protocol):
    """One kind of target.

    Attributes:
        kind: the metrics label of the kind (``http``, ``queue``, ``bus``,
            ``api-destination``).
        settles: whether a successful :meth:`send` has already settled the record in
            the store (a queue target writes its message and the ``done`` together), so
            the engine must not settle it again.
    """

    kind: TargetKind
    settles: bool

    async def send(self, spec: TargetSpec, delivery: Delivery) -> dict[str, Any] | None:
        """Make one attempt to deliver ``delivery.payload`` to the target of ``spec``.

        The attempt's 1-based number is ``delivery.attempts + 1``. Returns what the
        attempt made, for the trace journal (an HTTP target's ``status``, a queue
        target's ``queue`` and ``message_id``), or None.

        Raises:
            DeliveryError: the attempt failed; ``retryable`` says whether to try again.
        """


def target_kind(arn: str) -> TargetKind | None:
    """The kind of target ``arn`` names, or None if eventyard cannot deliver to it.

    ``http://`` and ``https://`` URLs are webhooks, ``arn:aws:sqs:…`` names a queue,
    ``arn:aws:events:<region>:<account>:event-bus/<name>`` an event bus and
    ``arn:aws:events:<region>:<account>:api-destination/<name>/<id>`` an API destination.
    """
    if arn.startswith(("http://", "https://")):
        return "http"
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    if parts[2] == "sqs":
        return "queue"
    if parts[2] == "events" and parts[5].startswith("event-bus/"):
        return "bus"
    if parts[2] == "events" and parts[5].startswith("api-destination/"):
        return "api-destination"
    return None
