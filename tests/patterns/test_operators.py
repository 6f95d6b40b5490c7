"""What each part of the pattern language matches, checked on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.patterns.helpers import assert_match, assert_no_match


def _cases(*cases: tuple[Any, Any, bool, str]) -> Any:
    return pytest.mark.parametrize(
        ("pattern", "event", "expected"),
        [pytest.param(p, e, x, id=i) for p, e, x, i in cases],
    )


def _check(pattern: Any, event: Any, expected: bool) -> None:
    (assert_match if expected else assert_no_match)(pattern, event)


@_cases(
    ({"a": ["x"]}, {"a": "x"}, True, "string-equal"),
    ({"a": ["x"]}, {"a": "X"}, False, "string-case-sensitive"),
    ({"a": ["x "]}, {"a": "x"}, False, "string-whitespace-significant"),
    ({"a": [""]}, {"a": ""}, True, "empty-string-matches-empty"),
    ({"a": [""]}, {"a": None}, False, "empty-string-not-null"),
    ({"a": [""]}, {}, False, "empty-string-not-missing"),
    ({"a": [300]}, {"a": 300.0}, True, "number-by-value"),
    ({"a": [3.0e2]}, {"a": 300}, True, "number-exponent-by-value"),
    ({"a": [300]}, {"a": "300"}, False, "number-not-string"),
    ({"a": ["300"]}, {"a": 300}, False, "string-not-number"),
    ({"a": [0]}, {"a": -0.0}, True, "zero-equals-negative-zero"),
    ({"a": [1]}, {"a": True}, False, "number-not-boolean"),
    ({"a": [True]}, {"a": True}, True, "true"),
    ({"a": [False]}, {"a": True}, False, "false-not-true"),
    ({"a": [True]}, {"a": 1}, False, "true-not-one"),
    ({"a": [True]}, {"a": "true"}, False, "true-not-string"),
    ({"a": [None]}, {"a": None}, True, "null"),
    ({"a": [None]}, {}, False, "null-not-missing"),
    ({"a": [None]}, {"a": []}, False, "null-not-empty-array"),
    ({"a": [None]}, {"a": "null"}, False, "null-not-string"),
    ({"a": ["x", "y"]}, {"a": "y"}, True, "value-list-is-or"),
    ({"a": ["x"]}, {"a": ["q", "x"]}, True, "event-array-any-element"),
    ({"a": ["x"]}, {"a": [["q"], ["x"]]}, True, "event-nested-array-any-element"),
    ({"a": ["x"]}, {"a": {"x": 1}}, False, "object-is-not-a-leaf"),
    ({"a": ["x"]}, {"a": '{"x": 1}'}, False, "json-string-not-parsed"),
    ({"a": ["10.0.0.1"]}, {"a": "10.0.0.1"}, True, "ip-literal-same-text"),
    ({"a": ["2001:db8::1"]}, {"a": "2001:0db8:0:0:0:0:0:1"}, True, "ipv6-literal-other-spelling"),
    ({"a": ["10.0.0.1"]}, {"a": "10.0.0.2"}, False, "ip-literal-other-address"),
    ({"a": {"b": ["x"]}}, {"a": {"b": "x"}}, True, "nested-object"),
    ({"a.b": ["x"]}, {"a": {"b": "x"}}, True, "dot-joined-pattern-key"),
    ({"a": {"b": ["x"]}}, {"a.b": "x"}, True, "dot-joined-event-key"),
    ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False, "fields-are-and"),
    ({"a": ["x"]}, {"a": "x", "other": 1}, True, "other-fields-ignored"),
    ({"MY_KEY": ["x"]}, {"my_key": "x"}, False, "keys-case-sensitive"),
    ({"id": ["1"], "region": ["r"]}, {"id": "1", "region": "r"}, True, "metadata-fields"),
)
def test_literals_and_structure(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"prefix": "us-"}]}, {"a": "us-east-1"}, True, "prefix"),
    ({"a": [{"prefix": "us-"}]}, {"a": "eu-west-1"}, False, "prefix-mismatch"),
    ({"a": [{"prefix": "US-"}]}, {"a": "us-east-1"}, False, "prefix-case-sensitive"),
    ({"a": [{"prefix": ""}]}, {"a": "anything"}, True, "empty-prefix-matches-strings"),
    ({"a": [{"prefix": ""}]}, {"a": 5}, False, "prefix-never-matches-numbers"),
    ({"a": [{"prefix": "1"}]}, {"a": 12}, False, "prefix-not-number-text"),
    (
        {"a": [{"prefix": {"equals-ignore-case": "EventB"}}]},
        {"a": "eVeNtBridge"},
        True,
        "prefix-ic",
    ),
    ({"a": [{"prefix": {"equals-ignore-case": "x"}}]}, {"a": "yx"}, False, "prefix-ic-mismatch"),
    ({"a": [{"suffix": ".png"}]}, {"a": "cat.png"}, True, "suffix"),
    ({"a": [{"suffix": ".PNG"}]}, {"a": "cat.png"}, False, "suffix-case-sensitive"),
    ({"a": [{"suffix": ""}]}, {"a": "x"}, True, "empty-suffix-matches-strings"),
    ({"a": [{"suffix": ""}]}, {"a": None}, False, "suffix-never-matches-null"),
    ({"a": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"a": "A.PnG"}, True, "suffix-ic"),
    ({"a": [{"equals-ignore-case": "alice"}]}, {"a": "ALICE"}, True, "equals-ignore-case"),
    ({"a": [{"equals-ignore-case": "straße"}]}, {"a": "STRASSE"}, True, "ignore-case-unicode"),
    ({"a": [{"equals-ignore-case": ""}]}, {"a": ""}, True, "ignore-case-empty"),
    ({"a": [{"equals-ignore-case": ""}]}, {"a": "x"}, False, "ignore-case-empty-only-empty"),
    ({"a": [{"exactly": "x"}]}, {"a": "x"}, True, "exactly"),
    ({"a": [{"exactly": "10.0.0.1"}]}, {"a": "10.0.0.01"}, False, "exactly-is-textual"),
)
def test_string_operators(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"wildcard": "dir/*.png"}]}, {"a": "dir/x/y.png"}, True, "star-spans-slashes"),
    ({"a": [{"wildcard": "dir/*.png"}]}, {"a": "dir/x.jpg"}, False, "whole-value"),
    ({"a": [{"wildcard": "*"}]}, {"a": ""}, True, "star-matches-empty-string"),
    ({"a": [{"wildcard": ""}]}, {"a": ""}, True, "empty-wildcard-matches-empty"),
    ({"a": [{"wildcard": ""}]}, {"a": "x"}, False, "empty-wildcard-only-empty"),
    ({"a": [{"wildcard": "a*"}]}, {"a": "A"}, False, "wildcard-case-sensitive"),
    ({"a": [{"wildcard": "*"}]}, {"a": 1}, False, "wildcard-strings-only"),
    ({"a": [{"wildcard": "a\\*b"}]}, {"a": "a*b"}, True, "escaped-star-is-literal"),
    ({"a": [{"wildcard": "a\\*b"}]}, {"a": "axb"}, False, "escaped-star-not-wildcard"),
    ({"a": [{"wildcard": "a\\\\*"}]}, {"a": "a\\xyz"}, True, "escaped-backslash-then-star"),
    ({"a": [{"wildcard": "a?c"}]}, {"a": "abc"}, False, "question-mark-is-literal"),
    ({"a": [{"wildcard": "a.c"}]}, {"a": "abc"}, False, "dot-is-literal"),
    ({"a": [{"wildcard": "x*\ny"}]}, {"a": "x\n\ny"}, True, "star-spans-newlines"),
)
def test_wildcard(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"anything-but": "x"}]}, {"a": "y"}, True, "other-string"),
    ({"a": [{"anything-but": "x"}]}, {"a": "x"}, False, "same-string"),
    ({"a": [{"anything-but": "x"}]}, {"a": None}, True, "null-matches"),
    ({"a": [{"anything-but": "x"}]}, {}, False, "missing-does-not-match"),
    ({"a": [{"anything-but": "x"}]}, {"a": []}, False, "empty-array-does-not-match"),
    ({"a": [{"anything-but": "x"}]}, {"a": 5}, True, "number-is-not-the-string"),
    ({"a": [{"anything-but": "x"}]}, {"a": ["x", "y"]}, True, "any-element-other"),
    ({"a": [{"anything-but": "x"}]}, {"a": ["x", "x"]}, False, "all-elements-excluded"),
    ({"a": [{"anything-but": ["x", "y"]}]}, {"a": "y"}, False, "string-list"),
    ({"a": [{"anything-but": 100}]}, {"a": 100.0}, False, "number-by-value"),
    ({"a": [{"anything-but": [100, 200]}]}, {"a": 300}, True, "number-list-other"),
    ({"a": [{"anything-but": [100, 200]}]}, {"a": "100"}, True, "string-is-not-the-number"),
    ({"a": [{"anything-but": 0}]}, {"a": False}, True, "boolean-is-not-zero"),
    ({"a": [{"anything-but": {"prefix": "init"}}]}, {"a": "initial"}, False, "prefix-excluded"),
    ({"a": [{"anything-but": {"prefix": "init"}}]}, {"a": "post-init"}, True, "prefix-other"),
    ({"a": [{"anything-but": {"prefix": "init"}}]}, {"a": 12}, True, "prefix-number-matches"),
    ({"a": [{"anything-but": {"prefix": ["a", "b"]}}]}, {"a": "bc"}, False, "prefix-list"),
    ({"a": [{"anything-but": {"suffix": ".txt"}}]}, {"a": "f.txt"}, False, "suffix-excluded"),
    ({"a": [{"anything-but": {"suffix": ".txt"}}]}, {"a": "f.txt.bak"}, True, "suffix-other"),
    (
        {"a": [{"anything-but": {"equals-ignore-case": ["Stopped"]}}]},
        {"a": "STOPPED"},
        False,
        "ignore-case-excluded",
    ),
    (
        {"a": [{"anything-but": {"equals-ignore-case": "x"}}]},
        {"a": None},
        True,
        "ignore-case-null-matches",
    ),
    ({"a": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"a": "/usr/lib/x"}, False, "wc-out"),
    ({"a": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"a": "/usr/bin/x"}, True, "wc-other"),
    ({"a": [{"anything-but": {"wildcard": ""}}]}, {"a": "x"}, True, "empty-wildcard-nonempty"),
    ({"a": [{"anything-but": {"wildcard": ""}}]}, {"a": ""}, False, "empty-wildcard-empty"),
    ({"a": [{"anything-but": {"wildcard": "*"}}]}, {"a": 1}, True, "wildcard-number-matches"),
)
def test_anything_but(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"numeric": [">", 100]}]}, {"a": 101.0}, True, "greater"),
    ({"a": [{"numeric": [">", 100]}]}, {"a": 100}, False, "greater-is-strict"),
    ({"a": [{"numeric": [">=", 100]}]}, {"a": 100.0}, True, "greater-or-equal"),
    ({"a": [{"numeric": ["<", 0]}]}, {"a": -1e-9}, True, "less"),
    ({"a": [{"numeric": ["<", 0]}]}, {"a": 0}, False, "less-is-strict"),
    ({"a": [{"numeric": ["<=", 0]}]}, {"a": 0}, True, "less-or-equal"),
    ({"a": [{"numeric": ["=", 301.8]}]}, {"a": 301.8}, True, "equal"),
    ({"a": [{"numeric": ["=", 5]}]}, {"a": 5.0000001}, False, "equal-is-exact"),
    ({"a": [{"numeric": [">", 0, "<=", 5]}]}, {"a": 5}, True, "range-closed-top"),
    ({"a": [{"numeric": [">", 0, "<", 5]}]}, {"a": 5}, False, "range-open-top"),
    ({"a": [{"numeric": [">=", 0, "<", 5]}]}, {"a": 0}, True, "range-closed-bottom"),
    ({"a": [{"numeric": [">", 100]}]}, {"a": "300"}, False, "string-never-numeric"),
    ({"a": [{"numeric": [">", 100]}]}, {"a": None}, False, "null-never-numeric"),
    ({"a": [{"numeric": [">", 0]}]}, {"a": True}, False, "boolean-never-numeric"),
    ({"a": [{"numeric": [">", 1e10]}]}, {"a": 2e10}, True, "beyond-five-billion"),
    ({"a": [{"numeric": ["<", 10]}]}, {"a": [50, 3]}, True, "any-element-in-range"),
)
def test_numeric(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": "10.0.0.255"}, True, "inside-v4"),
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": "10.0.1.0"}, False, "outside-v4"),
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": "10.0.0.256"}, False, "not-an-ip"),
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": "010.0.0.1"}, False, "leading-zero-not-an-ip"),
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": 167772161}, False, "number-never"),
    ({"a": [{"cidr": "0.0.0.0/0"}]}, {"a": "255.255.255.255"}, True, "whole-v4-space"),
    ({"a": [{"cidr": "10.0.0.5/24"}]}, {"a": "10.0.0.4"}, False, "bottom-is-address-as-written"),
    ({"a": [{"cidr": "10.0.0.5/24"}]}, {"a": "10.0.0.200"}, True, "top-is-block-end"),
    ({"a": [{"cidr": "2001:db8::/64"}]}, {"a": "2001:0db8:0:0:ffff::1"}, True, "inside-v6"),
    ({"a": [{"cidr": "2001:db8::/64"}]}, {"a": "2001:db8:0:1::1"}, False, "outside-v6"),
    ({"a": [{"cidr": "2001:db8::/64"}]}, {"a": "10.0.0.1"}, False, "v4-never-in-v6-block"),
    ({"a": [{"cidr": "10.0.0.0/8"}]}, {"a": "::ffff:10.1.2.3"}, False, "dotted-v6-not-an-ip"),
    ({"a": [{"cidr": "10.0.0.0/8"}]}, {"a": "::ffff:a01:203"}, True, "v4-mapped-v6-is-v4"),
)
def test_cidr(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


@_cases(
    ({"a": [{"exists": True}]}, {"a": "x"}, True, "true-present"),
    ({"a": [{"exists": True}]}, {"a": None}, True, "true-null-is-a-leaf"),
    ({"a": [{"exists": True}]}, {}, False, "true-missing"),
    ({"a": [{"exists": True}]}, {"a": {"b": 1}}, False, "true-object-is-not-a-leaf"),
    ({"a": [{"exists": True}]}, {"a": []}, False, "true-empty-array"),
    ({"a": [{"exists": False}]}, {}, True, "false-missing"),
    ({"a": [{"exists": False}]}, {"a": []}, True, "false-empty-array"),
    ({"a": [{"exists": False}]}, {"a": {"b": 1}}, True, "false-object-is-not-a-leaf"),
    ({"a": [{"exists": False}]}, {"a": None}, False, "false-null-is-a-leaf"),
    ({"a": {"b": {"c": [{"exists": False}]}}}, {"a": {"x": 1}}, True, "false-missing-parent"),
    ({"a": [{"exists": False}], "b": ["x"]}, {"b": "x"}, True, "false-and-other-field"),
    ({"a": ["x", {"exists": False}]}, {"a": "y"}, False, "or-with-absence-present-value"),
    ({"a": ["x", {"exists": False}]}, {}, True, "or-with-absence-missing"),
)
def test_exists(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


ITEMS = {"items": [{"name": "John", "last": "Doe"}, {"name": "Anna", "last": "Smith"}]}


@_cases(
    ({"items": {"name": ["Anna"]}}, ITEMS, True, "field-in-any-element"),
    ({"items": {"name": ["Anna"], "last": ["Smith"]}}, ITEMS, True, "same-element"),
    ({"items": {"name": ["Anna"], "last": ["Doe"]}}, ITEMS, False, "different-elements"),
    (
        {"items": {"name": ["Anna"], "last": ["Doe"]}},
        {"items": [[{"name": "Anna", "last": "Doe"}]]},
        True,
        "nested-array-same-element",
    ),
    (
        {"items": {"name": ["Anna"]}, "top": ["t"]},
        {"items": [{"name": "Anna"}], "top": "t"},
        True,
        "fields-outside-arrays-are-consistent",
    ),
    (
        {"items": {"name": ["Anna"], "zone": [{"exists": False}]}},
        {"items": [{"name": "Anna"}, {"name": "Bo", "zone": 3}]},
        True,
        "absence-judged-in-the-chosen-element",
    ),
    (
        {"items": {"name": ["Anna"], "zone": [{"exists": False}]}},
        {"items": [{"name": "Anna", "zone": 1}]},
        False,
        "absence-fails-in-the-same-element",
    ),
    (
        {"items": {"name": ["Anna"], "alpha": [{"exists": False}]}},
        {"items": [{"name": "Anna"}, {"alpha": 1}]},
        False,
        "absence-before-in-path-order-sees-every-element",
    ),
    (
        {"items": {"name": [{"exists": True}]}},
        {"items": [{"x": 1}, {"name": "n"}]},
        True,
        "exists-in-one-element",
    ),
)
def test_arrays_of_objects_match_array_consistently(
    pattern: Any, event: Any, expected: bool
) -> None:
    _check(pattern, event, expected)


@_cases(
    (
        {"$or": [{"a": ["x"]}, {"b": ["y"]}]},
        {"b": "y"},
        True,
        "either-branch",
    ),
    ({"$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"c": 1}, False, "neither-branch"),
    (
        {"s": ["s"], "$or": [{"a": ["x"]}, {"b": ["y"]}]},
        {"a": "x"},
        False,
        "and-with-siblings",
    ),
    (
        {"d": {"$or": [{"a": ["x"]}, {"b": ["y"]}]}},
        {"d": {"b": "y"}},
        True,
        "at-nested-level",
    ),
    (
        {"$or": [{"a": ["x"]}, {"$or": [{"b": ["y"]}, {"c": ["z"]}]}]},
        {"c": "z"},
        True,
        "nested-or",
    ),
    (
        {"$or": [{"a": ["1"]}, {"b": ["2"]}], "d": {"$or": [{"c": ["3"]}, {"e": ["4"]}]}},
        {"b": "2", "d": {"e": "4"}},
        True,
        "parallel-ors",
    ),
    (
        {"$or": [{"a": ["1"]}, {"b": ["2"]}], "d": {"$or": [{"c": ["3"]}, {"e": ["4"]}]}},
        {"b": "2"},
        False,
        "parallel-ors-both-needed",
    ),
)
def test_or(pattern: Any, event: Any, expected: bool) -> None:
    _check(pattern, event, expected)


def test_a_repeated_key_keeps_the_last_value() -> None:
    text = '{"a": ["x"], "a": ["y"]}'
    assert_match(text, {"a": "y"})
    assert_no_match(text, {"a": "x"})


def test_a_repeated_key_after_an_or_overrides_the_or_branches_too() -> None:
    text = '{"$or": [{"a": ["1"]}, {"b": ["2"]}], "a": ["3"]}'
    assert_match(text, {"a": "3"})
    assert_no_match(text, {"a": "1"})
    assert_match(text, {"a": "3", "b": "2"})


def test_an_or_branch_overrides_an_earlier_sibling_on_the_same_path() -> None:
    text = '{"a": ["1"], "$or": [{"a": ["2"]}, {"b": ["3"]}]}'
    assert_match(text, {"a": "2"})
    assert_no_match(text, {"a": "1"})
    assert_match(text, {"a": "1", "b": "3"})


def test_nested_and_dot_joined_pattern_keys_for_one_path_override_each_other() -> None:
    text = '{"a": {"b": ["1"]}, "a.b": ["2"]}'
    assert_match(text, {"a": {"b": "2"}})
    assert_no_match(text, {"a": {"b": "1"}})


def test_events_may_be_json_text_or_bytes() -> None:
    assert_match({"a": ["x"]}, '{"a": "x"}')
    assert_match({"a": ["x"]}, b'{"a": "x"}')


def test_events_with_numbers_beyond_a_double_still_parse() -> None:
    assert_match({"a": ["x"]}, '{"a": "x", "big": 1e400}')
    assert_no_match({"big": [{"numeric": [">", 0]}]}, '{"big": 1e400}')
