"""What a queue message carries besides its body and user attributes.

Shared by the SQS API and the queue targets of rules, which both put messages on
eventyard's queues:

* **kept system attributes**: what SQS reports as message system attributes but the
  sender sets or the send decides (``AWSTraceHeader``; a FIFO message's
  ``MessageDeduplicationId`` and ``SequenceNumber``) travel among the message's
  attributes under names no user attribute can have (user names must not start with
  ``AWS.``), and are never listed as user attributes;
* **FIFO de-duplication keys**: the store de-duplicates on one key per message, which
  is scoped here to the queue or, with ``DeduplicationScope`` ``messageGroup``, to the
  group;
* **sequence numbers**: what SQS reports as ``SequenceNumber``, a 20-digit number that
  grows with every FIFO message this process sends (nanoseconds since the epoch, bumped
  past the last one), kept with the message so send and receive report the same one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

__all__ = [
    "KEPT_PREFIX",
    "dedup_key",
    "is_kept",
    "kept_system",
    "next_sequence",
    "stored_system",
]

KEPT_PREFIX = "AWS.SQS."
_last_sequence = 0


def stored_system(system: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """System attributes (name to value) as they are kept among the message's attributes."""
    return {
        KEPT_PREFIX + name: {"DataType": "String", "StringValue": value}
        for name, value in system.items()
    }


def kept_system(attributes: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The system attributes a message was sent with (name to value)."""
    return {
        name.removeprefix(KEPT_PREFIX): value.get("StringValue", "")
        for name, value in attributes.items()
        if name.startswith(KEPT_PREFIX)
    }


def is_kept(name: str) -> bool:
    """Whether an attribute name is a kept system attribute, not a user attribute."""
    return name.startswith(KEPT_PREFIX)


def dedup_key(group_id: str, dedup_id: str, scope: str) -> str:
    """The store's de-duplication key: per queue, or per group (``messageGroup``)."""
    return f"group:{group_id}\n{dedup_id}" if scope == "messageGroup" else f"queue:{dedup_id}"


def next_sequence() -> str:
    """A new sequence number, greater than every one this process gave before."""
    global _last_sequence
    _last_sequence = max(_last_sequence + 1, time.time_ns())
    return f"{_last_sequence:020d}"
