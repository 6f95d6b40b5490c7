"""Queue targets: put the payload on one of eventyard's own SQS-style queues.

A queue lives in the same store as the delivery records, so a queue delivery needs no
network send: it is the message plus the record's ``done``, written in one transaction
(``store.settle(owner, done=[id], messages=[(id, message)])``; the store writes the
message only if it settles the record, i.e. while the engine holds its lease). The
target hands both to a :class:`QueueSink` — the engine's settle batcher, which folds
them into its next group commit — and returns once they are written, or once the store
has refused them because the lease passed to another owner (who delivers the record).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from eventyard.errors import DeliveryError, QueueError
from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.delivery.targets import TargetKind
from eventyard.server.queue_messages import dedup_key, next_sequence, stored_system
from eventyard.server.store import Delivery, NewMessage

__all__ = ["QueueSink", "QueueTarget", "derived_message_id"]

# the namespace of the message ids derived from delivery records
_IDS = uuid.UUID("5b0c1f5e-6a43-4c8e-9a57-0e2f3d7c9b21")


def derived_message_id(event_id: str, target: str, *parts: object) -> str:
    """The id of the message a delivery puts (a uuid5 over ``event_id``, ``target`` and
    ``parts``: the record's id and first sight, and the role ``m0`` or ``dead``).

    The same record gives the same id, so a settle retried after a failure, or a record
    redelivered after its owner died, puts that same message again, which the store
    de-duplicates (:attr:`NewMessage.derived`); the trace names it before it is put.
    """
    return str(uuid.uuid5(_IDS, "\n".join((event_id, target, *map(repr, parts)))))


def _message(queue: str, spec: TargetSpec, delivery: Delivery) -> NewMessage:
    """The message of ``delivery`` on ``queue``; on a FIFO queue, in the target's group.

    A rule delivers to a FIFO queue with content-based de-duplication, as EventBridge
    requires of its FIFO targets: the same input within five minutes is put once.

    Raises:
        DeliveryError: a FIFO queue and no ``SqsParameters.MessageGroupId`` (a target
            written before the check at PutTargets), not retryable.
    """
    body = delivery.payload.decode("utf-8", "replace")
    # derived from the record: the trace can follow the message, and a settle put
    # again (retried, or by the record's next owner) is the same message
    message_id = derived_message_id(
        delivery.event_id, spec.key, delivery.id, delivery.first_seen, "m0"
    )
    if not queue.endswith(".fifo"):
        return NewMessage(queue, body=body, message_id=message_id, derived=True)
    group = spec.message_group_id
    if group is None:
        raise DeliveryError(
            f"{spec.arn} is a FIFO queue: the target needs SqsParameters.MessageGroupId",
            retryable=False,
            error_code="SQS_PARAMETERS_MISSING",
        )
    dedup = hashlib.sha256(delivery.payload).hexdigest()
    kept = {"MessageDeduplicationId": dedup, "SequenceNumber": next_sequence()}
    return NewMessage(
        queue,
        body=body,
        attributes=stored_system(kept),
        message_id=message_id,
        derived=True,
        group_id=group,
        dedup_id=dedup_key(group, dedup, "queue"),
    )


class QueueSink(Protocol):
    """Writes a queue message and settles its delivery record as done, atomically."""

    async def put_and_settle(self, delivery_id: int, message: NewMessage) -> None:
        """Return when both are durable, or when the store refused both because the
        record's lease was lost (its new owner delivers it).

        Raises:
            StoreError: the store could not write them.
            QueueError: the queue does not exist.
        """


class QueueTarget:
    """Delivers to local queues named by SQS ARNs.

    Args:
        queue_name_for_arn: the local queue an ``arn:aws:sqs:…`` ARN names, or None if
            there is no such queue.
        sink: where the message and the settle go (the engine's settle batcher).
    """

    kind: TargetKind = "queue"
    settles = True

    def __init__(self, queue_name_for_arn: Callable[[str], str | None], sink: QueueSink) -> None:
        self._queue_name_for_arn = queue_name_for_arn
        self._sink = sink

    async def send(self, spec: TargetSpec, delivery: Delivery) -> dict[str, Any]:
        """Put ``delivery.payload`` on the queue of ``spec.arn`` and settle the record;
        returns the ``queue`` and the ``message_id`` of the message.

        Raises:
            DeliveryError: ``NO_RESOURCE`` (not retryable) if the queue does not exist,
                ``INTERNAL_FAILURE`` (retryable) if the store failed.
        """
        queue = self._queue_name_for_arn(spec.arn)
        if queue is None:
            raise DeliveryError(
                f"queue {spec.arn} does not exist", retryable=False, error_code="NO_RESOURCE"
            )
        message = _message(queue, spec, delivery)
        try:
            await self._sink.put_and_settle(delivery.id, message)
        except QueueError as exc:
            raise DeliveryError(
                f"queue {spec.arn}: {exc.message}", retryable=False, error_code="NO_RESOURCE"
            ) from None
        except Exception as exc:
            raise DeliveryError(
                f"store failed: {exc}", retryable=True, error_code="INTERNAL_FAILURE"
            ) from None
        return {"queue": queue, "message_id": message.message_id}
