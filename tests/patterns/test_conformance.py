"""All AWS-recorded cases of ../shared/conformance/patterns.jsonl, through both engines.

Each case runs against :func:`matches` (the reference) and against a :class:`Matcher`
holding only that rule; error cases must fail with AWS's first message line, character
for character. A last test loads every valid case into one Matcher and checks each
event against the whole bus.
"""

from __future__ import annotations

from typing import Any

import pytest

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import Matcher, matches, validate


def _pattern(case: dict[str, Any]) -> Any:
    return case["pattern_text"] if "pattern_text" in case else case["pattern"]


def _event(case: dict[str, Any]) -> Any:
    return case["event_text"] if "event_text" in case else case["event"]


def test_conformance_file_has_all_157_cases(pattern_cases: list[dict[str, Any]]) -> None:
    assert len(pattern_cases) == 157


def test_every_case_gives_the_recorded_outcome_with_matches(
    pattern_cases: list[dict[str, Any]],
) -> None:
    failures = []
    for case in pattern_cases:
        try:
            outcome = "match" if matches(_pattern(case), _event(case)) else "no-match"
        except InvalidEventPattern as exc:
            if case["expect"] != "error" or exc.message != case["error_message"]:
                failures.append((case["name"], exc.message))
            assert exc.code == case.get("error_code", "InvalidEventPatternException")
            continue
        if outcome != case["expect"]:
            failures.append((case["name"], outcome))
    assert failures == []


def test_every_case_gives_the_recorded_outcome_with_a_matcher(
    pattern_cases: list[dict[str, Any]],
) -> None:
    failures = []
    for case in pattern_cases:
        matcher = Matcher()
        try:
            matcher.add(case["name"], _pattern(case))
        except InvalidEventPattern as exc:
            if case["expect"] != "error" or exc.message != case["error_message"]:
                failures.append((case["name"], exc.message))
            continue
        matched = matcher.match(_event(case)) == [case["name"]]
        if case["expect"] == "error" or matched != (case["expect"] == "match"):
            failures.append((case["name"], matched))
    assert failures == []


def test_error_cases_fail_validate_with_the_recorded_message(
    pattern_cases: list[dict[str, Any]],
) -> None:
    for case in (c for c in pattern_cases if c["expect"] == "error"):
        with pytest.raises(InvalidEventPattern) as raised:
            validate(_pattern(case))
        assert raised.value.message == case["error_message"], case["name"]


def test_json_text_and_parsed_forms_give_the_same_outcome(
    pattern_cases: list[dict[str, Any]],
) -> None:
    import json

    for case in (c for c in pattern_cases if "pattern" in c and c["expect"] != "error"):
        as_text = matches(json.dumps(case["pattern"]), json.dumps(case["event"]).encode())
        assert as_text == (case["expect"] == "match"), case["name"]


def test_one_matcher_with_every_valid_case_agrees_with_matches_on_every_event(
    pattern_cases: list[dict[str, Any]],
) -> None:
    valid = [c for c in pattern_cases if c["expect"] != "error"]
    matcher = Matcher()
    for case in valid:
        matcher.add(case["name"], _pattern(case))
    for case in pattern_cases:
        event = _event(case)
        expected = sorted(c["name"] for c in valid if matches(_pattern(c), event))
        assert matcher.match(event) == expected, case["name"]
