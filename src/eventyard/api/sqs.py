"""Queues behind an SQS-compatible API: what boto3's ``sqs`` client speaks, unchanged.

botocore (≥ 1.31) talks to SQS in AWS JSON 1.0: ``POST /`` with ``X-Amz-Target:
AmazonSQS.<Operation>`` and the operation's members as a JSON object. :class:`QueuesApi`
serves the standard-queue operations on the store's durable queues; queue definitions
live in the catalog (kind ``queue``, key = name). SQS moved to JSON from its Query
protocol, so its errors are "query compatible": the body's ``__type`` names the modeled
shape (``com.amazonaws.sqs#QueueDoesNotExist``, which botocore maps to the exception
class ``sqs.exceptions.QueueDoesNotExist``) and the ``x-amzn-query-error`` header
carries the legacy code users compare against ``e.response["Error"]["Code"]``
(``AWS.SimpleQueueService.NonExistentQueue;Sender``). :class:`SqsError` carries both.

Receipt handles wrap the store's receipt with the queue name, so a malformed handle or
one from another queue is ``ReceiptHandleIsInvalid`` while a stale one is tolerated
like SQS does. Long polls wait on :class:`~eventyard.signals.QueueSignals` and also
wake when the next hidden or delayed message becomes visible.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from eventyard.config import Settings
from eventyard.errors import ConcurrentModification, QueueError
from eventyard.signals import QueueSignals
from eventyard.store import CatalogEntry, NewMessage, QueueMessage, Store

__all__ = [
    "QueueHooks",
    "QueuesApi",
    "SqsError",
    "message_attributes_md5",
    "queue_name_from_url",
]

KIND = "queue"
MAX_BATCH = 10
MAX_MESSAGE_SIZE = 1024 * 1024
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 43200
MAX_DELAY_SECONDS = 900
# A long poll re-checks at least this long after the store said a message is due, so
# clock skew between "due" and "receivable" can never turn into a busy loop.
_MIN_RECHECK = 0.01

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_INTEGER_RE = re.compile(r"^-?[0-9]{1,12}$")
_BAD_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ALLOWED_CHARS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"

_DEFAULTS: dict[str, str] = {
    "DelaySeconds": "0",
    "MaximumMessageSize": "262144",
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
_COUNT_ATTRIBUTES = frozenset(_COMPUTED_ATTRIBUTES[1:4])
_GETTABLE = frozenset(
    {
        *_DEFAULTS,
        *_INTEGER_ATTRIBUTES,
        *_JSON_ATTRIBUTES,
        *_FIFO_ATTRIBUTES,
        *_COMPUTED_ATTRIBUTES,
        "RedrivePolicy",
        "KmsMasterKeyId",
        "SqsManagedSseEnabled",
    }
)
_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
)


class SqsError(QueueError):
    """An SQS API error in its query-compatible JSON form.

    Attributes:
        shape: the modeled error shape, e.g. ``QueueDoesNotExist``; the body's ``__type``
            is ``com.amazonaws.sqs#<shape>`` and botocore raises the exception class of
            that name.
        query_code: the legacy code boto3 users see in ``Error.Code``, e.g.
            ``AWS.SimpleQueueService.NonExistentQueue``; also the code of a failed
            batch entry.
        query_error: the ``x-amzn-query-error`` header value, ``<query_code>;Sender``.
    """

    def __init__(self, shape: str, query_code: str, message: str, *, status: int = 400):
        super().__init__(message, code=f"com.amazonaws.sqs#{shape}", status=status)
        self.shape = shape
        self.query_code = query_code
        self.query_error = f"{query_code};{'Sender' if status < 500 else 'Receiver'}"

    def __str__(self) -> str:
        return f"{self.query_code}: {self.message}"


def _no_queue() -> SqsError:
    return SqsError(
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )


def _invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValueException", "InvalidParameterValue", message)


def _missing(name: str) -> SqsError:
    return SqsError(
        "MissingRequiredParameterException",
        "MissingParameter",
        f"The request must contain the parameter {name}.",
    )


def _bad_attribute_value(name: str) -> SqsError:
    return SqsError(
        "InvalidAttributeValue", "InvalidAttributeValue", f"Invalid value for the parameter {name}."
    )


def _unknown_attribute(name: str) -> SqsError:
    return SqsError("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {name}.")


def _fifo_unsupported() -> SqsError:
    return SqsError(
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "FIFO queues are not supported by eventyard yet: create a standard queue "
        "(a name without the .fifo suffix and no FIFO attributes).",
    )


def _invalid_receipt(handle: str) -> SqsError:
    shown = handle if len(handle) <= 1024 else handle[:1024] + "..."
    return SqsError(
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        f'The input receipt handle "{shown}" is not a valid receipt handle.',
    )


class QueueHooks(Protocol):
    """What the queues need from the router: long-poll wake-ups and catalog news."""

    @property
    def signals(self) -> QueueSignals:
        """The wake-ups long polls wait on."""
        ...

    def queue_changed(self, name: str, doc: Mapping[str, Any] | None) -> None:
        """A queue was created or changed (``doc``) or deleted (None)."""
        ...


def queue_name_from_url(url: str) -> str:
    """The queue name a QueueUrl (or a bare queue name) refers to.

    Any URL whose last path segment is the name is accepted, whatever its host, so URLs
    built for another endpoint (or by hand) work.

    Raises:
        SqsError: ``QueueDoesNotExist`` when no plausible name can be found.
    """
    path = urlsplit(url).path if "://" in url else url
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not _NAME_RE.match(name):
        raise _no_queue()
    return name


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def message_attributes_md5(attributes: Mapping[str, Mapping[str, str]]) -> str:
    """The MD5 SQS reports as ``MD5OfMessageAttributes`` (hex).

    For each attribute in name order: the name, the data type and the value, each as a
    4-byte big-endian length and its bytes, with a transport byte (1 string, 2 binary)
    before the value. ``BinaryValue`` holds base64 as the JSON protocol carries it.
    """
    digest = hashlib.md5(usedforsecurity=False)

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)

    for name in sorted(attributes):
        attribute = attributes[name]
        put(name.encode())
        put(attribute["DataType"].encode())
        if "BinaryValue" in attribute:
            digest.update(b"\x02")
            put(base64.b64decode(attribute["BinaryValue"]))
        else:
            digest.update(b"\x01")
            put(attribute["StringValue"].encode())
    return digest.hexdigest()


def _encode_receipt(queue: str, receipt: str) -> str:
    raw = f"{queue}\n{receipt}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_receipt(queue: str, handle: Any) -> str:
    if not isinstance(handle, str) or not handle:
        raise _missing("ReceiptHandle")
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_receipt(handle) from None
    owner, sep, receipt = raw.partition("\n")
    if not sep or not receipt or owner != queue:
        raise _invalid_receipt(handle)
    return receipt


def _check_chars(text: str, where: str) -> None:
    bad = _BAD_CHAR_RE.search(text)
    if bad is not None:
        raise SqsError(
            "InvalidMessageContents",
            "InvalidMessageContents",
            f"Invalid binary character '#x{ord(bad.group()):X}' was found in {where}, "
            f"the set of allowed characters is {_ALLOWED_CHARS}",
        )


def _int_param(
    params: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int], reason: str
) -> int:
    low, high = bounds
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"Value {value} for parameter {name} is invalid. Reason: {reason}")
    return value


def _str_list(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"Value {value!r} for parameter {name} is invalid. Reason: not a list.")
    return value


def _str_map(params: Mapping[str, Any], name: str) -> dict[str, str]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(
            f"Value {value!r} for parameter {name} is invalid. Reason: not a map of strings."
        )
    return value


def _check_message_attributes(raw: Any) -> tuple[dict[str, dict[str, str]], int]:
    """Validated message attributes and their size as SQS counts it."""
    if raw is None:
        return {}, 0
    if not isinstance(raw, dict):
        raise _invalid("MessageAttributes must be a map of name to value.")
    if len(raw) > 10:
        raise _invalid(
            f"Number of message attributes [{len(raw)}] exceeds the allowed maximum [10]."
        )
    checked: dict[str, dict[str, str]] = {}
    size = 0
    for name, value in raw.items():
        if (
            not _ATTRIBUTE_NAME_RE.match(name)
            or name.startswith(".")
            or name.endswith(".")
            or ".." in name
            or name.lower().startswith(("aws.", "amazon."))
        ):
            raise _invalid(
                f"Message (user) attribute name '{name}' is invalid: names are 1 to 256 "
                "characters of A-Z a-z 0-9 _ - . with no leading, trailing or repeated "
                "period, and must not start with AWS. or Amazon."
            )
        if not isinstance(value, dict):
            raise _invalid(f"Message (user) attribute '{name}' must be a structure.")
        data_type = value.get("DataType")
        if not isinstance(data_type, str) or not data_type:
            raise _invalid(f"The message attribute '{name}' must contain a DataType.")
        base = data_type.split(".", 1)[0]
        if base not in {"String", "Number", "Binary"} or len(data_type) > 256:
            raise _invalid(
                f"The type of message (user) attribute '{name}' is invalid. You must use "
                "only the following supported type prefixes: Binary, Number, String."
            )
        if value.get("StringListValues") or value.get("BinaryListValues"):
            raise _invalid(
                f"Message (user) attribute '{name}': list values are not supported "
                "(SQS does not implement StringListValues or BinaryListValues)."
            )
        if base == "Binary":
            encoded = value.get("BinaryValue")
            try:
                data = base64.b64decode(encoded, validate=True) if encoded else b""
            except (binascii.Error, TypeError, ValueError):
                data = b""
            if not data or not isinstance(encoded, str):
                raise _invalid(
                    f"Message (user) attribute '{name}' must contain a non-empty value "
                    f"of type '{base}'."
                )
            checked[name] = {"DataType": data_type, "BinaryValue": encoded}
            size += len(name.encode()) + len(data_type.encode()) + len(data)
            continue
        text = value.get("StringValue")
        if not isinstance(text, str) or not text:
            raise _invalid(
                f"Message (user) attribute '{name}' must contain a non-empty value of "
                f"type '{base}'."
            )
        _check_chars(text, f"the value of message (user) attribute '{name}'")
        if base == "Number":
            try:
                float(text)
            except ValueError:
                raise _invalid(
                    f"Can't cast the value of message (user) attribute '{name}' to a number."
                ) from None
        checked[name] = {"DataType": data_type, "StringValue": text}
        size += len(name.encode()) + len(data_type.encode()) + len(text.encode())
    return checked, size


def _select_attributes(
    attributes: Mapping[str, dict[str, str]], wanted: Iterable[str]
) -> dict[str, dict[str, str]]:
    """The message attributes a MessageAttributeNames filter asks for."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for name in wanted:
        if name in {"All", ".*"}:
            return dict(attributes)
        if name.endswith(".*"):
            prefixes.append(name[:-1])
        else:
            exact.add(name)
    return {
        name: value
        for name, value in attributes.items()
        if name in exact or any(name.startswith(p) for p in prefixes)
    }


@dataclass(slots=True, frozen=True)
class _Queue:
    """A queue definition as read from the catalog."""

    name: str
    doc: dict[str, Any]
    revision: int

    @classmethod
    def of(cls, entry: CatalogEntry) -> _Queue:
        return cls(entry.key, entry.doc, entry.revision)

    @property
    def attributes(self) -> dict[str, str]:
        """The settable attributes, SQS's defaults filled in."""
        return {**_DEFAULTS, **(self.doc.get("Attributes") or {})}

    def number(self, name: str) -> int:
        return int(self.attributes.get(name, "0"))

    @property
    def redrive(self) -> tuple[str, int] | None:
        """``(dead-letter queue name, maxReceiveCount)`` if a RedrivePolicy is set."""
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        try:
            policy = orjson.loads(raw)
            return str(policy["deadLetterTargetArn"]).rsplit(":", 1)[-1], int(
                policy["maxReceiveCount"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # not written by this API; SQS would never have accepted it


@dataclass(slots=True, frozen=True)
class _Outgoing:
    """A validated message to send and the checksums its answer reports."""

    message: NewMessage
    size: int
    md5_body: str
    md5_attributes: str | None

    def result(self, message_id: str) -> dict[str, Any]:
        result = {"MessageId": message_id, "MD5OfMessageBody": self.md5_body}
        if self.md5_attributes is not None:
            result["MD5OfMessageAttributes"] = self.md5_attributes
        return result


_Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class QueuesApi:
    """The SQS-compatible operations, dispatched by name from ``AmazonSQS.<Op>``.

    Args:
        store: the durable store holding queue definitions and messages.
        settings: host, port, account and region for queue URLs and ARNs.
        hooks: the router: long-poll signals and queue catalog notifications.
    """

    def __init__(self, store: Store, settings: Settings, hooks: QueueHooks) -> None:
        self.store = store
        self.settings = settings
        self.hooks = hooks
        self._operations: dict[str, _Handler] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "ListQueues": self.list_queues,
            "DeleteQueue": self.delete_queue,
            "PurgeQueue": self.purge_queue,
            "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes,
            "ListDeadLetterSourceQueues": self.list_dead_letter_source_queues,
            "TagQueue": self.tag_queue,
            "UntagQueue": self.untag_queue,
            "ListQueueTags": self.list_queue_tags,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
        }

    async def call(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run operation ``op``.

        Raises:
            SqsError: the operation failed; ``UnsupportedOperation`` for an unknown one.
        """
        handler = self._operations.get(op)
        if handler is None:
            raise SqsError(
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                f"The operation {op} is not supported by eventyard. Supported operations: "
                f"{', '.join(sorted(self._operations))}.",
            )
        return await handler(params)

    # -- naming -----------------------------------------------------------------------
    def queue_url(self, name: str) -> str:
        """The URL eventyard hands out for queue ``name``."""
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"http://{host}:{self.settings.port}/{self.settings.account_id}/{name}"

    def queue_arn(self, name: str) -> str:
        """The ARN of queue ``name``: ``arn:aws:sqs:<region>:<account>:<name>``."""
        return f"arn:aws:sqs:{self.settings.region}:{self.settings.account_id}:{name}"

    async def _queue(self, params: Mapping[str, Any]) -> _Queue:
        url = params.get("QueueUrl")
        if not isinstance(url, str) or not url:
            raise _missing("QueueUrl")
        entry = await self.store.catalog_get(KIND, queue_name_from_url(url))
        if entry is None:
            raise _no_queue()
        return _Queue.of(entry)

    async def _update(
        self, params: Mapping[str, Any], change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Apply ``change`` to a queue's document with optimistic concurrency."""
        for _ in range(10):
            queue = await self._queue(params)
            doc = orjson.loads(orjson.dumps(queue.doc))
            change(doc)
            doc["LastModifiedTimestamp"] = int(time.time())
            try:
                await self.store.catalog_put(KIND, queue.name, doc, expect_revision=queue.revision)
            except ConcurrentModification:
                continue
            self.hooks.queue_changed(queue.name, doc)
            return
        raise SqsError(
            "RequestThrottled",
            "RequestThrottled",
            "The queue is being changed concurrently; try again.",
        )

    # -- queue attributes -------------------------------------------------------------
    async def _check_attributes(self, raw: Mapping[str, str], queue: str) -> dict[str, str]:
        """Validated, normalized settable attributes (RedrivePolicy "" means remove)."""
        checked: dict[str, str] = {}
        for name, value in raw.items():
            if name in _FIFO_ATTRIBUTES:
                if name == "FifoQueue" and value.lower() == "false":
                    continue
                raise _fifo_unsupported()
            if name in _INTEGER_ATTRIBUTES:
                low, high = _INTEGER_ATTRIBUTES[name]
                if not _INTEGER_RE.match(value) or not low <= int(value) <= high:
                    raise _bad_attribute_value(name)
                checked[name] = str(int(value))
            elif name in _JSON_ATTRIBUTES:
                try:
                    parsed = orjson.loads(value)
                except orjson.JSONDecodeError:
                    parsed = None
                if not isinstance(parsed, dict):
                    raise _bad_attribute_value(name)
                checked[name] = value
            elif name == "SqsManagedSseEnabled":
                if value.lower() not in {"true", "false"}:
                    raise _bad_attribute_value(name)
                checked[name] = value.lower()
            elif name == "KmsMasterKeyId":
                checked[name] = value
            elif name == "RedrivePolicy":
                checked[name] = await self._check_redrive(value, queue)
            else:
                raise _unknown_attribute(name)
        return checked

    async def _check_redrive(self, raw: str, queue: str) -> str:
        if raw == "":
            return ""

        def bad(reason: str) -> SqsError:
            return _invalid(f"Value {raw} for parameter RedrivePolicy is invalid. Reason: {reason}")

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
        if not arn.startswith("arn:aws:sqs:") or not _NAME_RE.match(name):
            raise bad("Dead letter target does not exist.")
        if name == queue:
            raise bad("A queue cannot be its own dead letter queue.")
        if await self.store.catalog_get(KIND, name) is None:
            raise bad("Dead letter target does not exist.")
        return orjson.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}).decode()

    async def _all_attributes(self, queue: _Queue, counts: bool) -> dict[str, str]:
        attributes = {k: v for k, v in queue.attributes.items() if v != ""}
        attributes["QueueArn"] = str(queue.doc.get("Arn") or self.queue_arn(queue.name))
        attributes["CreatedTimestamp"] = str(queue.doc.get("CreatedTimestamp", 0))
        attributes["LastModifiedTimestamp"] = str(queue.doc.get("LastModifiedTimestamp", 0))
        if counts:
            visible, in_flight, delayed = await self.store.queue_counts(queue.name, time.time())
            attributes["ApproximateNumberOfMessages"] = str(visible)
            attributes["ApproximateNumberOfMessagesNotVisible"] = str(in_flight)
            attributes["ApproximateNumberOfMessagesDelayed"] = str(delayed)
        return attributes

    # -- queue operations -------------------------------------------------------------
    async def create_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateQueue: idempotent when the attributes equal the existing queue's."""
        name = params.get("QueueName")
        if not isinstance(name, str) or not name:
            raise _missing("QueueName")
        if name.endswith(".fifo"):
            raise _fifo_unsupported()
        if not _NAME_RE.match(name):
            raise _invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. "
                "1 to 80 in length"
            )
        attributes = await self._check_attributes(_str_map(params, "Attributes"), name)
        wanted = {**_DEFAULTS, **{k: v for k, v in attributes.items() if v != ""}}
        tags = _str_map(params, "tags")
        for _ in range(10):
            entry = await self.store.catalog_get(KIND, name)
            if entry is not None:
                existing = _Queue.of(entry).attributes
                for key in sorted(set(existing) | set(wanted)):
                    if existing.get(key) != wanted.get(key):
                        raise SqsError(
                            "QueueNameExists",
                            "QueueAlreadyExists",
                            "A queue already exists with the same name and a different "
                            f"value for attribute {key}",
                        )
                return {"QueueUrl": self.queue_url(name)}
            now = int(time.time())
            doc: dict[str, Any] = {
                "Name": name,
                "Arn": self.queue_arn(name),
                "Attributes": wanted,
                "CreatedTimestamp": now,
                "LastModifiedTimestamp": now,
                "Tags": tags,
            }
            try:
                await self.store.catalog_put(KIND, name, doc, expect_revision=0)
            except ConcurrentModification:
                continue  # created concurrently: compare with the winner
            self.hooks.queue_changed(name, doc)
            return {"QueueUrl": self.queue_url(name)}
        raise SqsError(
            "RequestThrottled", "RequestThrottled", "The queue is being changed concurrently."
        )

    async def get_queue_url(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetQueueUrl."""
        name = params.get("QueueName")
        if not isinstance(name, str) or not name:
            raise _missing("QueueName")
        if not _NAME_RE.match(name) or await self.store.catalog_get(KIND, name) is None:
            raise _no_queue()
        return {"QueueUrl": self.queue_url(name)}

    async def list_queues(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListQueues with QueueNamePrefix and MaxResults / NextToken paging."""
        prefix = params.get("QueueNamePrefix") or ""
        if not isinstance(prefix, str):
            raise _invalid("Value for parameter QueueNamePrefix is invalid.")
        limit = _int_param(
            params,
            "MaxResults",
            1000,
            (1, 1000),
            "MaxResults must be an integer between 1 and 1000.",
        )
        entries = await self.store.catalog_list(KIND, prefix)
        token = params.get("NextToken")
        if token:
            after = _decode_token(token)
            entries = [e for e in entries if e.key > after]
        page = entries[:limit]
        result: dict[str, Any] = {}
        if page:
            result["QueueUrls"] = [self.queue_url(e.key) for e in page]
        if params.get("MaxResults") is not None and len(entries) > limit:
            result["NextToken"] = _encode_token(page[-1].key)
        return result

    async def delete_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteQueue: the definition and every message."""
        queue = await self._queue(params)
        await self.store.queue_purge(queue.name)
        await self.store.catalog_delete(KIND, queue.name)
        # a send that raced the delete may have landed between purge and delete
        await self.store.queue_purge(queue.name)
        self.hooks.queue_changed(queue.name, None)
        return {}

    async def purge_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        """PurgeQueue."""
        queue = await self._queue(params)
        await self.store.queue_purge(queue.name)
        return {}

    async def get_queue_attributes(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetQueueAttributes: ``All`` or named attributes, values as strings."""
        queue = await self._queue(params)
        names = _str_list(params, "AttributeNames")
        for name in names:
            if name != "All" and name not in _GETTABLE:
                raise _unknown_attribute(name)
        if not names:
            return {}
        everything = "All" in names
        counts = everything or any(n in _COUNT_ATTRIBUTES for n in names)
        attributes = await self._all_attributes(queue, counts)
        if not everything:
            attributes = {k: v for k, v in attributes.items() if k in names}
        return {"Attributes": attributes} if attributes else {}

    async def set_queue_attributes(self, params: dict[str, Any]) -> dict[str, Any]:
        """SetQueueAttributes; RedrivePolicy "" removes the policy."""
        queue = await self._queue(params)
        changes = await self._check_attributes(_str_map(params, "Attributes"), queue.name)

        def apply(doc: dict[str, Any]) -> None:
            attributes = doc.setdefault("Attributes", {})
            for key, value in changes.items():
                if value == "":
                    attributes.pop(key, None)
                else:
                    attributes[key] = value

        await self._update(params, apply)
        return {}

    async def list_dead_letter_source_queues(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListDeadLetterSourceQueues: queues whose RedrivePolicy targets this queue."""
        queue = await self._queue(params)
        limit = _int_param(
            params,
            "MaxResults",
            1000,
            (1, 1000),
            "MaxResults must be an integer between 1 and 1000.",
        )
        sources = [
            entry
            for entry in await self.store.catalog_list(KIND)
            if (redrive := _Queue.of(entry).redrive) is not None and redrive[0] == queue.name
        ]
        token = params.get("NextToken")
        if token:
            after = _decode_token(token)
            sources = [e for e in sources if e.key > after]
        page = sources[:limit]
        result: dict[str, Any] = {"queueUrls": [self.queue_url(e.key) for e in page]}
        if params.get("MaxResults") is not None and len(sources) > limit:
            result["NextToken"] = _encode_token(page[-1].key)
        return result

    async def tag_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        """TagQueue."""
        tags = _str_map(params, "Tags")
        if not tags:
            raise _missing("Tags")
        await self._update(params, lambda doc: doc.setdefault("Tags", {}).update(tags))
        return {}

    async def untag_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        """UntagQueue."""
        keys = _str_list(params, "TagKeys")
        if not keys:
            raise _missing("TagKeys")

        def remove(doc: dict[str, Any]) -> None:
            for key in keys:
                doc.setdefault("Tags", {}).pop(key, None)

        await self._update(params, remove)
        return {}

    async def list_queue_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListQueueTags."""
        queue = await self._queue(params)
        tags = queue.doc.get("Tags") or {}
        return {"Tags": tags} if tags else {}

    # -- sending ----------------------------------------------------------------------
    def _outgoing(self, queue: _Queue, entry: Mapping[str, Any]) -> _Outgoing:
        body = entry.get("MessageBody")
        if not isinstance(body, str) or not body:
            raise _missing("MessageBody")
        if entry.get("MessageGroupId") is not None or entry.get("MessageDeduplicationId"):
            raise _invalid(
                "The request include parameter that is not valid for this queue type. "
                "(MessageGroupId and MessageDeduplicationId are for FIFO queues.)"
            )
        _check_chars(body, "the message body")
        delay = _int_param(
            entry,
            "DelaySeconds",
            queue.number("DelaySeconds"),
            (0, MAX_DELAY_SECONDS),
            "DelaySeconds must be >= 0 and <= 900.",
        )
        attributes, attributes_size = _check_message_attributes(entry.get("MessageAttributes"))
        size = len(body.encode()) + attributes_size
        limit = queue.number("MaximumMessageSize")
        if size > limit:
            raise _invalid(
                f"One or more parameters are invalid. Reason: Message must be shorter than "
                f"{limit} bytes."
            )
        return _Outgoing(
            NewMessage(queue.name, body, attributes, float(delay)),
            size,
            _md5(body.encode()),
            message_attributes_md5(attributes) if attributes else None,
        )

    async def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """SendMessage: returns MessageId and the MD5s botocore users may check."""
        queue = await self._queue(params)
        outgoing = self._outgoing(queue, params)
        [message_id] = await self.store.queue_send([outgoing.message])
        self.hooks.signals.notify((queue.name,))
        return outgoing.result(message_id)

    async def send_message_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """SendMessageBatch: up to 10 entries, each succeeding or failing on its own."""
        queue = await self._queue(params)
        entries = _check_batch(params.get("Entries"), "SendMessageBatchRequestEntry")
        failed: list[dict[str, Any]] = []
        accepted: list[tuple[str, _Outgoing]] = []
        for entry in entries:
            try:
                accepted.append((entry["Id"], self._outgoing(queue, entry)))
            except SqsError as exc:
                failed.append(_failure(entry["Id"], exc))
        total = sum(outgoing.size for _, outgoing in accepted)
        if total > MAX_MESSAGE_SIZE:
            raise SqsError(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                f"Batch requests cannot be longer than {MAX_MESSAGE_SIZE} bytes. "
                f"You have sent {total} bytes.",
            )
        successful: list[dict[str, Any]] = []
        if accepted:
            ids = await self.store.queue_send([outgoing.message for _, outgoing in accepted])
            self.hooks.signals.notify((queue.name,))
            for (entry_id, outgoing), message_id in zip(accepted, ids, strict=True):
                successful.append({"Id": entry_id, **outgoing.result(message_id)})
        return {"Successful": successful, "Failed": failed}

    # -- receiving --------------------------------------------------------------------
    async def receive_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """ReceiveMessage with long polling (WaitTimeSeconds up to 20)."""
        queue = await self._queue(params)
        max_messages = _int_param(
            params,
            "MaxNumberOfMessages",
            1,
            (1, MAX_BATCH),
            "Must be between 1 and 10, if provided.",
        )
        visibility = _int_param(
            params,
            "VisibilityTimeout",
            queue.number("VisibilityTimeout"),
            (0, MAX_VISIBILITY_TIMEOUT),
            "Must be >= 0 and <= 43200, if provided.",
        )
        wait = _int_param(
            params,
            "WaitTimeSeconds",
            queue.number("ReceiveMessageWaitTimeSeconds"),
            (0, MAX_WAIT_SECONDS),
            "Must be >= 0 and <= 20, if provided.",
        )
        system = {
            *_str_list(params, "AttributeNames"),
            *_str_list(params, "MessageSystemAttributeNames"),
        }
        wanted_system = (
            _SYSTEM_ATTRIBUTES
            if "All" in system
            else [n for n in _SYSTEM_ATTRIBUTES if n in system]
        )
        wanted_attributes = _str_list(params, "MessageAttributeNames")
        redrive = queue.redrive
        if redrive is not None and await self.store.catalog_get(KIND, redrive[0]) is None:
            redrive = None  # SQS keeps messages whose dead-letter queue is gone
        messages = await self._poll(queue.name, max_messages, visibility, wait, redrive)
        if not messages:
            return {}
        return {
            "Messages": [
                self._render(queue.name, m, wanted_system, wanted_attributes) for m in messages
            ]
        }

    async def _poll(
        self,
        queue: str,
        max_messages: int,
        visibility: int,
        wait: int,
        redrive: tuple[str, int] | None,
    ) -> list[QueueMessage]:
        """Receive, waiting up to ``wait`` seconds for a message to become available."""
        signals = self.hooks.signals
        deadline = time.monotonic() + wait
        waiter: asyncio.Task[bool] | None = None
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining > 0 and waiter is None:
                    # register before looking, so a send during the look still wakes us
                    waiter = asyncio.create_task(signals.wait(queue, remaining))
                    await asyncio.sleep(0)
                now = time.time()
                got = await self.store.queue_receive(
                    queue, max_messages, float(visibility), now, redrive
                )
                # Wake the dead-letter queue's long polls only when it has something to
                # give: waking them on every receive could ping-pong between two polls.
                # (Counting scans the queue, so only when someone is waiting there.)
                if (
                    redrive is not None
                    and signals.waiting(redrive[0])
                    and (await self.store.queue_counts(redrive[0], now))[0]
                ):
                    signals.notify((redrive[0],))
                if got:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0 or waiter is None or signals.closed:
                    return []  # signals close at shutdown: long polls answer at once
                timeout = remaining
                due = await self.store.queue_next_visible(queue, now)
                if due is not None:
                    timeout = min(timeout, max(due - time.time(), _MIN_RECHECK))
                await asyncio.wait({waiter}, timeout=timeout)
                if waiter.done():
                    waiter = None
        finally:
            if waiter is not None:
                waiter.cancel()
                await asyncio.wait({waiter})

    def _render(
        self,
        queue: str,
        message: QueueMessage,
        system: Iterable[str],
        wanted_attributes: list[str],
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": _encode_receipt(queue, message.receipt),
            "MD5OfBody": _md5(message.body.encode()),
            "Body": message.body,
        }
        values = {
            "SenderId": self.settings.account_id,
            "SentTimestamp": str(int(message.sent * 1000)),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int(message.first_receive * 1000)),
        }
        chosen = {name: values[name] for name in system}
        if chosen:
            rendered["Attributes"] = chosen
        attributes = _select_attributes(message.attributes, wanted_attributes)
        if attributes:
            rendered["MessageAttributes"] = attributes
            rendered["MD5OfMessageAttributes"] = message_attributes_md5(attributes)
        return rendered

    # -- settling ---------------------------------------------------------------------
    async def delete_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteMessage; a well-formed but stale receipt handle is accepted, as in SQS."""
        queue = await self._queue(params)
        receipt = _decode_receipt(queue.name, params.get("ReceiptHandle"))
        await self.store.queue_delete(queue.name, receipt)
        return {}

    async def delete_message_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteMessageBatch."""
        queue = await self._queue(params)
        entries = _check_batch(params.get("Entries"), "DeleteMessageBatchRequestEntry")
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                receipt = _decode_receipt(queue.name, entry.get("ReceiptHandle"))
            except SqsError as exc:
                failed.append(_failure(entry["Id"], exc))
                continue
            await self.store.queue_delete(queue.name, receipt)
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    async def _change_visibility(self, queue: str, entry: Mapping[str, Any]) -> None:
        receipt = _decode_receipt(queue, entry.get("ReceiptHandle"))
        if entry.get("VisibilityTimeout") is None:
            raise _missing("VisibilityTimeout")
        timeout = _int_param(
            entry,
            "VisibilityTimeout",
            0,
            (0, MAX_VISIBILITY_TIMEOUT),
            "Must be between 0 and 43200, if provided.",
        )
        if not await self.store.queue_change_visibility(queue, receipt, timeout, time.time()):
            raise _invalid(
                f"Value {entry.get('ReceiptHandle')} for parameter ReceiptHandle is invalid. "
                "Reason: Message does not exist or is not available for visibility timeout "
                "change."
            )
        if timeout == 0:
            self.hooks.signals.notify((queue,))

    async def change_message_visibility(self, params: dict[str, Any]) -> dict[str, Any]:
        """ChangeMessageVisibility (0 to 43200 seconds from now)."""
        queue = await self._queue(params)
        await self._change_visibility(queue.name, params)
        return {}

    async def change_message_visibility_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """ChangeMessageVisibilityBatch."""
        queue = await self._queue(params)
        entries = _check_batch(params.get("Entries"), "ChangeMessageVisibilityBatchRequestEntry")
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                await self._change_visibility(queue.name, entry)
            except SqsError as exc:
                failed.append(_failure(entry["Id"], exc))
                continue
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}


def _check_batch(entries: Any, entry_shape: str) -> list[dict[str, Any]]:
    """Batch-level validation: 1 to 10 entries with distinct, well-formed Ids."""
    if not isinstance(entries, list) or not entries:
        raise SqsError(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            f"There should be at least one {entry_shape} in the request.",
        )
    if len(entries) > MAX_BATCH:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("Id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not _BATCH_ID_RE.match(entry_id):
            raise SqsError(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise SqsError(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                f"Id {entry_id} repeated.",
            )
        seen.add(entry_id)
    return entries


def _failure(entry_id: str, error: SqsError) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "SenderFault": error.status < 500,
        "Code": error.query_code,
        "Message": error.message,
    }


def _encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": after})).decode()


def _decode_token(token: Any) -> str:
    try:
        after = orjson.loads(base64.urlsafe_b64decode(token))["after"]
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        after = None
    if not isinstance(after, str):
        raise _invalid("Invalid NextToken value.")
    return after
