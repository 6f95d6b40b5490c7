"""Wildcard matching: the same answers as a regex, without backtracking on any input."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from eventyard.patterns import Matcher, compile_pattern, matches
from eventyard.patterns.wildcard import compile_wildcard

# few letters, so that segments often repeat and overlap inside values
_TEXT = st.text(alphabet="ab/*", max_size=12)
_VALUE = st.text(alphabet="ab/", max_size=20)


def _as_regex(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(s) for s in text.split("*")), re.DOTALL)


@given(_TEXT.filter(lambda t: "**" not in t), _VALUE)
def test_wildcard_matches_exactly_what_the_equivalent_regex_matches(text: str, value: str) -> None:
    assert compile_wildcard(text).matches(value) == bool(_as_regex(text).fullmatch(value))


def test_escaped_asterisks_are_literal_in_matching() -> None:
    wildcard = compile_wildcard("a\\*b*c")
    assert wildcard.matches("a*bxxc")
    assert not wildcard.matches("axbxxc")


def test_first_and_last_segments_may_not_overlap() -> None:
    assert not compile_wildcard("ab*ba").matches("aba")
    assert compile_wildcard("ab*ba").matches("abba")


def test_adversarial_values_get_their_answer_from_every_matching_path() -> None:
    # these took minutes (and 18 s) with the backtracking regex this replaces
    rule = {"detail": {"s": [{"wildcard": "*a*a*a*b"}]}}
    no = {"detail": {"s": "a" * 4000}}
    yes = {"detail": {"s": "a" * 4000 + "b"}}
    slashes = {"detail": {"s": "/" * 4000}}
    jpg = {"detail": {"s": [{"wildcard": "*/*/*.jpg"}]}}
    matcher = Matcher()
    matcher.add("a", compile_pattern(rule))
    matcher.add("jpg", compile_pattern(jpg))
    assert matcher.match(no) == []
    assert matcher.match(yes) == ["a"]
    assert matcher.match(slashes) == []
    assert not matches(rule, no)
    assert matches(rule, yes)
    assert not matches(jpg, slashes)
    anything_but = {"detail": {"s": [{"anything-but": {"wildcard": "*a*a*a*b"}}]}}
    assert matches(anything_but, no)
    assert not matches(anything_but, yes)
