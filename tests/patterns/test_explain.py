"""explain(): why an event does not match a pattern, agreeing with the matcher."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from eventyard.patterns import Explanation, explain, matches
from tests.patterns.test_conformance import _event, _pattern
from tests.patterns.test_property import events, patterns

EVENT = {
    "source": "shop",
    "detail-type": "order",
    "detail": {
        "state": "stopped",
        "n": 3,
        "nested": {"a": 1},
        "items": [{"k": 1, "v": 2}, {"k": 2, "v": 1}],
    },
}


def test_explain_agrees_with_every_conformance_case(pattern_cases: list[dict[str, Any]]) -> None:
    checked = 0
    for case in pattern_cases:
        if case["expect"] == "error":
            continue
        explanation = explain(_pattern(case), _event(case))
        if case["expect"] == "match":
            assert explanation is None, case["name"]
        else:
            assert explanation is not None and explanation.mismatches, case["name"]
        checked += 1
    assert checked > 100


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(pattern=patterns(), event=events())
def test_explain_is_none_exactly_when_the_reference_matches(
    pattern: dict[str, Any], event: dict[str, Any]
) -> None:
    explanation = explain(pattern, event)
    if matches(pattern, event):
        assert explanation is None
        return
    assert explanation is not None
    assert explanation.branches and all(explanation.branches)
    for mismatch in explanation.mismatches:
        assert bool(mismatch.actual) == (mismatch.kind in ("value", "exists"))
    assert Explanation.from_json(explanation.to_json()) == explanation


@pytest.mark.parametrize(
    ("pattern", "kind", "path", "words"),
    [
        ({"detail": {"state": ["running"]}}, "value", "detail.state", '"stopped"'),
        ({"detail": {"missing": ["x"]}}, "missing", "detail.missing", "is missing"),
        ({"detail": {"nested": ["x"]}}, "missing", "detail.nested", "an object"),
        ({"detail": {"state": [{"exists": False}]}}, "exists", "detail.state", "must not"),
        ({"detail": {"state": [{"anything-but": "stopped"}]}}, "value", "detail.state", "excludes"),
        ({"detail": {"n": [{"numeric": [">", 5]}]}}, "value", "detail.n", "outside the range"),
        ({"detail": {"n": ["3"]}}, "value", "detail.n", "only matches strings"),
        ({"detail": {"state": [{"numeric": ["=", 3]}]}}, "value", "detail.state", "numbers"),
        ({"detail": {"items": {"k": [1], "v": [1]}}}, "array", "detail.items.k", "different"),
    ],
)
def test_explain_names_the_failing_field_and_why(
    pattern: dict[str, Any], kind: str, path: str, words: str
) -> None:
    explanation = explain(pattern, EVENT)
    assert explanation is not None
    (mismatch,) = explanation.mismatches
    assert mismatch.kind == kind
    assert mismatch.path.startswith(path)
    assert words in mismatch.message


def test_explain_gives_every_or_branch_and_only_the_failing_fields() -> None:
    pattern = {
        "source": ["shop"],
        "$or": [{"detail-type": ["refund"]}, {"detail": {"n": [{"numeric": ["<", 2]}]}}],
    }
    explanation = explain(pattern, EVENT)
    assert explanation is not None
    assert [[m.path for m in branch] for branch in explanation.branches] == [
        ["detail-type"],
        ["detail.n"],
    ]
    assert str(explanation).startswith("none of the 2 $or branches matches")
    assert explanation.branches[1][0].expected == ('{"numeric":["<",2]}',)
    assert explain({"source": ["shop"]}, EVENT) is None
