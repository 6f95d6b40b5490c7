"""Every validation message of the pattern language, character for character.

Messages are ``Event pattern is not valid. Reason: <reason>``; the reasons are those of
``reference/eventbridge.md`` §2.4-2.6 (event-ruler's), plus our own wording for the two
limits AWS never recorded (pattern length, ``$or`` combinations).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import Matcher, compile_pattern, matches, validate


def _reason(pattern: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidEventPattern) as raised:
        validate(pattern, **kwargs)
    error = raised.value
    assert error.code == "InvalidEventPatternException"
    assert error.status == 400
    prefix = "Event pattern is not valid. Reason: "
    assert error.message.startswith(prefix)
    return error.message[len(prefix) :]


def _cases(*cases: tuple[Any, str, str]) -> Any:
    return pytest.mark.parametrize(
        ("pattern", "reason"), [pytest.param(p, r, id=i) for p, r, i in cases]
    )


@_cases(
    (["a"], "Filter is not an object", "array"),
    ('"x"', "Filter is not an object", "json-string"),
    ("1", "Filter is not an object", "json-number"),
    (None, "Filter is not an object", "null"),
    ("", "Filter is not an object", "empty-text"),
    ("  ", "Filter is not an object", "blank-text"),
    ({}, "Empty objects are not allowed", "empty-object"),
    ({"a": {}}, "Empty objects are not allowed", "nested-empty-object"),
    ({"a": "x"}, '"a" must be an object or an array', "scalar-string"),
    ({"a": 42}, '"a" must be an object or an array', "scalar-number"),
    ({"a": None}, '"a" must be an object or an array', "scalar-null"),
    ({"a": []}, "Empty arrays are not allowed", "empty-array"),
    ({"a": [["x"]]}, "Match value must be String, number, true, false, or null", "nested-array"),
    ({"a": [{}]}, "Match expression name not found", "empty-expression"),
    ({"a": [{"NUMERIC": ["=", 5]}]}, "Unrecognized match type NUMERIC", "operator-case"),
    ({"a": [{"regex": "x"}]}, "Unrecognized match type regex", "unknown-operator"),
    ({"a": [{"prefix": "a", "suffix": "b"}]}, "Only one key allowed in match expression", "2keys"),
    ({"a": [{"exists": True, "x": 1}]}, "Only one key allowed in match expression", "exists-2"),
    ({"a": [{"exists": "yes"}]}, "exists match pattern must be either true or false.", "exists"),
    ({"a": [{"exactly": 1}]}, "exact match pattern must be a string", "exactly-number"),
)
def test_structure_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


@_cases(
    ({"a": [{"prefix": 1}]}, "prefix match pattern must be a string", "prefix-number"),
    ({"a": [{"prefix": ["x"]}]}, "prefix match pattern must be a string", "prefix-list"),
    ({"a": [{"prefix": None}]}, "prefix match pattern must be a string", "prefix-null"),
    ({"a": [{"prefix": {}}]}, "Prefix expression name not found", "prefix-empty-object"),
    ({"a": [{"prefix": {"exists": "x"}}]}, "Unsupported prefix pattern: exists", "prefix-op"),
    (
        {"a": [{"prefix": {"equals-ignore-case": 1}}]},
        "equals-ignore-case match pattern must be a string",
        "prefix-ic-number",
    ),
    (
        {"a": [{"prefix": {"equals-ignore-case": "x", "y": 1}}]},
        "Only one key allowed in match expression",
        "prefix-ic-inner-extra",
    ),
    (
        {"a": [{"prefix": {"equals-ignore-case": "x"}, "y": 1}]},
        "Only one key allowed in match expression",
        "prefix-ic-outer-extra",
    ),
    ({"a": [{"suffix": 1}]}, "suffix match pattern must be a string", "suffix-number"),
    ({"a": [{"suffix": {}}]}, "Suffix expression name not found", "suffix-empty-object"),
    ({"a": [{"suffix": {"prefix": "x"}}]}, "Unsupported suffix pattern: prefix", "suffix-op"),
    (
        {"a": [{"equals-ignore-case": ["x"]}]},
        "equals-ignore-case match pattern must be a string",
        "ignore-case-list",
    ),
    ({"a": [{"wildcard": 1}]}, "wildcard match pattern must be a string", "wildcard-number"),
    ({"a": [{"wildcard": "a**"}]}, "Consecutive wildcard characters at pos 2", "consecutive"),
    (
        {"a": [{"wildcard": "arn:aws:events:us-east-1:**:event-bus/*"}]},
        "Consecutive wildcard characters at pos 26",
        "consecutive-aws-recorded",
    ),
    ({"a": [{"wildcard": "é**"}]}, "Consecutive wildcard characters at pos 3", "pos-in-bytes"),
    ({"a": [{"wildcard": "a\\b"}]}, "Invalid escape character at pos 2", "bad-escape"),
    ({"a": [{"wildcard": "a\\"}]}, "Invalid escape character at pos 2", "trailing-backslash"),
    (
        {"a": [{"wildcard": "*:*:*:*:*:event-bus/*"}]},
        "Rule is too complex - try using fewer wildcard characters or fewer repeating "
        "character sequences after a wildcard character",
        "too-complex",
    ),
)
def test_string_operator_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


@_cases(
    ({"a": [{"numeric": 10}]}, "Value of numeric must be an array.", "not-array"),
    ({"a": [{"numeric": [5]}]}, "Invalid member in numeric match: 5", "no-operator"),
    ({"a": [{"numeric": []}]}, "Invalid member in numeric match: ]", "empty"),
    ({"a": [{"numeric": ["!=", 5]}]}, "Unrecognized numeric range operator: !=", "bad-operator"),
    ({"a": [{"numeric": ["=", "5"]}]}, "Value of equals must be numeric", "equals-string"),
    ({"a": [{"numeric": [">", 0, "<"]}]}, "Value of < must be numeric", "missing-top"),
    ({"a": [{"numeric": [">=", None]}]}, "Value of >= must be numeric", "null-bottom"),
    ({"a": [{"numeric": ["=", 5, 6]}]}, "Too many elements in numeric expression", "eq-extra"),
    ({"a": [{"numeric": ["<", 5, "x"]}]}, "Too many elements in numeric expression", "lt-extra"),
    (
        {"a": [{"numeric": ["<", 5], "x": 1}]},
        "Too many elements in numeric expression",
        "extra-key",
    ),
    ({"a": [{"numeric": [">", 0, 5]}]}, "Bad value in numeric range: 5", "range-value"),
    ({"a": [{"numeric": [">", 0, ">", 0]}]}, "Bad numeric range operator: >", "range-operator"),
    ({"a": [{"numeric": [">", 0, "<=", "9"]}]}, "Value of <= must be numeric", "range-top"),
    (
        {"a": [{"numeric": [">", 0, "<", 9, 1]}]},
        "Too many terms in numeric range expression",
        "range-extra",
    ),
    ({"a": [{"numeric": [">", 5, "<", 5]}]}, "Bottom must be less than top", "empty-range"),
    ({"a": [{"numeric": [">=", 6, "<=", 5]}]}, "Bottom must be less than top", "inverted"),
    ('{"a": [{"numeric": [">", 1e400]}]}', "Cannot compare number : 1e400", "infinite"),
)
def test_numeric_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


@_cases(
    (
        {"a": [{"anything-but": None}]},
        "Value of anything-but must be an array or single string/number value.",
        "null",
    ),
    (
        {"a": [{"anything-but": True}]},
        "Value of anything-but must be an array or single string/number value.",
        "boolean",
    ),
    (
        {"a": [{"anything-but": {"prefix": {"equals-ignore-case": "x"}}}]},
        "Value of anything-but must be an array or single string/number value.",
        "prefix-ignore-case",
    ),
    (
        {"a": [{"anything-but": ["x", None]}]},
        "Inside anything but list, start|null|boolean is not supported.",
        "list-null",
    ),
    (
        {"a": [{"anything-but": [{"prefix": "x"}]}]},
        "Inside anything but list, start|null|boolean is not supported.",
        "list-object",
    ),
    (
        {"a": [{"anything-but": [1, "x"]}]},
        "Inside anything but list, either all values are number or string, "
        "mixed type is not supported",
        "list-mixed",
    ),
    (
        {"a": [{"anything-but": []}]},
        "Inside anything but list, either all values are number or string, "
        "mixed type is not supported",
        "list-empty",
    ),
    ({"a": [{"anything-but": {}}]}, "Anything-But expression name not found", "empty-object"),
    (
        {"a": [{"anything-but": {"exists": False}}]},
        "Unsupported anything-but pattern: exists",
        "unsupported",
    ),
    ({"a": [{"anything-but": {"prefix": ""}}]}, "Null prefix/suffix not allowed", "empty-prefix"),
    (
        {"a": [{"anything-but": {"suffix": ["x", ""]}}]},
        "Null prefix/suffix not allowed",
        "empty-suffix-in-list",
    ),
    (
        {"a": [{"anything-but": {"prefix": 1}}]},
        "prefix/suffix match pattern must be a string",
        "prefix-number",
    ),
    (
        {"a": [{"anything-but": {"suffix": [None]}}]},
        "prefix/suffix match pattern must be a string",
        "suffix-null-in-list",
    ),
    (
        {"a": [{"anything-but": {"equals-ignore-case": 1}}]},
        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
        "ignore-case-number",
    ),
    (
        {"a": [{"anything-but": {"wildcard": [1]}}]},
        "wildcard match pattern must be a string",
        "wildcard-number",
    ),
    (
        {"a": [{"anything-but": {"wildcard": "x**"}}]},
        "Consecutive wildcard characters at pos 2",
        "wildcard-consecutive",
    ),
    (
        {"a": [{"anything-but": "x", "y": 1}]},
        "Too many elements in numeric expression",
        "extra-key",
    ),
    (
        {"a": [{"anything-but": {"prefix": "x", "y": 1}}]},
        "Too many elements in numeric expression",
        "inner-extra-key",
    ),
)
def test_anything_but_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


@_cases(
    ({"a": [{"cidr": "bad-filter"}]}, "Malformed CIDR, one '/' required", "no-slash"),
    ({"a": [{"cidr": "10.0.0.0/"}]}, "Malformed CIDR, one '/' required", "trailing-slash"),
    ({"a": [{"cidr": "1/2/3"}]}, "Malformed CIDR, one '/' required", "two-slashes"),
    ({"a": [{"cidr": "bad-/64filter"}]}, "Malformed CIDR, mask bits must be an integer", "bits"),
    ({"a": [{"cidr": "10.0.0.0/-1"}]}, "Malformed CIDR, mask bits must not be negative", "neg"),
    ({"a": [{"cidr": "10.0.0.0/32"}]}, "IPv4 mask bits must be < 32", "v4-32"),
    ({"a": [{"cidr": "::/128"}]}, "IPv6 mask bits must be < 128", "v6-128"),
    ({"a": [{"cidr": "xx.11.xx/8"}]}, "Nonstandard IP address: xx.11.xx", "nonstandard"),
    ({"a": [{"cidr": "999.0.0.1/8"}]}, "Invalid IP address: 999.0.0.1", "invalid-v4"),
    ({"a": [{"cidr": "1:/8"}]}, "Invalid IP address: 1:", "invalid-v6"),
    ({"a": [{"cidr": ["10.0.0.0/8"]}]}, "prefix match pattern must be a string", "not-string"),
)
def test_cidr_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


@_cases(
    ({"$or": {"a": ["x"]}}, "It must be an Array followed with $or.", "not-array"),
    (
        {"$or": [{"a": ["x"]}, "b"]},
        "Only JSON object is allowed in array of $or relationship.",
        "item-not-object",
    ),
    (
        {"$or": [{"a": ["x"]}]},
        "There must have at least 2 Objects in $or relationship.",
        "one-object",
    ),
    ({"$or": []}, "There must have at least 2 Objects in $or relationship.", "empty"),
    (
        {"$or": [{"prefix": ["x"]}, {"b": ["y"]}]},
        "prefix is Ruler reserved fieldName which cannot be used inside $or.",
        "reserved",
    ),
    (
        {"$or": [{"a": {"numeric": ["x"]}}, {"b": ["y"]}]},
        "numeric is Ruler reserved fieldName which cannot be used inside $or.",
        "reserved-nested",
    ),
    (
        {"$or": [{"a": ["x"]}, {"ip-address-in-range": ["y"]}]},
        "ip-address-in-range is Ruler reserved fieldName which cannot be used inside $or.",
        "reserved-for-future",
    ),
)
def test_or_errors(pattern: Any, reason: str) -> None:
    assert _reason(pattern) == reason


def test_reserved_words_are_ordinary_field_names_outside_or() -> None:
    assert matches({"prefix": ["x"]}, {"prefix": "x"})


def test_the_first_problem_in_document_order_is_reported() -> None:
    assert _reason('{"a": [], "b": 1}') == "Empty arrays are not allowed"
    assert _reason('{"a": "x", "b": [}') == '"a" must be an object or an array'
    assert _reason('{"a": [1], "b": [}').startswith("Unexpected close marker '}': expected ']'")


def test_a_repeated_key_is_validated_every_time_it_appears() -> None:
    assert _reason('{"a": 1, "a": ["x"]}') == '"a" must be an object or an array'


def test_complexity_counts_every_wildcard_of_one_field() -> None:
    three = {"a": [{"wildcard": f"*:stack/{name}/*"} for name in ("Api", "Db", "Web")]}
    four = {"a": [{"wildcard": f"*:stack/{name}/*"} for name in ("Api", "Db", "Web", "Ops")]}
    validate(three)
    assert _reason(four).startswith("Rule is too complex")


@pytest.mark.parametrize(
    "wildcard",
    ["arn:aws:events:us-east-1:*:event-bus/*", "/Users/*/dir/dir/dir/dir/dir/doc.txt", "*/x/*"],
)
def test_wildcards_aws_accepts_are_accepted(wildcard: str) -> None:
    assert compile_pattern({"a": [{"wildcard": wildcard}]}).has_wildcard


def test_patterns_over_the_length_limit_are_rejected() -> None:
    pattern = json.dumps({"a": ["x" * 2100]})
    assert (
        _reason(pattern)
        == f"Event pattern is too long: {len(pattern)} characters, the limit is 2048"
    )
    validate(pattern, max_length=4096)


def test_the_length_limit_counts_utf16_units_as_aws_does() -> None:
    pattern = '{"a": ["' + "\U0001f680" * 1019 + '"]}'  # 1030 code points, 2049 units
    assert _reason(pattern).startswith("Event pattern is too long: 2049 characters")


def test_the_length_limit_cannot_exceed_4096() -> None:
    with pytest.raises(ValueError):
        validate({"a": ["x"]}, max_length=4097)
    with pytest.raises(ValueError):
        Matcher(max_pattern_length=0)


def test_more_than_1000_or_combinations_are_rejected() -> None:
    ten = [{f"k{n}": ["x"]} for n in range(10)]
    ok = {"a": {"$or": ten}, "b": {"$or": ten}, "c": {"$or": ten}}  # 10 x 10 x 10
    assert len(compile_pattern(ok, max_length=4096).branches) == 1000
    too_many = {**ok, "d": {"$or": ten[:2]}}
    reason = _reason(too_many, max_length=4096)
    assert reason == "Event pattern has more than 1000 $or combinations"


def test_an_invalid_pattern_leaves_the_matcher_unchanged() -> None:
    matcher = Matcher()
    matcher.add("r", {"a": ["x"]})
    with pytest.raises(InvalidEventPattern):
        matcher.add("r", {"a": "x"})
    assert matcher.match({"a": "x"}) == ["r"]


def test_matches_validates_the_pattern_too() -> None:
    with pytest.raises(InvalidEventPattern):
        matches({"a": []}, {"a": "x"})
