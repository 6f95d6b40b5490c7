"""SQS messages: their attributes, checksums and receipt handles.

Message (user) attributes are validated and sized as SQS counts them, and a receive's
MessageAttributeNames filter selects among them. The MD5s of the body and of the
attributes are the ones botocore checks against what it sent. Receipt handles wrap the
store's receipt with the queue name, so a malformed handle or one from another queue is
``ReceiptHandleIsInvalid`` while a stale one is tolerated like SQS does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eventyard.server.api.sqs_requests import SqsError, invalid, missing
from eventyard.server.queue_messages import is_kept
from eventyard.server.store import NewMessage

__all__ = [
    "KEPT_SYSTEM_ATTRIBUTES",
    "SYSTEM_ATTRIBUTES",
    "TRACE_HEADER",
    "OutgoingMessage",
    "check_chars",
    "check_message_attributes",
    "check_system_attributes",
    "decode_receipt",
    "encode_receipt",
    "md5_hex",
    "message_attributes_md5",
    "request_size",
    "select_attributes",
]

_ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")

_BAD_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ALLOWED_CHARS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"

SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
)


TRACE_HEADER = "AWSTraceHeader"
#: the system attributes a receive may ask for that are kept with the message
#: (:mod:`eventyard.server.queue_messages`)
KEPT_SYSTEM_ATTRIBUTES = frozenset(
    {TRACE_HEADER, "MessageGroupId", "MessageDeduplicationId", "SequenceNumber"}
)


def _invalid_receipt(handle: str) -> SqsError:
    shown = handle if len(handle) <= 1024 else handle[:1024] + "..."
    return SqsError(
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        f'The input receipt handle "{shown}" is not a valid receipt handle.',
    )


def md5_hex(data: bytes) -> str:
    """The hex MD5 of ``data``, as SQS reports ``MD5OfMessageBody``."""
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


def encode_receipt(queue: str, receipt: str, message_id: str) -> str:
    """The receipt handle for the store's ``receipt`` of message ``message_id`` in
    ``queue`` (the id rides along so that a delete can be traced to its message)."""
    raw = f"{queue}\n{receipt}\n{message_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_receipt(queue: str, handle: Any) -> tuple[str, str | None]:
    """The store's receipt inside ``handle``, which must be one of ``queue``'s, and the
    message id it was given for (None in a handle made before ids rode along)."""
    if not isinstance(handle, str) or not handle:
        raise missing("ReceiptHandle")
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_receipt(handle) from None
    owner, sep, rest = raw.partition("\n")
    receipt, _, message_id = rest.partition("\n")
    if not sep or not receipt or owner != queue:
        raise _invalid_receipt(handle)
    return receipt, message_id or None


def check_chars(text: str, where: str) -> None:
    """Reject characters SQS does not allow in message text (``InvalidMessageContents``)."""
    bad = _BAD_CHAR_RE.search(text)
    if bad is not None:
        raise SqsError(
            "InvalidMessageContents",
            "InvalidMessageContents",
            f"Invalid binary character '#x{ord(bad.group()):X}' was found in {where}, "
            f"the set of allowed characters is {_ALLOWED_CHARS}",
        )


def check_message_attributes(raw: Any) -> tuple[dict[str, dict[str, str]], int]:
    """Validated message attributes and their size as SQS counts it."""
    if raw is None:
        return {}, 0
    if not isinstance(raw, dict):
        raise invalid("MessageAttributes must be a map of name to value.")
    if len(raw) > 10:
        raise invalid(
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
            raise invalid(
                f"Message (user) attribute name '{name}' is invalid: names are 1 to 256 "
                "characters of A-Z a-z 0-9 _ - . with no leading, trailing or repeated "
                "period, and must not start with AWS. or Amazon."
            )
        if not isinstance(value, dict):
            raise invalid(f"Message (user) attribute '{name}' must be a structure.")
        data_type = value.get("DataType")
        if not isinstance(data_type, str) or not data_type:
            raise invalid(f"The message attribute '{name}' must contain a DataType.")
        base = data_type.split(".", 1)[0]
        if base not in {"String", "Number", "Binary"} or len(data_type) > 256:
            raise invalid(
                f"The type of message (user) attribute '{name}' is invalid. You must use "
                "only the following supported type prefixes: Binary, Number, String."
            )
        if value.get("StringListValues") or value.get("BinaryListValues"):
            raise invalid(
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
                raise invalid(
                    f"Message (user) attribute '{name}' must contain a non-empty value "
                    f"of type '{base}'."
                )
            checked[name] = {"DataType": data_type, "BinaryValue": encoded}
            size += len(name.encode()) + len(data_type.encode()) + len(data)
            continue
        text = value.get("StringValue")
        if not isinstance(text, str) or not text:
            raise invalid(
                f"Message (user) attribute '{name}' must contain a non-empty value of "
                f"type '{base}'."
            )
        check_chars(text, f"the value of message (user) attribute '{name}'")
        if base == "Number":
            try:
                float(text)
            except ValueError:
                raise invalid(
                    f"Can't cast the value of message (user) attribute '{name}' to a number."
                ) from None
        checked[name] = {"DataType": data_type, "StringValue": text}
        size += len(name.encode()) + len(data_type.encode()) + len(text.encode())
    return checked, size


def check_system_attributes(raw: Any) -> tuple[dict[str, dict[str, str]], int]:
    """Validated ``MessageSystemAttributes`` (only ``AWSTraceHeader``, a String) and
    their size, which counts toward the message size as SQS counts it."""
    if raw is None:
        return {}, 0
    if not isinstance(raw, dict):
        raise invalid("MessageSystemAttributes must be a map of name to value.")
    checked: dict[str, dict[str, str]] = {}
    size = 0
    for name, value in raw.items():
        if name != TRACE_HEADER:
            raise invalid(
                f"Message system attribute name '{name}' is invalid: the only message "
                f"system attribute a sender may set is {TRACE_HEADER}."
            )
        if not isinstance(value, dict) or value.get("DataType") != "String":
            raise invalid(f"The message system attribute '{name}' must be of type 'String'.")
        text = value.get("StringValue")
        if not isinstance(text, str) or not text:
            raise invalid(
                f"Message system attribute '{name}' must contain a non-empty value of "
                "type 'String'."
            )
        check_chars(text, f"the value of message system attribute '{name}'")
        checked[name] = {"DataType": "String", "StringValue": text}
        size += len(name.encode()) + len(b"String") + len(text.encode())
    return checked, size


def request_size(entry: Any) -> int:
    """What one batch entry adds to the request's size: body and attributes, as sent.

    SQS limits the whole batch request (every entry, valid or not) to the largest
    message size, before it looks at the entries one by one.
    """
    if not isinstance(entry, dict):
        return 0
    size = 0
    body = entry.get("MessageBody")
    if isinstance(body, str):
        size += len(body.encode("utf-8", "surrogatepass"))
    for key in ("MessageAttributes", "MessageSystemAttributes"):
        attributes = entry.get(key)
        if not isinstance(attributes, dict):
            continue
        for name, value in attributes.items():
            size += len(str(name).encode("utf-8", "surrogatepass"))
            if isinstance(value, dict):
                for field in ("DataType", "StringValue", "BinaryValue"):
                    text = value.get(field)
                    if isinstance(text, str):
                        size += len(text.encode("utf-8", "surrogatepass"))
    return size


def select_attributes(
    attributes: Mapping[str, dict[str, str]], wanted: Iterable[str]
) -> dict[str, dict[str, str]]:
    """The message attributes a MessageAttributeNames filter asks for."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for name in wanted:
        if name in {"All", ".*"}:
            return {k: v for k, v in attributes.items() if not is_kept(k)}
        if name.endswith(".*"):
            prefixes.append(name[:-1])
        else:
            exact.add(name)
    return {
        name: value
        for name, value in attributes.items()
        if not is_kept(name) and (name in exact or any(name.startswith(p) for p in prefixes))
    }


@dataclass(slots=True, frozen=True)
class OutgoingMessage:
    """A validated message to send and the checksums its answer reports."""

    message: NewMessage
    size: int
    md5_body: str
    md5_attributes: str | None
    md5_system: str | None = None
    sequence: str | None = None

    def result(self, message_id: str) -> dict[str, Any]:
        result = {"MessageId": message_id, "MD5OfMessageBody": self.md5_body}
        if self.md5_attributes is not None:
            result["MD5OfMessageAttributes"] = self.md5_attributes
        if self.md5_system is not None:
            result["MD5OfMessageSystemAttributes"] = self.md5_system
        if self.sequence is not None:
            result["SequenceNumber"] = self.sequence
        return result
