"""Patterns given as JSON text: Jackson's syntax-error wording, repeated keys, escapes.

AWS parses patterns with Jackson while compiling them, so malformed JSON is reported
with Jackson's message and the first problem in document order wins. AWS adds where the
parser stood on a second line (``json_syntax_error`` and ``first_token_location``, from
the same scanner, so the location is always that of the error reported).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import compile_pattern, validate
from eventyard.patterns.tokens import (
    first_token_location,
    json_syntax_error,
    text_tokens,
    value_tokens,
)
from tests.conftest import conformance_file
from tests.patterns.helpers import assert_match, assert_no_match

VALUES = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
COMMENT = (
    "maybe a (non-standard) comment? (not recognized as one since Feature 'ALLOW_COMMENTS' "
    "not enabled for parser)"
)


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
            '{"a": [§]}',
            f"Unexpected character ('§' (code 167)): expected a valid value {VALUES}",
        ),
        (
            '{"a": [\u2603]}',
            "Unexpected character ('\u2603' (code 9731 / 0x2603)): expected a valid value "
            + VALUES,
        ),
    ],
)
def test_malformed_json_is_reported_in_jacksons_words(text: str, reason: str) -> None:
    assert _reason(text) == reason
    found = json_syntax_error(text)
    assert found is not None
    assert found[0] == reason  # the error AWS locates is the one the compiler reports


def test_source_in_a_location_is_truncated_after_500_characters() -> None:
    text = '{"a": [' + " " * 600
    assert _reason(text).endswith('"[truncated 107 chars]; line: 1, column: 7])')


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("{'a': 1}", "Unexpected character (''' (code 39)): was expecting double-quote", 2),
        ('{"a": closed}', "Unrecognized token 'closed': was expecting (JSON String", 13),
        ('{"a": }', "Unexpected character ('}' (code 125)): expected a valid value", 7),
        ('{"a": [1,}', "Unexpected character ('}' (code 125)): expected a value", 10),
        ('{"a": [1,]}', "Unexpected character (']' (code 93)): expected a valid value", 10),
        ('{"a": 1,}', "Unexpected character ('}' (code 125)): was expecting double-quote", 9),
        ('{"a" 1}', "Unexpected character ('1' (code 49)): was expecting a colon", 6),
        ('{"a": 1 "b": 2}', "Unexpected character ('\"' (code 34)): was expecting comma", 9),
        ("[1}", "Unexpected close marker '}': expected ']' (for Array starting at", 4),
        ("{", "Unexpected end-of-input: expected close marker for Object", 2),
        ('{"a": "x', "Unexpected end-of-input: was expecting closing quote", 9),
        ('{"a": ["x\\q"]}', "Unrecognized character escape 'q' (code 113)", 12),
        ('{"a": ["\\u12g4"]}', "Unexpected character ('g' (code 103)): expected a hex-digit", 13),
        ('{"a": ["x\ty"]}', "Illegal unquoted character ((CTRL-CHAR, code 9))", 11),
        ('{"a": [-x]}', "Unexpected character ('x' (code 120)) in numeric value", 10),
        ('{"a": [1.]}', "Unexpected character (']' (code 93)) in numeric value: Decimal", 11),
        ('{"a": [1.', "Unexpected end-of-input in a Number value", 11),
        ("01", "Invalid numeric value: Leading zeroes not allowed", 3),
        ("12x", "Unexpected character ('x' (code 120)): Expected space separating", 3),
        ('{"a": [/]}', "Unexpected character ('/' (code 47)): maybe a (non-standard) comment", 8),
    ],
)
def test_json_syntax_errors_are_located_where_jackson_stood(
    text: str, reason: str, column: int
) -> None:
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


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_cr_lf_and_crlf_each_end_a_line_in_reasons_and_locations(newline: str) -> None:
    text = "{" + newline + ' "a":' + newline + " [1,"
    found = json_syntax_error(text)
    assert found is not None
    reason, location = found
    assert reason.endswith("; line: 3, column: 2])")  # where the Array starts
    assert location.endswith("; line: 3, column: 5]")


def test_valid_json_has_no_syntax_error() -> None:
    assert json_syntax_error('{"a": [1, -2.5e3, true, null, "\\u00e9\\n"], "b": {}}') is None


def test_first_token_location_follows_the_first_token() -> None:
    assert first_token_location('["a"]').endswith("line: 1, column: 2]")
    # Jackson reads a string's content only when asked, so it stands after the quote.
    assert first_token_location('  "abc"').endswith("line: 1, column: 4]")
    # A root-level number is ended by one white-space character, which Jackson consumes.
    assert first_token_location("  42 ").endswith("line: 1, column: 6]")
    assert first_token_location("true").endswith("line: 1, column: 5]")
    assert first_token_location("\n\n null").endswith("line: 3, column: 6]")


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x0b", "\x1f"])
def test_a_control_character_between_tokens_is_illegal_white_space(control: str) -> None:
    text = '{"a":' + control + ' ["x"]}'
    assert json_syntax_error(text) == (
        f"Illegal character ((CTRL-CHAR, code {ord(control)})): only regular white space "
        "(\\r, \\n, \\t) is allowed between tokens",
        f'[Source: (String)"{text}"; line: 1, column: 7]',
    )


@pytest.mark.parametrize(
    "text",
    ['{"a": ["x"] /* c */}', '{"a" /* c */: ["x"]}', '{ // c\n"a": ["x"]}', '{"a": ["x" /]}'],
)
def test_a_slash_wherever_white_space_may_stand_is_a_refused_comment(text: str) -> None:
    assert _reason(text) == f"Unexpected character ('/' (code 47)): {COMMENT}"


@pytest.mark.parametrize(
    ("text", "token"),
    [
        # Java's isJavaIdentifierStart/Part cut the word: currency symbols and connector
        # punctuation start one; digits, combining marks, format characters and Java's
        # "ignorable" control characters continue one.
        ('{"a": [€]}', "€"),
        ('{"a": [$x]}', "$x"),
        ('{"a": [\u203fx]}', "\u203fx"),
        ('{"a": [tru\u0301e]}', "tru\u0301e"),
        ('{"a": [true\u200b]}', "true\u200b"),
        ('{"a": [nul\x01l]}', "nul\x01l"),
        ('{"a": [null\x7f]}', "null\x7f"),
        ('{"a": [fals\x85e]}', "fals\x85e"),
        ('{"a": [x\u0661]}', "x\u0661"),
        # Java sees a character beyond the BMP as two surrogates, neither one a letter.
        ('{"a": [x\U0001d400]}', "x"),
    ],
)
def test_an_unquoted_word_is_cut_where_java_identifiers_end(text: str, token: str) -> None:
    assert _reason(text) == f"Unrecognized token '{token}': was expecting {VALUES}"


def test_a_character_beyond_the_bmp_does_not_start_a_word() -> None:
    assert _reason('{"a": [\U0001d400]}').startswith(
        "Unexpected character ('\U0001d400' (code 119808 / 0x1d400)): expected a valid value"
    )


def test_an_unrecognized_token_is_quoted_up_to_256_characters() -> None:
    assert _reason('{"a": [' + "x" * 255 + "]}") == (
        f"Unrecognized token '{'x' * 255}': was expecting {VALUES}"
    )
    found = json_syntax_error('{"a": [' + "x" * 300 + "]}")
    assert found is not None
    assert found[0] == f"Unrecognized token '{'x' * 256}...': was expecting {VALUES}"
    assert found[1].endswith("line: 1, column: 264]")


@pytest.mark.parametrize("tail", [" trailing", " /* c */", "\x01", "]"])
def test_content_after_the_pattern_object_is_not_read_as_in_aws(tail: str) -> None:
    assert_match('{"a": ["x"]}' + tail, {"a": "x"})
    assert json_syntax_error('{"a": ["x"]}' + tail) is None


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
