"""JSON token streams for the pattern compiler, with Jackson's wording for syntax errors.

event-ruler compiles a pattern while it pulls tokens from Jackson's streaming parser, so
the first problem met in document order is the one reported, whether it is a JSON syntax
error or a pattern error, and a repeated key is seen twice (the later one wins). We keep
that order by feeding the compiler the same kind of pull stream: :func:`text_tokens` reads
JSON text lazily and raises :class:`JsonSyntaxError` carrying Jackson's message when it
meets malformed input; :func:`value_tokens` walks an already parsed value.

Messages follow Jackson 2.x (``ReaderBasedJsonParser``) for the common mistakes:
unrecognized tokens, unexpected characters, unterminated strings and containers, bad
escapes and malformed numbers. Like event-ruler, reading stops at the end of the first
root value; anything after it is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

__all__ = [
    "END_ARRAY",
    "END_OBJECT",
    "EOF",
    "FIELD_NAME",
    "START_ARRAY",
    "START_OBJECT",
    "VALUE_FALSE",
    "VALUE_FLOAT",
    "VALUE_INT",
    "VALUE_NULL",
    "VALUE_STRING",
    "VALUE_TRUE",
    "JsonSyntaxError",
    "Token",
    "TokenReader",
    "text_tokens",
    "value_tokens",
]

EOF = 0
START_OBJECT = 1
END_OBJECT = 2
START_ARRAY = 3
END_ARRAY = 4
FIELD_NAME = 5
VALUE_STRING = 6
VALUE_INT = 7
VALUE_FLOAT = 8
VALUE_TRUE = 9
VALUE_FALSE = 10
VALUE_NULL = 11

Token = tuple[int, str]
"""A token kind and its text (Jackson's ``getText()``: the name, string or number text)."""

_VALID_VALUES = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
_WHITESPACE = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = "0123456789abcdefABCDEF"
_SOURCE_LIMIT = 500


class JsonSyntaxError(Exception):
    """Malformed JSON; ``reason`` is Jackson's message (the text after ``Reason:``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _char_desc(char: str) -> str:
    code = ord(char)
    if code < 32 or 127 <= code <= 159:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"


def _identifier_part(char: str) -> bool:
    return char == "$" or ("a" + char).isidentifier()


class _Scanner:
    """A pull parser over JSON text that yields tokens in document order."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.stack: list[tuple[bool, int]] = []  # (is_object, index of its opening char)

    # -- errors ------------------------------------------------------------------------
    def _source(self) -> str:
        text = self.text
        if len(text) > _SOURCE_LIMIT:
            return f'(String)"{text[:_SOURCE_LIMIT]}"[truncated {len(text) - _SOURCE_LIMIT} chars]'
        return f'(String)"{text}"'

    def _location(self, index: int) -> str:
        line = self.text.count("\n", 0, index) + 1
        column = index - (self.text.rfind("\n", 0, index) + 1) + 1
        return f"[Source: {self._source()}; line: {line}, column: {column}]"

    def _unexpected(self, char: str, message: str) -> JsonSyntaxError:
        return JsonSyntaxError(f"Unexpected character ({_char_desc(char)}): {message}")

    def _eof_in_container(self) -> JsonSyntaxError:
        is_object, start = self.stack[-1]
        kind = "Object" if is_object else "Array"
        return JsonSyntaxError(
            f"Unexpected end-of-input: expected close marker for {kind} "
            f"(start marker at {self._location(start)})"
        )

    def _mismatched(self, char: str) -> JsonSyntaxError:
        is_object, start = self.stack[-1]
        expected, kind = ("}", "Object") if is_object else ("]", "Array")
        return JsonSyntaxError(
            f"Unexpected close marker '{char}': expected '{expected}' "
            f"(for {kind} starting at {self._location(start)})"
        )

    def _invalid_token(self, start: int) -> JsonSyntaxError:
        end = start + 1
        while end < len(self.text) and end - start < 256 and _identifier_part(self.text[end]):
            end += 1
        token = self.text[start:end]
        return JsonSyntaxError(f"Unrecognized token '{token}': was expecting {_VALID_VALUES}")

    # -- reading -----------------------------------------------------------------------
    def _next_char(self) -> str:
        """The next non-blank character ('' at the end), consumed."""
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            self.pos = pos
            return ""
        self.pos = pos + 1
        return text[pos]

    def _string(self, *, name: bool) -> str:
        text = self.text
        start = self.pos
        end = text.find('"', start)
        if end >= 0 and "\\" not in text[start:end] and all(c >= " " for c in text[start:end]):
            self.pos = end + 1
            return text[start:end]
        parts: list[str] = []
        pos = start
        while True:
            if pos >= len(text):
                if name:
                    raise JsonSyntaxError(
                        "Unexpected end-of-input: was expecting closing '\"' for name"
                    )
                raise JsonSyntaxError(
                    "Unexpected end-of-input: was expecting closing quote for a string value"
                )
            char = text[pos]
            pos += 1
            if char == '"':
                self.pos = pos
                joined = "".join(parts)
                if any("\ud800" <= c <= "\udfff" for c in joined):
                    # two \u escapes forming a surrogate pair make one character, as in Java
                    units = joined.encode("utf-16-le", "surrogatepass")
                    joined = units.decode("utf-16-le", "surrogatepass")
                return joined
            if char == "\\":
                if pos >= len(text):
                    raise JsonSyntaxError("Unexpected end-of-input in character escape sequence")
                escape = text[pos]
                pos += 1
                if escape == "u":
                    code = 0
                    for _ in range(4):
                        if pos >= len(text):
                            raise JsonSyntaxError(
                                "Unexpected end-of-input in character escape sequence"
                            )
                        digit = text[pos]
                        pos += 1
                        if digit not in _HEX:
                            raise self._unexpected(
                                digit, "expected a hex-digit for character escape sequence"
                            )
                        code = code * 16 + int(digit, 16)
                    parts.append(chr(code))
                elif escape in _ESCAPES:
                    parts.append(_ESCAPES[escape])
                else:
                    raise JsonSyntaxError(f"Unrecognized character escape {_char_desc(escape)}")
            elif char < " ":
                where = "name" if name else "string value"
                raise JsonSyntaxError(
                    f"Illegal unquoted character ({_char_desc(char)}): has to be escaped "
                    f"using backslash to be included in {where}"
                )
            else:
                parts.append(char)

    def _digits(self) -> int:
        text, pos = self.text, self.pos
        while pos < len(text) and "0" <= text[pos] <= "9":
            pos += 1
        count = pos - self.pos
        self.pos = pos
        return count

    def _number(self, start: int) -> Token:
        text = self.text
        self.pos = start
        if text[start] == "-":
            self.pos += 1
            if self.pos >= len(text):
                raise JsonSyntaxError("Unexpected end-of-input in a Number value")
            if not "0" <= text[self.pos] <= "9":
                raise JsonSyntaxError(
                    f"Unexpected character ({_char_desc(text[self.pos])}) in numeric value: "
                    "expected digit (0-9) to follow minus sign, for valid numeric value"
                )
        first = self.pos
        self._digits()
        if text[first] == "0" and self.pos - first > 1:
            raise JsonSyntaxError("Invalid numeric value: Leading zeroes not allowed")
        kind = VALUE_INT
        for marker, what in ((".", "Decimal point"), ("eE", "Exponent indicator")):
            if self.pos < len(text) and text[self.pos] in marker:
                kind = VALUE_FLOAT
                self.pos += 1
                if marker == "eE" and self.pos < len(text) and text[self.pos] in "+-":
                    self.pos += 1
                if self._digits() == 0:
                    if self.pos >= len(text):
                        raise JsonSyntaxError("Unexpected end-of-input in a Number value")
                    raise JsonSyntaxError(
                        f"Unexpected character ({_char_desc(text[self.pos])}) in numeric value: "
                        f"{what} not followed by a digit"
                    )
        if not self.stack and self.pos < len(text) and text[self.pos] not in _WHITESPACE:
            raise self._unexpected(text[self.pos], "Expected space separating root-level values")
        return kind, text[start : self.pos]

    def _value(self, char: str) -> Token | None:
        """The scalar token starting with ``char``; None for ``{``/``[`` (caller pushes)."""
        start = self.pos - 1
        if char == '"':
            return VALUE_STRING, self._string(name=False)
        if char == "-" or "0" <= char <= "9":
            return self._number(start)
        if char in "tfn":
            end = start
            while end < len(self.text) and _identifier_part(self.text[end]):
                end += 1
            word = self.text[start:end]
            kinds = {"true": VALUE_TRUE, "false": VALUE_FALSE, "null": VALUE_NULL}
            if word in kinds:
                self.pos = end
                return kinds[word], word
            raise self._invalid_token(start)
        if char in "NI" and self.text.startswith(("NaN", "Infinity"), start):
            word = "NaN" if char == "N" else "Infinity"
            if not _identifier_part(self.text[start + len(word) : start + len(word) + 1] or " "):
                raise JsonSyntaxError(
                    f"Non-standard token '{word}': enable "
                    "`JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
                )
        if char == "+":
            raise JsonSyntaxError(
                "Unexpected character ('+' (code 43)) in numeric value: JSON spec does not "
                "allow numbers to have plus signs: enable "
                "`JsonReadFeature.ALLOW_LEADING_PLUS_SIGN_FOR_NUMBERS` to allow"
            )
        if char == "$" or char.isidentifier():
            raise self._invalid_token(start)
        if char == "/":
            raise self._unexpected(
                char,
                "maybe a (non-standard) comment? (not recognized as one since Feature "
                "'ALLOW_COMMENTS' not enabled for parser)",
            )
        raise self._unexpected(char, f"expected a valid value {_VALID_VALUES}")

    def tokens(self) -> Iterator[Token]:
        expect = "value"  # value | first-field | field | first-element | after
        while True:
            char = self._next_char()
            if expect == "after":
                if not self.stack:
                    return
                is_object = self.stack[-1][0]
                if char == "":
                    raise self._eof_in_container()
                if char == ",":
                    expect = "field" if is_object else "value"
                    continue
                if char == ("}" if is_object else "]"):
                    self.stack.pop()
                    yield (END_OBJECT, "}") if is_object else (END_ARRAY, "]")
                    continue
                if char in "]}":
                    raise self._mismatched(char)
                entries = "Object" if is_object else "Array"
                raise self._unexpected(char, f"was expecting comma to separate {entries} entries")
            if expect in ("first-field", "field"):
                if char == "":
                    raise self._eof_in_container()
                if char == "}" and expect == "first-field":
                    self.stack.pop()
                    yield END_OBJECT, "}"
                    expect = "after"
                    continue
                if char == "]" and expect == "first-field":
                    raise self._mismatched(char)
                if char != '"':
                    raise self._unexpected(char, "was expecting double-quote to start field name")
                name = self._string(name=True)
                colon = self._next_char()
                if colon == "":
                    raise JsonSyntaxError("Unexpected end-of-input within/between Object entries")
                if colon != ":":
                    raise self._unexpected(
                        colon, "was expecting a colon to separate field name and value"
                    )
                yield FIELD_NAME, name
                expect = "value"
                continue
            if char == "":
                if not self.stack:
                    yield EOF, "null"
                    return
                raise self._eof_in_container()
            if expect == "first-element" and char in "]}":
                if char == "}":
                    raise self._mismatched(char)
                self.stack.pop()
                yield END_ARRAY, "]"
                expect = "after"
                continue
            if char == "}" and self.stack and not self.stack[-1][0]:
                raise self._unexpected(char, "expected a value")
            if char == "{":
                self.stack.append((True, self.pos - 1))
                yield START_OBJECT, "{"
                expect = "first-field"
            elif char == "[":
                self.stack.append((False, self.pos - 1))
                yield START_ARRAY, "["
                expect = "first-element"
            else:
                token = self._value(char)
                assert token is not None
                yield token
                expect = "after"


def text_tokens(text: str) -> Iterator[Token]:
    """The tokens of JSON ``text``, read lazily; malformed input raises JsonSyntaxError."""
    return _Scanner(text).tokens()


def _scalar_token(value: object) -> Token:
    if isinstance(value, str):
        return VALUE_STRING, value
    if value is True:
        return VALUE_TRUE, "true"
    if value is False:
        return VALUE_FALSE, "false"
    if value is None:
        return VALUE_NULL, "null"
    if isinstance(value, int):
        return VALUE_INT, str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return VALUE_FLOAT, "NaN"
        if math.isinf(value):
            return VALUE_FLOAT, "Infinity" if value > 0 else "-Infinity"
        return VALUE_FLOAT, repr(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def value_tokens(value: object) -> Iterator[Token]:
    """The tokens Jackson would produce for the parsed JSON ``value`` (any depth).

    Raises:
        TypeError: ``value`` holds something that is not JSON (a set, a non-string key...).
    """
    stack: list[Iterator[Any]] = [iter((value,))]
    ends: list[Token] = []
    while stack:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
            if ends:
                yield ends.pop()
            continue
        if isinstance(item, tuple) and len(item) == 3 and item[0] is _KEY:
            _, key, item = item
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            yield FIELD_NAME, key
        if isinstance(item, dict):
            yield START_OBJECT, "{"
            stack.append((_KEY, k, v) for k, v in item.items())
            ends.append((END_OBJECT, "}"))
        elif isinstance(item, list | tuple):
            yield START_ARRAY, "["
            stack.append(iter(item))
            ends.append((END_ARRAY, "]"))
        else:
            yield _scalar_token(item)


_DONE = object()
_KEY = object()


class TokenReader:
    """Pull interface over a token iterator, shaped like Jackson's ``JsonParser``.

    ``next()`` advances and returns the kind; ``text`` is the current token's text
    (``"null"`` at the end of input, as Java prints a null ``getText()``).
    """

    __slots__ = ("_tokens", "kind", "text")

    def __init__(self, tokens: Iterator[Token]) -> None:
        self._tokens = tokens
        self.kind = EOF
        self.text = "null"

    def next(self) -> int:
        self.kind, self.text = next(self._tokens, (EOF, "null"))
        return self.kind
