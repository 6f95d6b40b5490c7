"""SQS queue attributes: limits, defaults, validation, and the definitions holding them.

A queue's definition lives in the store's catalog (kind ``queue``, key = internal name,
see :mod:`eventyard.server.accounts`) with its settable attributes; SQS's defaults fill
in the ones never set. Values are strings on the wire, checked here against SQS's
bounds; a RedrivePolicy must name an existing dead-letter queue of the same account,
other than the queue itself. FIFO attributes are refused: eventyard
serves standard queues only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.server.accounts import AccountScope, internal_name, parse_queue_arn
from eventyard.server.api.sqs_requests import (
    QUEUE_NAME_RE,
    SqsError,
    bad_attribute_value,
    fifo_unsupported,
    invalid,
    unknown_attribute,
)
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "COUNT_ATTRIBUTES",
    "DEFAULTS",
    "GETTABLE",
    "KIND",
    "MAX_DELAY_SECONDS",
    "MAX_MESSAGE_SIZE",
    "MAX_VISIBILITY_TIMEOUT",
    "MAX_WAIT_SECONDS",
    "QueueDefinition",
    "check_attributes",
]

KIND = "queue"
MAX_MESSAGE_SIZE = 1024 * 1024
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 43200
MAX_DELAY_SECONDS = 900

_INTEGER_RE = re.compile(r"^-?[0-9]{1,12}$")

DEFAULTS: dict[str, str] = {
    "DelaySeconds": "0",
    "MaximumMessageSize": str(MAX_MESSAGE_SIZE),  # 1 MiB, as SQS has had since 2025
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
}
_INTEGER_ATTRIBUTES: dict[str, tuple[int, int]] = {
    "DelaySeconds": (0, MAX_DELAY_SECONDS),
    "MaximumMessageSize": (1024, MAX_MESSAGE_SIZE),
    "MessageRetentionPeriod": (60, 1209600),
    "ReceiveMessageWaitTimeSeconds": (0, MAX_WAIT_SECONDS),
    "VisibilityTimeout": (0, MAX_VISIBILITY_TIMEOUT),
    "KmsDataKeyReusePeriodSeconds": (60, 86400),
}
_JSON_ATTRIBUTES = frozenset({"Policy", "RedriveAllowPolicy"})
_FIFO_ATTRIBUTES = frozenset(
    {"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
)
_COMPUTED_ATTRIBUTES = (
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
)
COUNT_ATTRIBUTES = frozenset(_COMPUTED_ATTRIBUTES[1:4])
GETTABLE = frozenset(
    {
        *DEFAULTS,
        *_INTEGER_ATTRIBUTES,
        *_JSON_ATTRIBUTES,
        *_FIFO_ATTRIBUTES,
        *_COMPUTED_ATTRIBUTES,
        "RedrivePolicy",
        "KmsMasterKeyId",
        "SqsManagedSseEnabled",
    }
)


@dataclass(slots=True, frozen=True)
class QueueDefinition:
    """A queue definition as read from the catalog."""

    name: str  # the internal name
    doc: dict[str, Any]
    revision: int

    @classmethod
    def of(cls, entry: CatalogEntry) -> QueueDefinition:
        return cls(entry.key, entry.doc, entry.revision)

    @property
    def attributes(self) -> dict[str, str]:
        """The settable attributes, SQS's defaults filled in."""
        return {**DEFAULTS, **(self.doc.get("Attributes") or {})}

    def number(self, name: str) -> int:
        return int(self.attributes.get(name, "0"))

    def redrive(self, home: str) -> tuple[str, int] | None:
        """``(dead-letter queue's internal name, maxReceiveCount)`` if a RedrivePolicy is
        set (``home``: the home account, whose queues have plain internal names)."""
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        try:
            policy = orjson.loads(raw)
            arn = str(policy["deadLetterTargetArn"])
            count = int(policy["maxReceiveCount"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # not written by this API; SQS would never have accepted it
        parsed = parse_queue_arn(arn)
        if parsed is None:
            # written before accounts: the queue of that name in the home account
            return arn.rsplit(":", 1)[-1], count
        return internal_name(parsed.account, parsed.name, home), count


async def check_attributes(
    store: Store, raw: Mapping[str, str], queue: str, scope: AccountScope
) -> dict[str, str]:
    """Validated, normalized settable attributes (RedrivePolicy "" means remove).

    ``queue`` is the queue's internal name, ``scope`` its account.
    """
    checked: dict[str, str] = {}
    for name, value in raw.items():
        if name in _FIFO_ATTRIBUTES:
            if name == "FifoQueue" and value.lower() == "false":
                continue
            raise fifo_unsupported()
        if name in _INTEGER_ATTRIBUTES:
            low, high = _INTEGER_ATTRIBUTES[name]
            if not _INTEGER_RE.match(value) or not low <= int(value) <= high:
                raise bad_attribute_value(name)
            checked[name] = str(int(value))
        elif name in _JSON_ATTRIBUTES:
            if value == "":
                checked[name] = ""  # SetQueueAttributes Policy="" removes the policy
                continue
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                raise bad_attribute_value(name)
            checked[name] = value
        elif name == "SqsManagedSseEnabled":
            if value.lower() not in {"true", "false"}:
                raise bad_attribute_value(name)
            checked[name] = value.lower()
        elif name == "KmsMasterKeyId":
            checked[name] = value
        elif name == "RedrivePolicy":
            checked[name] = await _check_redrive(store, value, queue, scope)
        else:
            raise unknown_attribute(name)
    return checked


async def _check_redrive(store: Store, raw: str, queue: str, scope: AccountScope) -> str:
    if raw == "":
        return ""

    def bad(reason: str) -> SqsError:
        return invalid(f"Value {raw} for parameter RedrivePolicy is invalid. Reason: {reason}")

    try:
        policy = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad("Redrive policy is not a valid JSON map.") from None
    if not isinstance(policy, dict):
        raise bad("Redrive policy is not a valid JSON map.")
    arn = policy.get("deadLetterTargetArn")
    count = policy.get("maxReceiveCount")
    if not isinstance(arn, str) or count is None:
        raise bad("Redrive policy must contain deadLetterTargetArn and maxReceiveCount.")
    if isinstance(count, str) and _INTEGER_RE.match(count):
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise bad(
            f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to "
            "1000 both inclusive."
        )
    name = arn.rsplit(":", 1)[-1]
    if not arn.startswith("arn:aws:sqs:") or not QUEUE_NAME_RE.match(name):
        raise bad("Dead letter target does not exist.")
    key = scope.queue_key(arn)
    if key is None:
        if scope.names_another_account(arn) is not None:
            raise bad("Dead letter target must be a queue of the same account.")
        raise bad("Dead letter target does not exist.")
    if key == queue:
        raise bad("A queue cannot be its own dead letter queue.")
    if await store.catalog_get(KIND, key) is None:
        raise bad("Dead letter target does not exist.")
    return orjson.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}).decode()
