"""client.trace and client.search_events, on both twins and both backends."""

from __future__ import annotations

from collections.abc import Callable

from eventyard import StoredEvent, Trace
from tests.sdk.conftest import Twin


async def test_both_twins_search_and_trace_with_typed_results(
    api: Twin, name: Callable[[str], str]
) -> None:
    bus = name("trace-bus")
    await api.create_bus(bus)
    await api.put_rule("wants-b", {"detail": {"k": ["b"]}}, bus=bus)
    ids = await api.put_events(
        [{"Source": "s", "DetailType": "t", "Detail": f'{{"k": "{k}"}}'} for k in "ab"], bus=bus
    )
    found = await api.search_events(bus, pattern={"detail": {"k": ["a"]}}, since="5m")
    assert [type(e) for e in found] == [StoredEvent] and found[0].id == ids[0]
    trace = await api.trace(ids[0])
    assert isinstance(trace, Trace) and trace.found and trace.time is not None
    verdict = trace.rule("wants-b")
    assert verdict is not None and not verdict.matched and verdict.explanation is not None
    assert verdict.explanation.mismatches[0].expected == ('"b"',)
    other = await api.trace(ids[1])
    assert other.rule("wants-b") is not None and other.rule("wants-b").matched  # type: ignore[union-attr]
