"""JSON token streams for the pattern compiler, with Jackson's wording for syntax errors.

event-ruler compiles a pattern while it pulls tokens from Jackson's streaming parser, so
the first problem met in document order is the one reported, whether it is a JSON syntax
error or a pattern error, and a repeated key is seen twice (the later one wins). We keep
that order by feeding the compiler the same kind of pull stream: :func:`text_tokens` reads
JSON text lazily and raises :class:`JsonSyntaxError` carrying Jackson's message when it
meets malformed input; :func:`value_tokens` walks an already parsed value.

This is eventyard's one reader of JSON text in Jackson's manner. AWS follows a pattern
error with where Jackson's parser stood (`` at [Source: (String)"…"; line: L, column:
C]``); the scanner keeps that position as it reads, so :func:`json_syntax_error` and
:func:`first_token_location` give the API layer the location of the very error the
compiler reported.

Messages follow Jackson 2.x (``ReaderBasedJsonParser``) for the common mistakes:
unrecognized tokens (a word is cut where Java's identifier characters end), unexpected
characters, illegal white space and comments, unterminated strings and containers, bad
escapes and malformed numbers. Like event-ruler, reading stops at the end of the first
root value; anything after it is not read.
"""

from __future__ import annotations

import math
import string
import unicodedata
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
    "first_token_location",
    "json_syntax_error",
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
_COMMENT = (
    "maybe a (non-standard) comment? (not recognized as one since Feature "
    "'ALLOW_COMMENTS' not enabled for parser)"
)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = "0123456789abcdefABCDEF"
_SOURCE_LIMIT = 500
_TOKEN_LIMIT = 256
_KEYWORDS = {"true": VALUE_TRUE, "false": VALUE_FALSE, "null": VALUE_NULL}

# Java's Character.isJavaIdentifierStart/Part, which Jackson uses to cut an unquoted word
# out of the text; Java sees UTF-16 units, so a character beyond the BMP (a surrogate
# there) is neither.
_ASCII_START = frozenset(string.ascii_letters + "_$")
_ASCII_PART = _ASCII_START | frozenset(
    string.digits + "".join(map(chr, [*range(9), *range(14, 28), 127]))
)
_START_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nl", "Sc", "Pc"})
_PART_CATEGORIES = _START_CATEGORIES | {"Nd", "Mc", "Mn", "Cf"}


class JsonSyntaxError(Exception):
    """Malformed JSON, in Jackson's words.

    Attributes:
        reason: Jackson's message (the text AWS prints after ``Reason:``).
        location: where Jackson's parser stood, ``[Source: (String)"…"; line: L,
            column: C]`` (the line AWS appends after `` at ``).
    """

    def __init__(self, reason: str, location: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location


def _char_desc(char: str) -> str:
    code = ord(char)
    if code < 32 or 127 <= code <= 159:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"


def _identifier_start(char: str) -> bool:
    if char < "\x80":
        return char in _ASCII_START
    return char <= "\uffff" and unicodedata.category(char) in _START_CATEGORIES


def _identifier_part(char: str) -> bool:
    if char < "\x80":
        return char in _ASCII_PART
    if char <= "\x9f":
        return True  # C1 controls are "identifier-ignorable" in Java, hence parts
    return char <= "\uffff" and unicodedata.category(char) in _PART_CATEGORIES


class _Scanner:
    """A pull parser over JSON text that yields tokens in document order.

    It keeps Jackson's position as it reads (1-based line; ``\\n``, ``\\r`` and ``\\r\\n``
    end a line, as between tokens in Jackson) so that each error carries the location
    Jackson reports with it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.row = 1
        self.row_start = 0
        # (is_object, index of its opening char, the row and row start there)
        self.stack: list[tuple[bool, int, int, int]] = []

    # -- errors ------------------------------------------------------------------------
    def location(self, pos: int, row: int | None = None, row_start: int | None = None) -> str:
        """Jackson's ``[Source: …; line: L, column: C]`` for read position ``pos``."""
        text = self.text
        if len(text) > _SOURCE_LIMIT:
            source = f'"{text[:_SOURCE_LIMIT]}"[truncated {len(text) - _SOURCE_LIMIT} chars]'
        else:
            source = f'"{text}"'
        row = self.row if row is None else row
        column = pos - (self.row_start if row_start is None else row_start) + 1
        return f"[Source: (String){source}; line: {row}, column: {column}]"

    def _fail(self, reason: str, pos: int | None = None) -> JsonSyntaxError:
        return JsonSyntaxError(reason, self.location(self.pos if pos is None else pos))

    def _unexpected(self, index: int, message: str) -> JsonSyntaxError:
        # Jackson reports an unexpected character at the character itself, one before
        # its read position (the other errors are reported at the read position).
        return self._fail(
            f"Unexpected character ({_char_desc(self.text[index])}): {message}", index
        )

    def _eof_in_container(self) -> JsonSyntaxError:
        is_object, start, row, row_start = self.stack[-1]
        kind = "Object" if is_object else "Array"
        return self._fail(
            f"Unexpected end-of-input: expected close marker for {kind} "
            f"(start marker at {self.location(start, row, row_start)})"
        )

    def _mismatched(self, char: str) -> JsonSyntaxError:
        is_object, start, row, row_start = self.stack[-1]
        expected, kind = ("}", "Object") if is_object else ("]", "Array")
        return self._fail(
            f"Unexpected close marker '{char}': expected '{expected}' "
            f"(for {kind} starting at {self.location(start, row, row_start)})"
        )

    def _invalid_token(self, start: int) -> JsonSyntaxError:
        text = self.text
        end = start + 1
        while end < len(text) and end - start < _TOKEN_LIMIT and _identifier_part(text[end]):
            end += 1
        token = text[start:end] + ("..." if end - start >= _TOKEN_LIMIT else "")
        return self._fail(f"Unrecognized token '{token}': was expecting {_VALID_VALUES}", end)

    # -- reading -----------------------------------------------------------------------
    def _next_char(self) -> str:
        """The next character after white space ('' at the end), consumed.

        Raises:
            JsonSyntaxError: a control character or a ``/`` (a comment, which Jackson
                refuses) stands where only white space may.
        """
        text, pos = self.text, self.pos
        end = len(text)
        while pos < end:
            char = text[pos]
            pos += 1
            if char > " ":
                if char == "/":
                    raise self._unexpected(pos - 1, _COMMENT)
                self.pos = pos
                return char
            if char in "\n\r":
                if char == "\r" and pos < end and text[pos] == "\n":
                    pos += 1
                self.row += 1
                self.row_start = pos
            elif char not in " \t":
                raise self._fail(
                    f"Illegal character ({_char_desc(char)}): only regular white space "
                    "(\\r, \\n, \\t) is allowed between tokens",
                    pos,
                )
        self.pos = pos
        return ""

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
                    raise self._fail(
                        "Unexpected end-of-input: was expecting closing '\"' for name", pos
                    )
                raise self._fail(
                    "Unexpected end-of-input: was expecting closing quote for a string value", pos
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
                    raise self._fail("Unexpected end-of-input in character escape sequence", pos)
                escape = text[pos]
                pos += 1
                if escape == "u":
                    code = 0
                    for _ in range(4):
                        if pos >= len(text):
                            raise self._fail(
                                "Unexpected end-of-input in character escape sequence", pos
                            )
                        digit = text[pos]
                        if digit not in _HEX:
                            raise self._unexpected(
                                pos, "expected a hex-digit for character escape sequence"
                            )
                        pos += 1
                        code = code * 16 + int(digit, 16)
                    parts.append(chr(code))
                elif escape in _ESCAPES:
                    parts.append(_ESCAPES[escape])
                else:
                    raise self._fail(f"Unrecognized character escape {_char_desc(escape)}", pos)
            elif char < " ":
                where = "name" if name else "string value"
                raise self._fail(
                    f"Illegal unquoted character ({_char_desc(char)}): has to be escaped "
                    f"using backslash to be included in {where}",
                    pos,
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
                raise self._fail("Unexpected end-of-input in a Number value")
            if not "0" <= text[self.pos] <= "9":
                raise self._fail(
                    f"Unexpected character ({_char_desc(text[self.pos])}) in numeric value: "
                    "expected digit (0-9) to follow minus sign, for valid numeric value",
                    self.pos + 1,
                )
        first = self.pos
        self._digits()
        if text[first] == "0" and self.pos - first > 1:
            raise self._fail("Invalid numeric value: Leading zeroes not allowed", first + 2)
        kind = VALUE_INT
        for marker, what in ((".", "Decimal point"), ("eE", "Exponent indicator")):
            if self.pos < len(text) and text[self.pos] in marker:
                kind = VALUE_FLOAT
                self.pos += 1
                if marker == "eE" and self.pos < len(text) and text[self.pos] in "+-":
                    self.pos += 1
                if self._digits() == 0:
                    if self.pos >= len(text):
                        # located one past the end, as eventyard always has (no AWS
                        # recording shows this case)
                        raise self._fail("Unexpected end-of-input in a Number value", self.pos + 1)
                    raise self._fail(
                        f"Unexpected character ({_char_desc(text[self.pos])}) in numeric value: "
                        f"{what} not followed by a digit",
                        self.pos + 1,
                    )
        if not self.stack and self.pos < len(text) and text[self.pos] not in " \t\n\r":
            raise self._unexpected(self.pos, "Expected space separating root-level values")
        return kind, text[start : self.pos]

    def _value(self, char: str) -> Token:
        """The scalar token starting with ``char``, the character just read."""
        text = self.text
        start = self.pos - 1
        if char == '"':
            return VALUE_STRING, self._string(name=False)
        if char == "-" or "0" <= char <= "9":
            return self._number(start)
        if char in "tfn":
            end = start
            while end < len(text) and _identifier_part(text[end]):
                end += 1
            kind = _KEYWORDS.get(text[start:end])
            if kind is None:
                raise self._invalid_token(start)
            self.pos = end
            return kind, text[start:end]
        if char in "NI" and text.startswith(("NaN", "Infinity"), start):
            word = "NaN" if char == "N" else "Infinity"
            end = start + len(word)
            if not (end < len(text) and _identifier_part(text[end])):
                raise self._fail(
                    f"Non-standard token '{word}': enable "
                    "`JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow",
                    end,
                )
        if char == "+":
            raise self._fail(
                "Unexpected character ('+' (code 43)) in numeric value: JSON spec does not "
                "allow numbers to have plus signs: enable "
                "`JsonReadFeature.ALLOW_LEADING_PLUS_SIGN_FOR_NUMBERS` to allow",
                start,
            )
        if _identifier_start(char):
            raise self._invalid_token(start)
        raise self._unexpected(start, f"expected a valid value {_VALID_VALUES}")

    def tokens(self) -> Iterator[Token]:
        """The tokens up to the end of the first root value, read lazily.

        Raises:
            JsonSyntaxError: at the first malformed spot, when the stream gets there.
        """
        stack = self.stack
        expect = "value"  # value | first-field | field | first-element | after
        while True:
            if expect == "after" and not stack:
                return  # Jackson stops at the end of the root value: the rest is not read
            char = self._next_char()
            if expect == "after":
                is_object = stack[-1][0]
                if char == "":
                    raise self._eof_in_container()
                if char == ",":
                    expect = "field" if is_object else "value"
                    continue
                if char == ("}" if is_object else "]"):
                    stack.pop()
                    yield (END_OBJECT, "}") if is_object else (END_ARRAY, "]")
                    continue
                if char in "]}":
                    raise self._mismatched(char)
                entries = "Object" if is_object else "Array"
                raise self._unexpected(
                    self.pos - 1, f"was expecting comma to separate {entries} entries"
                )
            if expect in ("first-field", "field"):
                if char == "":
                    raise self._eof_in_container()
                if char == "}" and expect == "first-field":
                    stack.pop()
                    yield END_OBJECT, "}"
                    expect = "after"
                    continue
                if char == "]" and expect == "first-field":
                    raise self._mismatched(char)
                if char != '"':
                    raise self._unexpected(
                        self.pos - 1, "was expecting double-quote to start field name"
                    )
                name = self._string(name=True)
                colon = self._next_char()
                if colon == "":
                    raise self._fail("Unexpected end-of-input within/between Object entries")
                if colon != ":":
                    raise self._unexpected(
                        self.pos - 1, "was expecting a colon to separate field name and value"
                    )
                yield FIELD_NAME, name
                expect = "value"
                continue
            if char == "":
                if not stack:
                    yield EOF, "null"
                    return
                raise self._eof_in_container()
            if expect == "first-element" and char in "]}":
                if char == "}":
                    raise self._mismatched(char)
                stack.pop()
                yield END_ARRAY, "]"
                expect = "after"
                continue
            if char == "{":
                stack.append((True, self.pos - 1, self.row, self.row_start))
                yield START_OBJECT, "{"
                expect = "first-field"
                continue
            if char == "[":
                stack.append((False, self.pos - 1, self.row, self.row_start))
                yield START_ARRAY, "["
                expect = "first-element"
                continue
            if char == "}" and stack and not stack[-1][0]:
                raise self._unexpected(self.pos - 1, "expected a value")
            yield self._value(char)
            expect = "after"

    def first_token_end(self) -> int:
        """Jackson's read position once it has read the first token (a valid one)."""
        char = self._next_char()
        if char in ("", "{", "[", '"'):
            return self.pos  # Jackson reads a string's content only when asked for it
        kind, _ = self._value(char)
        if kind in (VALUE_INT, VALUE_FLOAT) and self.pos < len(self.text):
            return self.pos + 1  # the white space ending a root-level number is consumed
        return self.pos


def text_tokens(text: str) -> Iterator[Token]:
    """The tokens of JSON ``text``, read lazily; malformed input raises JsonSyntaxError."""
    return _Scanner(text).tokens()


def json_syntax_error(text: str) -> tuple[str, str] | None:
    """Jackson's reason and location for the first JSON syntax error of ``text``.

    AWS reports an invalid-JSON pattern with Jackson's reason, then ``\\n at `` and the
    location (``[Source: (String)"<pattern>"; line: L, column: C]``). Reading stops at
    the end of the first root value, as the pattern compiler's does.

    Returns:
        ``(reason, location)``; None if the text up to there is well formed.
    """
    try:
        for _ in text_tokens(text):
            pass
    except JsonSyntaxError as error:
        return error.reason, error.location
    return None


def first_token_location(text: str) -> str:
    """Jackson's location right after the first token of ``text``, which must be valid.

    AWS reports ``Filter is not an object`` there, having read a first token that is not
    ``{``.
    """
    scanner = _Scanner(text)
    return scanner.location(scanner.first_token_end())


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
