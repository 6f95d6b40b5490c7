"""The request checks behind the EventBridge API: AWS texts, tokens, schedules."""

from __future__ import annotations

import pytest

from eventyard.errors import ValidationError
from eventyard.server.api.validation import (
    Violations,
    decode_token,
    encode_token,
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
