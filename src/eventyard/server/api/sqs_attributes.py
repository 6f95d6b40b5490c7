"""SQS queue attributes: limits, defaults, validation, and the definitions holding them.

A queue's definition lives in the store's catalog (kind ``queue``, key = internal name,
see :mod:`eventyard.server.accounts`) with its settable attributes; SQS's defaults fill
in the ones never set. Values are strings on the wire, checked here against SQS's
bounds; a RedrivePolicy must name an existing dead-letter queue of the same account
and type, other than the queue itself.

A queue is FIFO when its name ends in ``.fifo``, which CreateQueue allows only with
``FifoQueue=true`` (and the reverse). Its FIFO attributes (``ContentBasedDeduplication``,
``DeduplicationScope``, ``FifoThroughputLimit``) have SQS's defaults and checks; on a
standard queue they are unknown attributes, as on SQS.
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
    invalid,
    unknown_attribute,
)
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "COUNT_ATTRIBUTES",
    "DEFAULTS",
    "FIFO_DEFAULTS",
    "GETTABLE",
    "KIND",
    "MAX_DELAY_SECONDS",
    "MAX_MESSAGE_SIZE",
    "MAX_VISIBILITY_TIMEOUT",
    "MAX_WAIT_SECONDS",
    "QueueDefinition",
    "check_attributes",
    "check_fifo_combination",
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
FIFO_DEFAULTS: dict[str, str] = {
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}
_FIFO_CHOICES: dict[str, frozenset[str]] = {
    "ContentBasedDeduplication": frozenset({"true", "false"}),
    "DeduplicationScope": frozenset({"queue", "messageGroup"}),
    "FifoThroughputLimit": frozenset({"perQueue", "perMessageGroupId"}),
}
_FIFO_ATTRIBUTES = frozenset(FIFO_DEFAULTS)
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
    def fifo(self) -> bool:
        """Whether this is a FIFO queue (its name ends in ``.fifo``)."""
        return self.name.endswith(".fifo")

    @property
    def attributes(self) -> dict[str, str]:
        """The settable attributes, SQS's defaults filled in."""
        defaults = {**DEFAULTS, **FIFO_DEFAULTS} if self.fifo else DEFAULTS
        return {**defaults, **(self.doc.get("Attributes") or {})}

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
    store: Store,
    raw: Mapping[str, str],
    queue: str,
    scope: AccountScope,
    *,
    creating: bool = False,
) -> dict[str, str]:
    """Validated, normalized settable attributes (RedrivePolicy "" means remove).

    ``queue`` is the queue's internal name, ``scope`` its account; ``creating``: the
    attributes of a CreateQueue (the only time ``FifoQueue`` may be given).
    """
    fifo = queue.endswith(".fifo")
    checked: dict[str, str] = {}
    for name, value in raw.items():
        if name == "FifoQueue":
            if not creating:
                raise invalid("FifoQueue is set when a queue is created, and never changed.")
            if value.lower() not in {"true", "false"}:
                raise bad_attribute_value(name)
            if (value.lower() == "true") != fifo:
                raise invalid(
                    "The name of a FIFO queue can only include alphanumeric characters, "
                    "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in "
                    "length."
                )
            if fifo:
                checked[name] = "true"
            continue
        if name in _FIFO_CHOICES:
            if not fifo:
                raise unknown_attribute(name)
            if value not in _FIFO_CHOICES[name]:
                raise bad_attribute_value(name)
            checked[name] = value
            continue
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
    if key.endswith(".fifo") != queue.endswith(".fifo"):
        raise bad("Dead-letter target must be the same type of queue (FIFO or standard).")
    if await store.catalog_get(KIND, key) is None:
        raise bad("Dead letter target does not exist.")
    return orjson.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}).decode()


def check_fifo_combination(attributes: Mapping[str, str]) -> None:
    """High-throughput FIFO needs de-duplication per message group, as SQS requires."""
    if (
        attributes.get("FifoThroughputLimit") == "perMessageGroupId"
        and attributes.get("DeduplicationScope") != "messageGroup"
    ):
        raise invalid(
            "FifoThroughputLimit perMessageGroupId requires DeduplicationScope messageGroup "
            "(high throughput mode)."
        )
