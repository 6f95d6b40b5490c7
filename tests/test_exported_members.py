"""The public surface is explicit: these names, and only these, are eventyard's API."""

from __future__ import annotations

import eventyard
from eventyard import errors


def test_package_exports_exactly_the_sdk_names() -> None:
    assert sorted(eventyard.__all__) == [
        "AsyncClient",
        "Client",
        "Consumer",
        "Drop",
        "Event",
        "Message",
        "Retry",
        "StoredEvent",
        "Trace",
        "__version__",
        "errors",
        "webhooks",
    ]
    for name in eventyard.__all__:
        assert hasattr(eventyard, name), name


def test_every_error_is_an_eventyard_error() -> None:
    assert sorted(errors.__all__) == [
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
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.EventyardError), name


def test_retry_and_drop_are_control_flow_not_errors() -> None:
    assert not issubclass(eventyard.Retry, errors.EventyardError)
    assert not issubclass(eventyard.Drop, errors.EventyardError)
