"""The AWS JSON protocol seen from our side: decoding requests, encoding answers.

Both APIs eventyard serves on ``POST /`` (EventBridge, AWS JSON 1.1, and SQS, AWS JSON
1.0) name the operation in ``X-Amz-Target: <Service>.<Operation>`` and carry their
parameters as a JSON object. Errors are ``{"__type": code, "message": text}`` with a
4xx/5xx status. Each service implements :class:`Operations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from eventyard.errors import SerializationError, ServiceError
from eventyard.server.auth.keys import Principal

__all__ = ["JSON_CONTENT_TYPES", "Operations", "decode_params", "encode_error", "encode_result"]

JSON_CONTENT_TYPES = frozenset({"application/x-amz-json-1.1", "application/x-amz-json-1.0"})


class Operations(Protocol):
    """One service's operations, dispatched by name."""

    async def call(
        self, op: str, params: dict[str, Any], caller: Principal | None = None
    ) -> dict[str, Any]:
        """Run operation ``op`` for ``caller``; raise a :class:`ServiceError` to answer.

        ``caller`` is the verified principal of the request; ``None`` is the server's own
        (home) account, ``settings.account_id``, as in dev mode and for internal calls.
        """
        ...


def decode_params(body: bytes) -> dict[str, Any]:
    """Parse a request body into its parameter object.

    Raises:
        SerializationError: the body is not a JSON object.
    """
    if not body.strip():
        return {}
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"Malformed request body: {exc.msg}") from None
    if not isinstance(params, dict):
        raise SerializationError("Malformed request body: the request must be a JSON object.")
    return params


def encode_result(result: Mapping[str, Any]) -> bytes:
    """The JSON body of a successful answer."""
    return orjson.dumps(result)


def encode_error(error: ServiceError) -> bytes:
    """The JSON body of an error answer."""
    return orjson.dumps(error.to_dict())
