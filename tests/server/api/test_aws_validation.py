"""The request checks behind the EventBridge API: AWS texts and tokens."""

from __future__ import annotations

import pytest

from eventyard.errors import ValidationError
from eventyard.server.api.validation import (
    Violations,
    decode_token,
    encode_token,
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
