"""The settle rules shared by the worker and ``testing.TestRouter``."""

from __future__ import annotations

import pytest

from eventyard.sdk.handler import Outcome
from eventyard.sdk.settle import Settlement, settle


def _never(attempt: int) -> float:
    raise AssertionError("no backoff expected")


def test_a_return_acknowledges_and_a_drop_drops_even_on_the_last_attempt() -> None:
    assert settle(Outcome("ack"), attempt=3, max_attempts=3, backoff=_never) == Settlement("ack")
    drop = settle(Outcome("drop", "x"), attempt=3, max_attempts=3, backoff=_never)
    assert drop == Settlement("drop")


def test_an_invalid_detail_or_body_is_dead_lettered_at_once_with_its_code() -> None:
    invalid = Outcome("invalid", "detail is not a valid Order")
    assert settle(invalid, attempt=1, max_attempts=5, backoff=_never) == Settlement(
        "dead-letter", "INVALID_DETAIL"
    )
    assert settle(invalid, attempt=1, max_attempts=5, backoff=_never, is_event=False) == (
        Settlement("dead-letter", "INVALID_EVENT")
    )


@pytest.mark.parametrize("kind", ["fail", "retry"])
def test_the_last_failed_attempt_is_dead_lettered_as_handler_failed(kind: str) -> None:
    outcome = Outcome("fail", "boom") if kind == "fail" else Outcome("retry", "later", delay=1.0)
    assert settle(outcome, attempt=2, max_attempts=2, backoff=_never) == Settlement(
        "dead-letter", "HANDLER_FAILED"
    )


def test_a_retry_keeps_its_delay_and_an_exception_takes_the_backoff_of_its_attempt() -> None:
    retry = Outcome("retry", "later", delay=0.25)
    assert settle(retry, attempt=1, max_attempts=2, backoff=_never) == Settlement(
        "retry", delay=0.25
    )
    asked: list[int] = []

    def backoff(attempt: int) -> float:
        asked.append(attempt)
        return 7.0

    failed = settle(Outcome("fail", "boom"), attempt=2, max_attempts=5, backoff=backoff)
    assert failed == Settlement("retry", delay=7.0)
    assert asked == [2]
