"""SQS requests: the errors they fail with and the checks on their parameters.

SQS moved to AWS JSON from its Query protocol, so its errors are "query compatible": the
body's ``__type`` names the modeled shape (``com.amazonaws.sqs#QueueDoesNotExist``, which
botocore maps to the exception class ``sqs.exceptions.QueueDoesNotExist``) and the
``x-amzn-query-error`` header carries the legacy code users compare against
``e.response["Error"]["Code"]`` (``AWS.SimpleQueueService.NonExistentQueue;Sender``).
:class:`SqsError` carries both. Around it: the typed request parameters, the QueueUrl a
request names, the batch envelope (1 to 10 entries, each failing on its own) and the
opaque paging tokens of the List operations.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from eventyard.errors import SqsError

__all__ = [
    "MAX_BATCH",
    "QUEUE_NAME_RE",
    "SqsError",
    "bad_attribute_value",
    "batch_failure",
    "check_batch",
    "decode_token",
    "encode_token",
    "int_param",
    "invalid",
    "missing",
    "no_queue",
    "queue_account_from_url",
    "queue_name_from_url",
    "str_list",
    "str_map",
    "unknown_attribute",
]

MAX_BATCH = 10

# a standard queue's name, or a FIFO queue's (its 1 to 80 characters end in ".fifo");
# \Z: "$" would let "q\n" pass
QUEUE_NAME_RE = re.compile(r"^(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)\Z")
_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def no_queue() -> SqsError:
    """The queue a request names does not exist."""
    return SqsError(
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )


def invalid(message: str) -> SqsError:
    """A parameter value is invalid; ``message`` says which and why."""
    return SqsError("InvalidParameterValueException", "InvalidParameterValue", message)


def missing(name: str) -> SqsError:
    """Required parameter ``name`` is missing."""
    return SqsError(
        "MissingRequiredParameterException",
        "MissingParameter",
        f"The request must contain the parameter {name}.",
    )


def bad_attribute_value(name: str) -> SqsError:
    """Queue attribute ``name`` has an invalid value."""
    return SqsError(
        "InvalidAttributeValue", "InvalidAttributeValue", f"Invalid value for the parameter {name}."
    )


def unknown_attribute(name: str) -> SqsError:
    """Queue attribute ``name`` is not one SQS knows."""
    return SqsError("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {name}.")


def queue_name_from_url(url: str) -> str:
    """The queue name a QueueUrl (or a bare queue name) refers to.

    Any URL whose last path segment is the name is accepted, whatever its host, so URLs
    built for another endpoint (or by hand) work.

    Raises:
        SqsError: ``QueueDoesNotExist`` when no plausible name can be found.
    """
    try:
        path = urlsplit(url).path if "://" in url else url
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 host (fuzz finding)
        raise no_queue() from None
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not QUEUE_NAME_RE.match(name):
        raise no_queue()
    return name


def queue_account_from_url(url: str) -> str | None:
    """The account a QueueUrl names (``…/<account>/<name>``), None when it names none.

    A bare name, or a URL whose path has no 12-digit segment before the name, names
    no account: the caller's own is meant.
    """
    try:
        path = urlsplit(url).path if "://" in url else url
    except ValueError:
        return None
    parts = path.rstrip("/").split("/")
    if len(parts) >= 2 and len(parts[-2]) == 12 and parts[-2].isdigit():
        return parts[-2]
    return None


def int_param(
    params: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int], reason: str
) -> int:
    """Integer parameter ``name`` within ``bounds``, or ``default`` when absent."""
    low, high = bounds
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: {reason}")
    return value


def str_list(params: Mapping[str, Any], name: str) -> list[str]:
    """List-of-strings parameter ``name``, empty when absent."""
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Value {value!r} for parameter {name} is invalid. Reason: not a list.")
    return value


def str_map(params: Mapping[str, Any], name: str) -> dict[str, str]:
    """String-map parameter ``name``, empty when absent."""
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(
            f"Value {value!r} for parameter {name} is invalid. Reason: not a map of strings."
        )
    return value


def check_batch(entries: Any, entry_shape: str) -> list[dict[str, Any]]:
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


def batch_failure(entry_id: str, error: SqsError) -> dict[str, Any]:
    """The ``Failed`` entry of a batch answer for ``error``."""
    return {
        "Id": entry_id,
        "SenderFault": error.status < 500,
        "Code": error.query_code,
        "Message": error.message,
    }


def encode_token(after: str) -> str:
    """A List operation's NextToken: resume after key ``after``."""
    return base64.urlsafe_b64encode(orjson.dumps({"after": after})).decode()


def decode_token(token: Any) -> str:
    """The key a NextToken resumes after; ``InvalidParameterValue`` if malformed."""
    try:
        after = orjson.loads(base64.urlsafe_b64decode(token))["after"]
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        after = None
    if not isinstance(after, str):
        raise invalid("Invalid NextToken value.")
    return after
