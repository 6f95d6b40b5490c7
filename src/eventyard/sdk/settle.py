"""What a handler's outcome means for its message: :func:`settle`.

One rule set, used by the worker (which then deletes, releases or dead-letters the
message) and by :class:`eventyard.testing.TestRouter` (which records the verdict and
attempts again at once), so a test sees the decisions production makes:

- a return acknowledges, ``Drop`` acknowledges without processing;
- an event that is not an event, or whose detail does not fit the handler's model, is
  dead-lettered at once: no retry can make it valid;
- otherwise the attempt failed (an exception, or ``Retry``): attempt ``max_attempts``
  dead-letters the event, an earlier one retries it after ``Retry``'s delay or, for an
  exception, the consumer's backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from eventyard.sdk.handler import Outcome

__all__ = ["Settlement", "settle"]


@dataclass(slots=True, frozen=True)
class Settlement:
    """The verdict on one attempt.

    Attributes:
        action: ``ack`` (delete the message), ``drop`` (delete it, logging why),
            ``retry`` (attempt again after ``delay``) or ``dead-letter`` (move it to the
            handler's dead-letter queue with ``code``).
        code: the dead-letter ``ERROR_CODE``: ``HANDLER_FAILED``, ``INVALID_DETAIL`` or
            ``INVALID_EVENT`` ("" unless dead-lettered).
        delay: seconds before the next attempt of a ``retry``.
    """

    action: Literal["ack", "drop", "retry", "dead-letter"]
    code: str = ""
    delay: float = 0.0


def settle(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    backoff: Callable[[int], float],
    is_event: bool = True,
) -> Settlement:
    """Decide what to do with a message after attempt ``attempt`` ended with ``outcome``.

    Args:
        outcome: how the attempt ended.
        attempt: the attempt's number, from 1 (the message's receive count).
        max_attempts: the handler's attempts before dead-lettering.
        backoff: seconds before retrying after a failed attempt, called only when an
            exception (not ``Retry``) ended an attempt that is not the last.
        is_event: False when the message body is not an event at all (its dead-letter
            code is then ``INVALID_EVENT`` rather than ``INVALID_DETAIL``).
    """
    if outcome.kind == "ack":
        return Settlement("ack")
    if outcome.kind == "drop":
        return Settlement("drop")
    if outcome.kind == "invalid":
        return Settlement("dead-letter", "INVALID_DETAIL" if is_event else "INVALID_EVENT")
    if attempt >= max_attempts:
        return Settlement("dead-letter", "HANDLER_FAILED")
    delay = backoff(attempt) if outcome.delay is None else outcome.delay
    return Settlement("retry", delay=delay)
