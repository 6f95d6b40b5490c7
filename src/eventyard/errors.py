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
│   ├── ResourceNotFound              ResourceNotFoundException
│   ├── ResourceAlreadyExists         ResourceAlreadyExistsException
│   ├── LimitExceeded                 LimitExceededException
│   ├── ConcurrentModification        ConcurrentModificationException
│   ├── IllegalStatus                 IllegalStatusException
│   ├── UnknownOperation              UnknownOperationException
│   ├── SerializationError            SerializationException (malformed request body)
│   ├── InternalError                 InternalException (HTTP 500)
│   └── QueueError                    SQS errors (QueueDoesNotExist, ReceiptHandleIsInvalid…)
├── ConfigurationError                a setting, flag or file cannot work (CLI exit 2)
├── StartupError                      the server cannot start (address in use…)
├── StoreError                        the store failed (disk, corruption, closed)
├── DeliveryError                     one delivery attempt failed (retryable or not)
└── ClientError                       the SDK could not talk to the server
    └── PutEventsFailed               entries PutEvents rejected for good
```
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientError",
    "ConcurrentModification",
    "ConfigurationError",
    "DeliveryError",
    "EventyardError",
    "IllegalStatus",
    "InternalError",
    "InvalidEventPattern",
    "LimitExceeded",
    "PutEventsFailed",
    "QueueError",
    "ResourceAlreadyExists",
    "ResourceNotFound",
    "SerializationError",
    "ServiceError",
    "StartupError",
    "StoreError",
    "UnknownOperation",
    "ValidationError",
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


class ResourceNotFound(ServiceError):
    code = "ResourceNotFoundException"


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


class StoreError(EventyardError):
    """The store could not do what was asked (I/O error, closed, corrupt)."""


class DeliveryError(EventyardError):
    """One delivery attempt failed.

    Attributes:
        retryable: whether another attempt may succeed.
        error_code: the DLQ ``ERROR_CODE`` attribute (``TIMEOUT``, ``THROTTLING``…).
    """

    def __init__(self, message: str, *, retryable: bool, error_code: str = "SDK_CLIENT_ERROR"):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_code = error_code


class ClientError(EventyardError):
    """The SDK could not complete a call (connection, timeout, unexpected answer)."""


class PutEventsFailed(ClientError):
    """Some PutEvents entries were rejected for good.

    Attributes:
        failures: ``(index, error_code, error_message)`` for each rejected entry.
    """

    def __init__(self, failures: list[tuple[int, str, str]]):
        self.failures = failures
        shown = "; ".join(f"entry {i}: {c}: {m}" for i, c, m in failures[:5])
        super().__init__(f"{len(failures)} event(s) rejected: {shown}")
