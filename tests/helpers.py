"""The suite's one way to wait: poll a condition until it holds or a deadline passes.

Tests never sleep to synchronise. When a test must wait for something another process
or task does, it polls a condition with :func:`poll_until` (or :func:`apoll_until` in
async tests): the wait ends as soon as the condition holds, and a deadline turns a
condition that never holds into a failure that says what was awaited, not a hang.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

__all__ = ["DEFAULT_TIMEOUT", "apoll_until", "closed_by_server", "poll_until"]

T = TypeVar("T")

#: Seconds a condition may take to hold. Generous: a happy path returns as soon as it
#: holds, and a loaded 2-core machine must not turn a slow wait into a failure.
DEFAULT_TIMEOUT = 15.0

_INTERVAL = 0.01


def _fail(what: str, timeout: float, last: object) -> None:
    pytest.fail(f"{what} not met within {timeout:g} s (last value: {last!r})")


def poll_until(
    condition: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = _INTERVAL,
    what: str | None = None,
) -> T:
    """Call ``condition()`` until it returns a truthy value, and return that value.

    Args:
        condition: what to check; its truthy result is returned.
        timeout: seconds before the test fails.
        interval: seconds between checks.
        what: the condition's description in the failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            _fail(what or getattr(condition, "__name__", "condition"), timeout, value)
        time.sleep(interval)


async def apoll_until(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = _INTERVAL,
    what: str | None = None,
) -> T:
    """The async :func:`poll_until`: ``condition`` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        value: T = await result if inspect.isawaitable(result) else result  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            _fail(what or getattr(condition, "__name__", "condition"), timeout, value)
        await asyncio.sleep(interval)


def closed_by_server(conn: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Wait until the peer closes ``conn`` (True), or until ``timeout`` (a timeout error)."""
    conn.settimeout(timeout)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
