"""Dead letters: the message a record the engine gives up on leaves in its target's DLQ.

:func:`dead_letter_message` builds it as EventBridge does: the event as the body, and
the message attributes ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``
(at most 4096 characters), ``RETRY_ATTEMPTS`` and, when retries ran out,
``EXHAUSTED_RETRY_CONDITION``. A target without a DLQ, or whose DLQ does not exist,
gets none: the record is dropped, with a log line that says why. The engine
(:mod:`.engine`) decides when a record is dead-lettered and settles it with the message.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from eventyard.server.delivery.spec import TargetSpec
from eventyard.server.store import NewMessage

__all__ = ["dead_letter_message"]

_log = structlog.get_logger("eventyard.server.delivery")


def dead_letter_message(
    spec: TargetSpec,
    queue_name_for_arn: Callable[[str], str | None],
    *,
    delivery_id: int | None,
    event_id: str,
    event: bytes,
    error_code: str,
    error_message: str,
    retries: int,
    exhausted: str | None,
    message_id: str,
) -> NewMessage | None:
    """The dead letter of an event for ``spec``'s DLQ, or None (dropped) without one.

    Args:
        spec: the target given up on.
        queue_name_for_arn: the local queue an SQS ARN names, or None if it does not
            exist.
        delivery_id: the delivery record's id (None for a match that got no record).
        event_id: the event's id.
        event: the event as it was to be delivered: the message's body.
        error_code: the last failure's code.
        error_message: the last failure's text (the code if empty).
        retries: the retries made (``RETRY_ATTEMPTS``).
        exhausted: ``MaximumRetryAttempts`` or ``MaximumEventAgeInSeconds`` when retries
            ran out, else None.
        message_id: the message's id (derived, so a repeated dead letter is one message).

    Returns:
        The message to store, or None when the target has no DLQ or its queue does not
        exist (logged).
    """
    context = {
        "delivery_id": delivery_id,
        "event_id": event_id,
        "target": spec.key,
        "error_code": error_code,
        "error": error_message,
        "retry_attempts": retries,
        "exhausted": exhausted,
    }
    if spec.dlq_arn is None:
        _log.warning("delivery dropped: failed and the target has no DLQ", **context)
        return None
    queue = queue_name_for_arn(spec.dlq_arn)
    if queue is None:
        _log.error(
            "delivery dropped: the dead-letter queue does not exist",
            dlq=spec.dlq_arn,
            **context,
        )
        return None
    attributes = {
        "RULE_ARN": _string(spec.rule_arn),
        "TARGET_ARN": _string(spec.arn),
        "ERROR_CODE": _string(error_code),
        "ERROR_MESSAGE": _string(error_message[:4096] or error_code),
        "RETRY_ATTEMPTS": _string(str(retries)),
    }
    if exhausted is not None:
        attributes["EXHAUSTED_RETRY_CONDITION"] = _string(exhausted)
    _log.warning("delivery dead-lettered", dlq=queue, **context)
    return NewMessage(
        queue,
        body=event.decode("utf-8", "replace"),
        attributes=attributes,
        message_id=message_id,
        derived=True,
    )


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
