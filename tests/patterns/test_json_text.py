"""Patterns given as JSON text: Jackson's syntax-error wording, repeated keys, escapes.

AWS parses patterns with Jackson while compiling them, so malformed JSON is reported
with Jackson's message (the first line is compared; AWS adds the parser location on a
second line) and the first problem in document order wins.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import compile_pattern, validate
from eventyard.patterns.tokens import text_tokens, value_tokens
from tests.conftest import conformance_file
from tests.patterns.helpers import assert_match, assert_no_match

VALUES = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"


def _reason(text: str) -> str:
    with pytest.raises(InvalidEventPattern) as raised:
        validate(text)
    return raised.value.message.removeprefix("Event pattern is not valid. Reason: ")


def test_invalid_json_cases_recorded_by_aws_give_its_first_line() -> None:
    cases = [json.loads(line) for line in conformance_file("api.jsonl").read_text().splitlines()]
    recorded = [
        c
        for c in cases
        if c["op"] == "TestEventPattern"
        and c["expect"].get("error", {}).get("code") == "InvalidEventPatternException"
    ]
    assert len(recorded) == 4
    for case in recorded:
        first_line = case["expect"]["error"]["message"].split("\n")[0]
        with pytest.raises(InvalidEventPattern) as raised:
            validate(case["params"]["EventPattern"])
        assert raised.value.message == first_line


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("this is not json", f"Unrecognized token 'this': was expecting {VALUES}"),
        ('{"a": [tru]}', f"Unrecognized token 'tru': was expecting {VALUES}"),
        ('{"a": [truex]}', f"Unrecognized token 'truex': was expecting {VALUES}"),
        (
            '{"a": [NaN]}',
            "Non-standard token 'NaN': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow",
        ),
        ('{"a": [NaNa]}', f"Unrecognized token 'NaNa': was expecting {VALUES}"),
        (
            '{"a": [+1]}',
            "Unexpected character ('+' (code 43)) in numeric value: JSON spec does not allow "
            "numbers to have plus signs: enable "
            "`JsonReadFeature.ALLOW_LEADING_PLUS_SIGN_FOR_NUMBERS` to allow",
        ),
        (
            "{'a': 1}",
            "Unexpected character (''' (code 39)): was expecting double-quote to start field name",
        ),
        (
            '{"a" 1}',
            "Unexpected character ('1' (code 49)): was expecting a colon to separate field "
            "name and value",
        ),
        (
            '{"a": [1 2]}',
            "Unexpected character ('2' (code 50)): was expecting comma to separate Array entries",
        ),
        (
            '{"a": [1] "b": [2]}',
            "Unexpected character ('\"' (code 34)): was expecting comma to separate Object entries",
        ),
        (
            '{"a": [1],}',
            "Unexpected character ('}' (code 125)): was expecting double-quote to start field name",
        ),
        ('{"a": [1,]}', f"Unexpected character (']' (code 93)): expected a valid value {VALUES}"),
        ('{"a": [#]}', f"Unexpected character ('#' (code 35)): expected a valid value {VALUES}"),
        ('{"a": [01]}', "Invalid numeric value: Leading zeroes not allowed"),
        (
            '{"a": [-x]}',
            "Unexpected character ('x' (code 120)) in numeric value: expected digit (0-9) to "
            "follow minus sign, for valid numeric value",
        ),
        (
            '{"a": [1.]}',
            "Unexpected character (']' (code 93)) in numeric value: Decimal point not "
            "followed by a digit",
        ),
        (
            '{"a": [1e+]}',
            "Unexpected character (']' (code 93)) in numeric value: Exponent indicator not "
            "followed by a digit",
        ),
        ('{"a": ["x\\q"]}', "Unrecognized character escape 'q' (code 113)"),
        (
            '{"a": ["\\u12g4"]}',
            "Unexpected character ('g' (code 103)): expected a hex-digit for character escape "
            "sequence",
        ),
        (
            '{"a": ["x\ny"]}',
            "Illegal unquoted character ((CTRL-CHAR, code 10)): has to be escaped using "
            "backslash to be included in string value",
        ),
        ('{"a": ["x', "Unexpected end-of-input: was expecting closing quote for a string value"),
        ('{"a', "Unexpected end-of-input: was expecting closing '\"' for name"),
        ('{"a"', "Unexpected end-of-input within/between Object entries"),
        (
            '{"a": ["x"]',
            "Unexpected end-of-input: expected close marker for Object (start marker at "
            '[Source: (String)"{"a": ["x"]"; line: 1, column: 1])',
        ),
        (
            '{"a":\n [1,',
            "Unexpected end-of-input: expected close marker for Array (start marker at "
            '[Source: (String)"{"a":\n [1,"; line: 2, column: 2])',
        ),
        (
            '{"a": [}',
            "Unexpected close marker '}': expected ']' (for Array starting at [Source: "
            '(String)"{"a": [}"; line: 1, column: 7])',
        ),
        ('{"a": [1,}', "Unexpected character ('}' (code 125)): expected a value"),
        (
            "/* c */ {}",
            "Unexpected character ('/' (code 47)): maybe a (non-standard) comment? (not "
            "recognized as one since Feature 'ALLOW_COMMENTS' not enabled for parser)",
        ),
        (
            "12x",
            "Unexpected character ('x' (code 120)): Expected space separating root-level values",
        ),
        (
            '{"a": [€]}',
            f"Unexpected character ('€' (code 8364 / 0x20ac)): expected a valid value {VALUES}",
        ),
    ],
)
def test_malformed_json_is_reported_in_jacksons_words(text: str, reason: str) -> None:
    assert _reason(text) == reason


def test_source_in_a_location_is_truncated_after_500_characters() -> None:
    text = '{"a": [' + " " * 600
    assert _reason(text).endswith('"[truncated 107 chars]; line: 1, column: 7])')


def test_content_after_the_pattern_object_is_ignored_as_in_aws() -> None:
    assert_match('{"a": ["x"]} trailing', {"a": "x"})


def test_a_repeated_key_in_pattern_text_keeps_the_last_occurrence() -> None:
    text = (
        '{"detail": {"location": [{"prefix": "us-"}], "location": [{"anything-but": "us-east"}]}}'
    )
    assert_match(text, {"detail": {"location": "eu-central-1"}})
    assert_no_match(text, {"detail": {"location": "us-east"}})


def test_escapes_in_pattern_text_are_decoded() -> None:
    assert_match('{"a": ["\\\\", "\\u00e9", "\\ud83d\\ude80"]}', {"a": "\U0001f680"})
    assert_match('{"a": ["\\\\"]}', {"a": "\\"})
    assert_match('{"a": ["\\u00e9"]}', {"a": "é"})


def test_bytes_patterns_are_utf8_text() -> None:
    assert compile_pattern('{"a": ["é"]}'.encode()) == compile_pattern({"a": ["é"]})
    with pytest.raises(InvalidEventPattern):
        validate(b'{"a": ["\xff"]}')


def test_text_and_parsed_values_give_the_same_tokens() -> None:
    value: dict[str, Any] = {"a": [1, 2.5, "x", True, False, None, {"b": []}]}
    assert list(text_tokens(json.dumps(value))) == list(value_tokens(value))


def test_parsed_patterns_must_hold_only_json_values() -> None:
    with pytest.raises(TypeError):
        validate({"a": [{1, 2}]})
    with pytest.raises(TypeError):
        validate({1: ["x"]})
