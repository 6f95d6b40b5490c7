"""FIFO queues on the SQS API: message groups, de-duplication ids and sequence numbers.

A FIFO queue (its name ends in ``.fifo``) takes messages with a ``MessageGroupId`` and
a de-duplication id: the ``MessageDeduplicationId`` given, or the body's SHA-256 with
``ContentBasedDeduplication``. The store orders each group and remembers de-duplication
keys for five minutes (:data:`eventyard.server.store.DEDUP_INTERVAL`); this module
checks the parameters and scopes the key to the queue or, with ``DeduplicationScope``
``messageGroup``, to the group. Per-message ``DelaySeconds`` is refused, as SQS refuses
it: a FIFO queue's delay is the queue's own.

Sequence numbers come from :func:`eventyard.server.queue_messages.next_sequence`; a send
that de-duplicates reports a new number, not the first message's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventyard.server.api.sqs_requests import invalid, missing
from eventyard.server.queue_messages import dedup_key, next_sequence

__all__ = ["FifoFields", "fifo_fields"]

_ID_RE = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}\Z")


@dataclass(slots=True, frozen=True)
class FifoFields:
    """What a FIFO message carries besides its body: group, de-duplication, sequence."""

    group_id: str
    dedup_id: str  # as sent (or the body's SHA-256)
    dedup_key: str  # what the store de-duplicates on: scoped to the queue or the group
    sequence: str


def _checked_id(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise invalid(
            f"Value {value} for parameter {name} is invalid. Reason: {name} can only include "
            "alphanumeric and punctuation characters. 1 to 128 in length."
        )
    return value


def fifo_fields(entry: Mapping[str, Any], body: str, attributes: Mapping[str, str]) -> FifoFields:
    """Check a FIFO send entry; ``attributes`` are the queue's (defaults filled in).

    Raises:
        SqsError: no MessageGroupId; no de-duplication id and no content-based
            de-duplication; a malformed id; a per-message DelaySeconds.
    """
    if entry.get("DelaySeconds") is not None:
        raise invalid(
            f"Value {entry.get('DelaySeconds')} for parameter DelaySeconds is invalid. "
            "Reason: The request include parameter that is not valid for this queue type."
        )
    group = _checked_id(entry, "MessageGroupId")
    if group is None:
        raise missing("MessageGroupId")
    dedup = _checked_id(entry, "MessageDeduplicationId")
    if dedup is None:
        if attributes.get("ContentBasedDeduplication") != "true":
            raise invalid(
                "The queue should either have ContentBasedDeduplication enabled or "
                "MessageDeduplicationId provided explicitly"
            )
        dedup = hashlib.sha256(body.encode()).hexdigest()
    scope = attributes.get("DeduplicationScope", "queue")
    return FifoFields(group, dedup, dedup_key(group, dedup, scope), next_sequence())
