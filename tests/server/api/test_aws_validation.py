"""The request checks behind the EventBridge API: AWS texts, tokens, schedules, Jackson."""

from __future__ import annotations

import pytest

from eventyard.errors import ValidationError
from eventyard.server.api.validation import (
    Violations,
    decode_token,
    encode_token,
    first_token_location,
    json_syntax_error,
    valid_schedule_expression,
)


def test_violations_are_reported_together_in_aws_form() -> None:
    v = Violations({"Name": "a b", "Limit": 0})
    v.string("Name", "name", pattern=r"[a-z]+")
    v.integer("Limit", "limit", low=1)
    with pytest.raises(ValidationError) as info:
        v.check()
    assert info.value.message == (
        "2 validation errors detected: Value 'a b' at 'name' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-z]+; Value '0' at 'limit' failed "
        "to satisfy constraint: Member must have value greater than or equal to 1"
    )


def test_a_value_of_the_wrong_type_is_rejected_at_once() -> None:
    with pytest.raises(ValidationError, match="expected a string, got a list"):
        Violations({"Name": []}).string("Name", "name")
    with pytest.raises(ValidationError, match="expected an integer, got a boolean"):
        Violations({"Limit": True}).integer("Limit", "limit")


def test_tokens_round_trip_only_within_their_scope() -> None:
    token = encode_token("ListRules:b", "rule-3")
    assert decode_token(token, "ListRules:b") == "rule-3"
    assert decode_token(None, "ListRules:b") is None
    for bad_scope_or_text in (
        ("ListRules:c", token),
        ("ListRules:b", "%%%"),
        ("ListRules:b", "e30="),
    ):
        with pytest.raises(ValidationError):
            decode_token(bad_scope_or_text[1], bad_scope_or_text[0])


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 day)",
        "cron(0 2 ? * SAT *)",
        "cron(5,35 14 * * ? *)",
        "cron(0 2 ? * SAT#3 *)",
        "cron(* * ? * SAT#3 *)",
        "cron(0/5 5 ? JAN 1-5 2022)",
        "cron(0-15/1 8-8 ? * 2,3,4,5,6,7 *)",
        "cron(1-31/30 1-1 ? * 1,7 *)",
        "cron(0 8 L * ? *)",
        "cron(0 8 3W * ? *)",
    ],
)
def test_valid_schedule_expressions(expression: str) -> None:
    assert valid_schedule_expression(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "rate(10 seconds)",
        "rate(1 minutes)",
        "rate(10 minute)",
        "rate(0 minutes)",
        "rate(-10 minutes)",
        "rate(10 MINUTES)",
        "rate( 10 minutes )",
        " rate(10 minutes)",
        "rate()",
        "cron(0 1 * * * *)",
        "cron(7 20 * * NOT *)",
        "cron(INVALID)",
        "cron(0 dummy ? * MON-FRI *)",
        "cron(71 8 1 * ? *)",
        "cron(0 8 1 * ? 1969)",
        "at(2030-01-01T00:00:00)",
    ],
)
def test_invalid_schedule_expressions(expression: str) -> None:
    assert not valid_schedule_expression(expression)


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("{'a': 1}", "Unexpected character (''' (code 39)): was expecting double-quote", 2),
        ('{"a": closed}', "Unrecognized token 'closed': was expecting (JSON String", 13),
        ('{"a": }', "Unexpected character ('}' (code 125)): expected a value", 7),
        ('{"a": [1,]}', "Unexpected character (']' (code 93)): expected a valid value", 10),
        ('{"a": 1,}', "Unexpected character ('}' (code 125)): was expecting double-quote", 9),
        ('{"a" 1}', "Unexpected character ('1' (code 49)): was expecting a colon", 6),
        ('{"a": 1 "b": 2}', "Unexpected character ('\"' (code 34)): was expecting comma", 9),
        ("[1}", "Unexpected close marker '}': expected ']' (for Array starting at", 4),
        ("{", "Unexpected end-of-input: expected close marker for Object", 2),
        ('{"a": "x', "Unexpected end-of-input: was expecting closing quote", 9),
        ("01", "Invalid numeric value: Leading zeroes not allowed", 3),
    ],
)
def test_json_syntax_errors_read_like_jackson(text: str, reason: str, column: int) -> None:
    found = json_syntax_error(text)
    assert found is not None
    first, location = found
    assert first.startswith(reason)
    assert location == f'[Source: (String)"{text}"; line: 1, column: {column}]'


def test_json_syntax_error_counts_lines_and_truncates_long_sources() -> None:
    found = json_syntax_error('{\n  "a": x}')
    assert found is not None
    assert found[1].endswith("line: 2, column: 9]")
    long = '{"a": [' + "1, " * 300 + "x]}"
    found = json_syntax_error(long)
    assert found is not None
    assert f'"[truncated {len(long) - 500} chars]; line: 1' in found[1]


def test_valid_json_has_no_syntax_error() -> None:
    assert json_syntax_error('{"a": [1, -2.5e3, true, null, "\\u00e9\\n"], "b": {}}') is None


def test_first_token_location_follows_the_first_token() -> None:
    assert first_token_location('["a"]').endswith("line: 1, column: 2]")
    # A root-level number is ended by one white-space character, which Jackson consumes.
    assert first_token_location("  42 ").endswith("line: 1, column: 6]")
    assert first_token_location("true").endswith("line: 1, column: 5]")
