"""Rendered inputs are capped per target kind, and refused before they are built."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any

import orjson
import pytest

from eventyard.errors import DeliveryError
from eventyard.server.transform import MAX_QUEUE_INPUT_BYTES, compile_input


def _event(detail: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    event = {"version": "0", "id": "1", "detail-type": "t", "source": "s", "detail": detail}
    return event, orjson.dumps(event)


def _render(target: dict[str, Any], detail: dict[str, Any], limit: int) -> bytes:
    event, body = _event(detail)
    return compile_input(target).render(
        event, body, rule_arn="arn", rule_name="r", ingestion_time="t", limit=limit
    )


def test_a_template_repeating_a_large_value_is_refused_without_building_it() -> None:
    target = {
        "Id": "t",
        "InputTransformer": {"InputPathsMap": {"a": "$.detail.a"}, "InputTemplate": "<a>" * 2000},
    }
    detail = {"a": "x" * 40_000}  # 2,000 copies would be 80 MB
    tracemalloc.start()
    try:
        with pytest.raises(DeliveryError) as refused:
            _render(target, detail, MAX_QUEUE_INPUT_BYTES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.error_code == "INPUT_TOO_LARGE"
    assert refused.value.retryable is False
    assert f"over this target's limit of {MAX_QUEUE_INPUT_BYTES} bytes" in refused.value.message
    assert "InputTemplate of target t" in refused.value.message
    assert peak < 5_000_000


def test_many_distinct_large_values_stop_at_the_limit() -> None:
    paths = {f"p{i}": "$.detail" for i in range(50)}
    target = {
        "Id": "t",
        "InputTransformer": {
            "InputPathsMap": paths,
            "InputTemplate": "[" + ",".join(f"<p{i}>" for i in range(50)) + "]",
        },
    }
    with pytest.raises(DeliveryError, match="over this target's limit"):
        _render(target, {"a": "x" * 100_000}, MAX_QUEUE_INPUT_BYTES)


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ({"Id": "t"}, "the event"),
        ({"Id": "t", "InputPath": "$.detail"}, "InputPath $.detail"),
    ],
)
def test_whole_events_and_input_paths_over_the_limit_are_refused(
    target: dict[str, Any], what: str
) -> None:
    with pytest.raises(DeliveryError, match=re.escape(f"{what} renders")):
        _render(target, {"a": "x" * 300_000}, MAX_QUEUE_INPUT_BYTES)


def test_an_input_within_the_limit_renders_unchanged() -> None:
    target = {
        "Id": "t",
        "InputTransformer": {"InputPathsMap": {"a": "$.detail.a"}, "InputTemplate": "<a>" * 3},
    }
    assert _render(target, {"a": "xy"}, 6) == b"xyxyxy"
    with pytest.raises(DeliveryError, match="renders 9 bytes"):
        _render(target, {"a": "xyz"}, 8)
