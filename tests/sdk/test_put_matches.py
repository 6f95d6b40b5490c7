"""``put_events_with_matches``: both twins learn how many rules each event matched."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventyard import Event
from eventyard.errors import PutEventsFailed
from eventyard.sdk.client import BusMatches, PutEventsResult

from .conftest import Stub, StubRequest, Twin

Names = Callable[[str], str]


async def _bus_with_rules(api: Twin, name: Names, *patterns: dict[str, object]) -> str:
    bus = name("matches-bus")
    await api.create_bus(bus)
    for number, pattern in enumerate(patterns):
        await api.put_rule(f"{bus}-rule-{number}", pattern, bus=bus)
    return bus


async def test_put_events_with_matches_reports_the_rules_each_event_matched(
    api: Twin, name: Names
) -> None:
    bus = await _bus_with_rules(
        api, name, {"source": ["shop"]}, {"detail-type": ["OrderPlaced"]}, {"source": ["other"]}
    )
    events = [
        Event("shop", "OrderPlaced"),  # rules 0 and 1
        Event("shop", "Refunded"),  # rule 0
        Event("nobody", "Nothing"),  # none
    ]
    result = await api.put_events_with_matches(events, bus=bus)
    assert isinstance(result, PutEventsResult)
    assert len(result.event_ids) == len(set(result.event_ids)) == 3
    assert result.buses == [bus, bus, bus]
    assert result.matched_rules == [2, 1, 0]
    assert result.unmatched() == [2]
    assert result.by_bus() == [BusMatches(bus, events=3, unmatched=1, rule_matches=3)]


async def test_put_events_with_matches_counts_per_bus_across_batches(
    api: Twin, name: Names
) -> None:
    bus = await _bus_with_rules(api, name, {"source": ["shop"]})
    ruleless = name("ruleless-bus")
    await api.create_bus(ruleless)
    events = [Event("shop", "A", bus=bus) for _ in range(12)] + [Event("shop", "B", bus=ruleless)]
    result = await api.put_events_with_matches(events)
    assert result.buses == [bus] * 12 + [ruleless]
    assert result.matched_rules == [1] * 12 + [0]
    assert result.by_bus() == [
        BusMatches(bus, events=12, unmatched=0, rule_matches=12),
        BusMatches(ruleless, events=1, unmatched=1, rule_matches=0),
    ]


async def test_put_events_still_returns_only_the_ids(api: Twin, name: Names) -> None:
    bus = await _bus_with_rules(api, name, {"source": ["shop"]})
    ids = await api.put_events([Event("shop", "A"), Event("x", "B")], bus=bus)
    assert isinstance(ids, list) and len(ids) == 2 and all(isinstance(i, str) for i in ids)


async def test_put_events_with_matches_names_the_bus_of_an_arn(api: Twin, name: Names) -> None:
    bus = await _bus_with_rules(api, name)
    arn = f"arn:aws:events:us-east-1:000000000000:event-bus/{bus}"
    result = await api.put_events_with_matches(Event("shop", "A"), bus=arn)
    assert result.buses == [bus]
    assert result.matched_rules == [0]


async def test_put_events_with_matches_raises_for_rejected_entries_like_put_events(
    api: Twin,
) -> None:
    entries = [
        {"Source": "shop", "DetailType": "A", "Detail": "{}"},
        {"Source": "shop", "DetailType": "A", "Detail": "not json"},
    ]
    with pytest.raises(PutEventsFailed) as caught:
        await api.put_events_with_matches(entries)
    assert [index for index, _, _ in caught.value.failures] == [1]


async def test_match_counts_are_unknown_when_the_server_does_not_send_them(
    make_twin: Callable[..., Twin], stub: Stub
) -> None:
    def answer(request: StubRequest, number: int) -> tuple[int, dict[str, object]]:
        entries = request.params["Entries"]
        return 200, {
            "FailedEntryCount": 0,
            "Entries": [{"EventId": f"id-{i}"} for i, _ in enumerate(entries)],
        }

    stub.respond = answer
    result = await make_twin(stub.url).put_events_with_matches([Event("s", "t")] * 2)
    assert result.event_ids == ["id-0", "id-1"]
    assert result.matched_rules == [None, None]
    assert result.unmatched() == []
    assert result.by_bus() == []


async def test_a_malformed_match_header_means_unknown_counts(
    make_twin: Callable[..., Twin], stub: Stub
) -> None:
    stub.respond = lambda request, number: (
        200,
        {"FailedEntryCount": 0, "Entries": [{"EventId": "a"}, {"EventId": "b"}]},
        {"x-eventyard-matched-rules": "3"},  # one count for two entries
    )
    result = await make_twin(stub.url).put_events_with_matches([Event("s", "t")] * 2)
    assert result.matched_rules == [None, None]
