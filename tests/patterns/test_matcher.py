"""The compiled Matcher: its API, incremental updates, and per-event cost."""

from __future__ import annotations

from typing import Any

import pytest

from eventyard.errors import ValidationError
from eventyard.patterns import Matcher, compile_pattern, matches
from eventyard.patterns.index import PathIndex


def test_match_returns_the_sorted_ids_of_matching_rules() -> None:
    matcher = Matcher()
    matcher.add("b", {"source": ["s"]})
    matcher.add("a", {"source": [{"prefix": ""}]})
    matcher.add("c", {"source": ["other"]})
    assert matcher.match({"source": "s"}) == ["a", "b"]


def test_match_accepts_dicts_json_text_and_bytes() -> None:
    matcher = Matcher()
    matcher.add("r", '{"source": ["s"]}')
    assert matcher.match({"source": "s"}) == ["r"]
    assert matcher.match('{"source": "s"}') == ["r"]
    assert matcher.match(b'{"source": "s"}') == ["r"]


@pytest.mark.parametrize("event", ["[1]", "not json", b"\xff", 5, ["x"]])
def test_match_rejects_events_that_are_not_json_objects(event: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        Matcher().match(event)
    assert raised.value.message == "Parameter Event is not valid."


def test_adding_an_existing_id_replaces_its_pattern() -> None:
    matcher = Matcher()
    matcher.add("r", {"source": ["old"]})
    matcher.add("r", {"source": ["new"]})
    assert len(matcher) == 1
    assert matcher.match({"source": "old"}) == []
    assert matcher.match({"source": "new"}) == ["r"]


def test_removing_a_rule_stops_it_matching_and_unknown_ids_are_ignored() -> None:
    matcher = Matcher()
    matcher.add("r", {"source": ["s"]})
    matcher.remove("r")
    matcher.remove("never-added")
    assert "r" not in matcher
    assert matcher.match({"source": "s"}) == []


def test_removing_every_rule_leaves_an_empty_machine() -> None:
    matcher = Matcher()
    patterns: list[Any] = [
        {"source": ["a", "b"], "detail-type": [{"prefix": "Order"}]},
        {"source": ["a"], "detail": {"n": [{"numeric": [">", 1, "<", 9]}]}},
        {"detail": {"ip": [{"cidr": "10.0.0.0/8"}, "2001:db8::1"], "x": [{"exists": False}]}},
        {"$or": [{"a": [{"wildcard": "x*y"}]}, {"b": [{"anything-but": ["q"]}]}]},
        {"c": [{"suffix": {"equals-ignore-case": ".PNG"}}, {"equals-ignore-case": "Z"}, None]},
    ]
    for n, pattern in enumerate(patterns):
        matcher.add(f"r{n}", pattern)
    for n in range(len(patterns)):
        matcher.remove(f"r{n}")
    assert not matcher._root.edges and not matcher._root.entries


def test_rules_sharing_fields_share_states_and_survive_each_others_removal() -> None:
    matcher = Matcher()
    matcher.add("one", {"source": ["s"], "detail-type": ["A"]})
    shared = matcher._root.edges["detail-type"]
    matcher.add("two", {"source": ["s"], "detail-type": ["A", "B"]})
    assert matcher._root.edges["detail-type"] is shared  # added to, not rebuilt
    matcher.remove("one")
    assert matcher.match({"source": "s", "detail-type": "A"}) == ["two"]
    assert matcher._root.edges["detail-type"] is shared


def test_the_pattern_of_a_rule_is_kept_compiled() -> None:
    matcher = Matcher()
    matcher.add("r", {"a": ["x"]})
    assert matcher.pattern("r") == compile_pattern({"a": ["x"]})
    assert matcher.rule_ids() == ["r"]


def test_a_compiled_pattern_can_be_added_directly() -> None:
    matcher = Matcher()
    matcher.add("r", compile_pattern({"a": ["x"]}))
    assert matcher.match({"a": "x"}) == ["r"]


def test_the_matcher_accepts_patterns_up_to_4096_characters_by_default() -> None:
    pattern = {"a": ["x" * 3000]}
    Matcher().add("r", pattern)
    with pytest.raises(Exception, match="too long"):
        Matcher(max_pattern_length=2048).add("r", pattern)


def test_a_rule_with_only_absence_fields_matches_without_any_leaf() -> None:
    matcher = Matcher()
    matcher.add("r", {"a": [{"exists": False}]})
    assert matcher.match({}) == ["r"]
    assert matcher.match({"a": 1}) == []


def test_fields_beyond_the_fan_out_limit_are_still_checked() -> None:
    many = [f"v{n}" for n in range(40)]
    pattern = {"a": many, "b": many, "c": many, "d": ["x"]}
    matcher = Matcher()
    matcher.add("r", pattern)
    assert matcher.match({"a": "v1", "b": "v2", "c": "v3", "d": "x"}) == ["r"]
    assert matcher.match({"a": "v1", "b": "v2", "c": "nope", "d": "x"}) == []


def test_many_numeric_ranges_on_one_path_are_found_by_bisect() -> None:
    matcher = Matcher()
    for n in range(50):
        matcher.add(f"r{n}", {"n": [{"numeric": [">=", n, "<", n + 10]}]})
    assert matcher.match({"n": 12.5}) == sorted(f"r{n}" for n in range(3, 13))
    assert matcher.match({"n": 3}) == sorted(f"r{n}" for n in range(0, 4))
    matcher.remove("r3")
    assert matcher.match({"n": 3}) == ["r0", "r1", "r2"]


def _count_index_lookups(monkeypatch: pytest.MonkeyPatch, rules: int) -> int:
    calls = 0
    original = PathIndex.collect

    def counting(self: PathIndex[Any], values: list[Any], out: list[Any]) -> None:
        nonlocal calls
        calls += 1
        original(self, values, out)

    monkeypatch.setattr(PathIndex, "collect", counting)
    matcher = Matcher()
    matcher.add("target", {"source": [{"prefix": "s"}], "detail": {"n": [{"numeric": [">", 1]}]}})
    for n in range(rules):
        other = {"source": [{"prefix": f"src-{n}-"}], "detail": {"n": [{"numeric": [">", n]}]}}
        matcher.add(f"other-{n}", other)
    assert matcher.match({"source": "s", "detail": {"n": 5}}) == ["target"]
    return calls


def test_the_work_per_event_does_not_grow_with_the_number_of_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _count_index_lookups(monkeypatch, 10) == _count_index_lookups(monkeypatch, 2000)


def test_deeply_nested_events_and_patterns_do_not_exhaust_the_stack() -> None:
    event: dict[str, Any] = {"a": 1}
    pattern: dict[str, Any] = {"a": [1]}
    for _ in range(1200):
        event = {"a": event}
    for _ in range(650):
        pattern = {"a": pattern}
    matcher = Matcher()
    matcher.add("r", pattern)
    assert matcher.match(event) == []
    assert not matches(pattern, event, max_length=4096)
