"""The one exception tree of eventyard.

Every error eventyard raises on purpose is an :class:`EventyardError`. Errors that the
EventBridge or SQS API reports to a caller are :class:`ServiceError` subclasses: they carry
the AWS error ``code`` (the JSON body's ``__type``), the exact ``message`` and the HTTP
``status``. Foreign exceptions (``sqlite3``, ``aiohttp``, ``httpx``, ``orjson``) are
translated at our boundary and never reach users.

```
EventyardError
├── ServiceError                      code + message + status, AWS-shaped on the wire
│   ├── InvalidEventPattern           InvalidEventPatternException
│   ├── ValidationError               ValidationException
│   │   └── InvalidScheduleExpression a rate(...)/cron(...) expression AWS would refuse
│   ├── ResourceNotFound              ResourceNotFoundException
│   ├── ResourceAlreadyExists         ResourceAlreadyExistsException
│   ├── Conflict                      ConflictException (Scheduler, HTTP 409)
│   ├── LimitExceeded                 LimitExceededException
│   ├── ConcurrentModification        ConcurrentModificationException
│   ├── IllegalStatus                 IllegalStatusException
│   ├── UnknownOperation              UnknownOperationException
│   ├── SerializationError            SerializationException (malformed request body)
│   ├── InternalError                 InternalException (HTTP 500)
│   ├── PolicyLengthExceeded          PolicyLengthExceededException (a bus policy too long)
│   ├── ServiceUnavailable            ServiceUnavailable (HTTP 503: the server is not ready)
│   ├── Throttling                    ThrottlingException (the delivery backlog is too deep)
│   ├── QueueError                    SQS errors (QueueDoesNotExist, ReceiptHandleIsInvalid…)
│   │   └── SqsError                  the server's SQS error in its query-compatible form
│   └── AuthenticationError           SigV4 / credentials refused (issue 8)
│       ├── UnrecognizedClient        UnrecognizedClientException (EventBridge)
│       ├── InvalidSignature          InvalidSignatureException (EventBridge)
│       ├── IncompleteSignature       IncompleteSignatureException (EventBridge)
│       ├── MissingAuthenticationToken MissingAuthenticationTokenException (EventBridge)
│       └── QueryAuthenticationError  SQS: InvalidClientTokenId, SignatureDoesNotMatch…
├── ConfigurationError                a setting, flag or file cannot work (CLI exit 2)
├── StartupError                      the server cannot start (address in use…)
├── StoreError                        the store failed (disk, corruption, closed)
├── OutboundRefused                   the outbound policy refuses a target's address
├── DeliveryError                     one delivery attempt failed (retryable or not)
│   └── DeliveryDeferred              not attempted now (a throttled target); no attempt spent
├── PutEventsFailed                   the server rejected PutEvents entries for good
├── WebhookVerificationError          a signed webhook delivery does not verify (SDK)
└── TransportError                    the SDK could not talk to the server (no answer of its own)
    └── ExchangeFailed                one HTTP exchange failed: connection, timeout, foreign answer
```

``TransportError`` is not boto3's ``ClientError``, which means the opposite (the server
answered with an error): eventyard's equivalent of that is :class:`ServiceError`.
:class:`PutEventsFailed` is an answer too (entries the server refused), so it is no
``TransportError``.

Two exceptions live elsewhere on purpose. ``eventyard.Retry`` and ``eventyard.Drop``
(:mod:`eventyard.sdk.handler`) are control flow that a handler raises to settle its
event, not errors, so they are no ``EventyardError``. Private exceptions that never leave
their module may stay there too: the pattern scanner's ``JsonSyntaxError``
(:mod:`eventyard.patterns.tokens`) is caught inside the patterns package and turned into
an :class:`InvalidEventPattern`; ``_NoTags`` (:mod:`eventyard.server.api.tags`) ends a
read-modify-write early and is caught where it is raised.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConcurrentModification",
    "ConfigurationError",
    "Conflict",
    "DeliveryDeferred",
    "DeliveryError",
    "EventyardError",
    "ExchangeFailed",
    "IllegalStatus",
    "IncompleteSignature",
    "InternalError",
    "InvalidEventPattern",
    "InvalidScheduleExpression",
    "InvalidSignature",
    "LimitExceeded",
    "MissingAuthenticationToken",
    "OutboundRefused",
    "PolicyLengthExceeded",
    "PutEventsFailed",
    "QueryAuthenticationError",
    "QueueError",
    "ResourceAlreadyExists",
    "ResourceNotFound",
    "SerializationError",
    "ServiceError",
    "ServiceUnavailable",
    "SqsError",
    "StartupError",
    "StoreError",
    "Throttling",
    "TransportError",
    "UnknownOperation",
    "UnrecognizedClient",
    "ValidationError",
    "WebhookVerificationError",
]


class EventyardError(Exception):
    """Base class of every error eventyard raises on purpose."""


class ServiceError(EventyardError):
    """An error the API reports to its caller, shaped like AWS's.

    Attributes:
        code: the AWS error code, e.g. ``ResourceNotFoundException``.
        message: the exact human-readable message.
        status: the HTTP status the API answers with.
    """

    code: str = "InternalException"
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The AWS JSON 1.1 error body."""
        return {"__type": self.code, "message": self.message}


class InvalidEventPattern(ServiceError):
    """An event pattern is not valid; ``message`` equals AWS's first line."""

    code = "InvalidEventPatternException"

    @classmethod
    def because(cls, reason: str) -> InvalidEventPattern:
        """Build the error from the reason text AWS puts after ``Reason:``."""
        return cls(f"Event pattern is not valid. Reason: {reason}")


class ValidationError(ServiceError):
    code = "ValidationException"


class InvalidScheduleExpression(ValidationError):
    """A schedule expression AWS would refuse; ``message`` says why. Each API answers
    with its own fixed text (EventBridge: ``Parameter ScheduleExpression is not valid.``)."""


class ResourceNotFound(ServiceError):
    code = "ResourceNotFoundException"


class Conflict(ServiceError):
    """EventBridge Scheduler's ``ConflictException`` (HTTP 409): the resource exists."""

    code = "ConflictException"
    status = 409


class ResourceAlreadyExists(ServiceError):
    code = "ResourceAlreadyExistsException"


class LimitExceeded(ServiceError):
    code = "LimitExceededException"


class ConcurrentModification(ServiceError):
    code = "ConcurrentModificationException"


class IllegalStatus(ServiceError):
    code = "IllegalStatusException"


class UnknownOperation(ServiceError):
    code = "UnknownOperationException"


class SerializationError(ServiceError):
    code = "SerializationException"


class InternalError(ServiceError):
    code = "InternalException"
    status = 500


class QueueError(ServiceError):
    """An SQS-API error; ``code`` is the SQS error code (e.g. ``QueueDoesNotExist``)."""

    code = "InvalidParameterValue"


class ConfigurationError(EventyardError):
    """A setting, a command-line flag or a file has a value that cannot work.

    The command line reports it as a usage error (exit status 2).
    """


class StartupError(EventyardError):
    """The server cannot start: its address is in use, its store cannot be opened…"""


class OutboundRefused(EventyardError, OSError):
    """A connection the outbound policy refuses (raised inside the webhooks' HTTP client).

    It is also an :class:`OSError` because aiohttp's connector lets resolver failures
    of that kind through as connection errors; the webhook target turns it into a
    permanent delivery failure that names no address.
    """


class StoreError(EventyardError):
    """The store could not do what was asked (I/O error, closed, corrupt)."""


class DeliveryError(EventyardError):
    """One delivery attempt failed.

    Attributes:
        retryable: whether another attempt may succeed.
        error_code: the DLQ ``ERROR_CODE`` attribute (``TIMEOUT``, ``THROTTLING``…).
        status: the HTTP status the target answered, if it answered (the trace shows it).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        error_code: str = "SDK_CLIENT_ERROR",
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_code = error_code
        self.status = status


class PolicyLengthExceeded(ServiceError):
    """A bus policy would be longer than the 10,240 characters AWS allows."""

    code = "PolicyLengthExceededException"


class ServiceUnavailable(ServiceError):
    """The server is not (or no longer) ready to serve the request."""

    code = "ServiceUnavailable"
    status = 503


class Throttling(ServiceError):
    """The server refuses new events for now (its delivery backlog is too deep); retryable.

    Like AWS's, it is an HTTP 400 that botocore and the SDK retry with backoff.
    """

    code = "ThrottlingException"


class SqsError(QueueError):
    """An SQS API error in its query-compatible JSON form, as the server answers it.

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


class DeliveryDeferred(DeliveryError):
    """A retryable failure whose target asked for a minimum wait (``Retry-After``).

    The engine waits the longer of ``retry_after`` seconds and its own backoff.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        error_code: str = "THROTTLING",
        status: int | None = None,
    ):
        super().__init__(message, retryable=True, error_code=error_code, status=status)
        self.retry_after = retry_after


class PutEventsFailed(EventyardError):
    """Some PutEvents entries were rejected for good (the server answered: no transport
    problem).

    Attributes:
        failures: ``(index, error_code, error_message)`` for each rejected entry.
    """

    def __init__(self, failures: list[tuple[int, str, str]]):
        self.failures = failures
        shown = "; ".join(f"entry {i}: {c}: {m}" for i, c, m in failures[:5])
        super().__init__(f"{len(failures)} event(s) rejected: {shown}")


class WebhookVerificationError(EventyardError):
    """A webhook delivery's signature headers do not prove it came from eventyard
    (:func:`eventyard.webhooks.verify`): do not act on the payload.

    Attributes:
        reason: why, one of ``MISSING_HEADER`` (``webhook-id``, ``webhook-timestamp`` or
            ``webhook-signature`` is absent or empty), ``INVALID_TIMESTAMP`` (not an
            integer number of seconds), ``TIMESTAMP_TOO_OLD`` / ``TIMESTAMP_TOO_NEW``
            (outside the tolerance: a replay, or a clock far off), ``NO_MATCHING_SIGNATURE``
            (no ``v1`` signature matches any of the secrets).
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


class TransportError(EventyardError):
    """The SDK could not complete a call: no connection, a timeout, an answer that is not
    eventyard's, a closed client. (Not boto3's ``ClientError``, which is an error answer:
    eventyard's errors answered by the server are :class:`ServiceError`.)"""


class ExchangeFailed(TransportError):
    """One HTTP exchange failed (connection, timeout, protocol, a foreign answer); the
    SDK decides from it whether the call may be sent again.

    Attributes:
        sent: whether the request may have reached the server (False: it surely did not).
        status: the HTTP status of an answer that was not eventyard's, if any.
    """

    def __init__(self, message: str, *, sent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.status = status


# -- authentication (issue 8) ----------------------------------------------------------
# The codes, statuses and messages of AWS's front end, which answers before the service
# does; sources are listed in eventyard.server.auth.sigv4.


class AuthenticationError(ServiceError):
    """A request's credentials or signature were refused; the caller is not known.

    Attributes:
        query_error: for SQS, the ``x-amzn-query-error`` header value (``<code>;Sender``)
            that boto3 reads as ``Error.Code``; None for EventBridge.
    """

    query_error: str | None = None


class UnrecognizedClient(AuthenticationError):
    """EventBridge: the access key id is not one the server knows."""

    code = "UnrecognizedClientException"


class InvalidSignature(AuthenticationError):
    """EventBridge: the signature does not match, its scope is wrong, or it expired."""

    code = "InvalidSignatureException"


class IncompleteSignature(AuthenticationError):
    """EventBridge: the Authorization header or the presigned query is malformed."""

    code = "IncompleteSignatureException"


class MissingAuthenticationToken(AuthenticationError):
    """EventBridge: the request carries no credentials at all."""

    code = "MissingAuthenticationTokenException"


class QueryAuthenticationError(AuthenticationError):
    """SQS (AWS JSON 1.0, query compatible): the same refusals under SQS's codes.

    The body's ``__type`` is ``com.amazon.coral.service#<query_code>`` and the
    ``x-amzn-query-error`` header carries ``<query_code>;Sender``, so boto3 reports
    ``Error.Code == query_code`` (``InvalidClientTokenId``, ``SignatureDoesNotMatch``,
    ``IncompleteSignature``, ``MissingAuthenticationToken``, ``RequestExpired``).
    """

    def __init__(self, query_code: str, message: str, *, status: int):
        super().__init__(message, code=f"com.amazon.coral.service#{query_code}", status=status)
        self.query_code = query_code
        self.query_error = f"{query_code};Sender"

    def __str__(self) -> str:
        return f"{self.query_code}: {self.message}"
