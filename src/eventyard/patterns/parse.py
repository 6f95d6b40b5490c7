"""Pattern validation and compilation, with AWS-identical error messages.

:func:`compile_pattern` turns an event pattern (JSON text or an already parsed value) into
a :class:`CompiledPattern`: a tuple of *branches* (one per ``$or`` combination), each a
tuple of :class:`Field` records (a flattened path, its ORed operators, and whether
``{"exists": false}`` is among them). Invalid patterns raise
:class:`~eventyard.errors.InvalidEventPattern` whose ``message`` is the first line AWS
returns, ``Event pattern is not valid. Reason: <reason>``.

The compiler walks the pattern as a token stream in document order, exactly as
event-ruler's ``JsonRuleCompiler`` does over Jackson, so that when a pattern has several
problems the one AWS reports is the one we report, and so that repeated keys behave as in
AWS: a later value for the same flattened path replaces the earlier one in every branch
(``"a": [...]`` after an ``$or`` branch that set ``a`` overrides it there too).

Limits not enforced by event-ruler itself and for which AWS's wording was never recorded
use messages of our own (see ``docs/patterns.md``): the pattern length (2048 characters
by default, configurable up to 4096) and the number of ``$or`` combinations (1000).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.errors import InvalidEventPattern
from eventyard.patterns import tokens as t
from eventyard.patterns.operators import (
    AnythingBut,
    AnythingButIgnoreCase,
    AnythingButPrefix,
    AnythingButSuffix,
    AnythingButWildcard,
    BoolEquals,
    Cidr,
    Equals,
    EqualsIgnoreCase,
    Exists,
    IpEquals,
    NullEquals,
    NumberEquals,
    NumericRange,
    Operator,
    Prefix,
    PrefixIgnoreCase,
    Suffix,
    SuffixIgnoreCase,
    Wildcard,
    fold,
    looks_like_ip,
    parse_ip,
)
from eventyard.patterns.wildcard import COMPLEXITY_LIMIT, TOO_COMPLEX, compile_wildcard, complexity

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_LENGTH",
    "MAX_OR_COMBINATIONS",
    "CompiledPattern",
    "Field",
    "compile_pattern",
    "path_order",
]

DEFAULT_MAX_LENGTH = 2048
"""AWS's default quota for the length of an event pattern."""

MAX_LENGTH = 4096
"""The most AWS accepts for an event pattern, whatever the quota."""

MAX_OR_COMBINATIONS = 1000
"""The most branches ``$or`` may expand a pattern into."""

_RESERVED_IN_OR = frozenset(
    {
        "exactly",
        "equals-ignore-case",
        "prefix",
        "suffix",
        "anything-but",
        "exists",
        "wildcard",
        "numeric",
        "cidr",
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "regex",
        "not-wildcard",
        "not-equals-ignore-case",
        "date-after",
        "date-on-or-after",
        "date-before",
        "date-on-or-before",
        "in-date-range",
        "ip-address-in-range",
        "ip-address-not-in-range",
    }
)
_NUMBERS = (t.VALUE_INT, t.VALUE_FLOAT)


def path_order(path: str) -> bytes:
    """Sort key giving event-ruler's field order (Java ``String`` order: UTF-16 units)."""
    return path.encode("utf-16-be", "surrogatepass")


@dataclass(slots=True, frozen=True)
class Field:
    """One flattened path of a branch and the operators ORed on it.

    Attributes:
        path: the dot-joined path (``detail.state``).
        operators: the operators, without duplicates, in pattern order.
        absent: whether ``{"exists": false}`` is in the list (the field then also holds
            when the path has no leaf value).
    """

    path: str
    operators: tuple[Operator, ...]
    absent: bool


@dataclass(slots=True, frozen=True)
class CompiledPattern:
    """A validated pattern: it matches when any branch does.

    Attributes:
        branches: each a tuple of fields in event-ruler's order (by path).
        has_wildcard: whether any field uses ``wildcard`` (AWS caps such rules per bus).
    """

    branches: tuple[tuple[Field, ...], ...]
    has_wildcard: bool


class _Values:
    __slots__ = ("absent", "operators")

    def __init__(self) -> None:
        self.operators: list[Operator] = []
        self.absent = False


_Rules = list[dict[str, _Values]]


def _fail(reason: str) -> InvalidEventPattern:
    return InvalidEventPattern.because(reason)


def _double(text: str) -> float:
    """A pattern number as a double; unrepresentable ones fail as in event-ruler."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _fail(f"Cannot compare number : {text}")
    return number


def _literal_double(text: str) -> float:
    """A number literal as a double (never fails: an infinity then matches by text)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _cidr(text: str) -> Cidr:
    """event-ruler's ``CIDR.cidr``: its checks, in its order, with its messages."""
    slashed = text.split("/")
    while len(slashed) > 1 and slashed[-1] == "":
        slashed.pop()  # Java's String.split drops trailing empty strings
    if len(slashed) != 2:
        raise _fail("Malformed CIDR, one '/' required")
    bits_text = slashed[1]
    digits = bits_text[1:] if bits_text[:1] in ("+", "-") else bits_text
    if not digits.isascii() or not digits.isdigit() or not -(2**31) <= int(bits_text) < 2**31:
        raise _fail("Malformed CIDR, mask bits must be an integer")
    bits = int(bits_text)
    if bits < 0:
        raise _fail("Malformed CIDR, mask bits must not be negative")
    address = slashed[0]
    parsed = parse_ip(address)
    if parsed is None:
        if looks_like_ip(address):
            raise _fail(f"Invalid IP address: {address}")
        raise _fail(f"Nonstandard IP address: {address}")
    version, value = parsed
    width = 32 if version == 4 else 128
    if bits > width - 1:
        raise _fail(f"IPv{version} mask bits must be < {width}")
    return Cidr(version, value, value | ((1 << (width - bits)) - 1))


class _Compiler:
    """A port of event-ruler's ``JsonRuleCompiler`` over a :class:`TokenReader`."""

    def __init__(self, reader: t.TokenReader) -> None:
        self.p = reader
        self.path: list[str] = []

    def _name(self, step: str) -> str:
        return ".".join([*self.path, step])

    def compile(self) -> _Rules:
        rules: _Rules = []
        if self.p.next() != t.START_OBJECT:
            raise _fail("Filter is not an object")
        self._object(rules, in_or=False)
        return rules

    def _object(self, rules: _Rules, *, in_or: bool) -> None:
        present = False
        while self.p.next() != t.END_OBJECT:
            present = True
            step = self.p.text
            if step == "$or":
                self._or(rules)
                continue
            if in_or and step in _RESERVED_IN_OR:
                raise _fail(f"{step} is Ruler reserved fieldName which cannot be used inside $or.")
            kind = self.p.next()
            if kind == t.START_OBJECT:
                self.path.append(step)
                self._object(rules, in_or=in_or)
                self.path.pop()
            elif kind == t.START_ARRAY:
                self._write(rules, self._name(step))
            else:
                raise _fail(f'"{step}" must be an object or an array')
        if not present:
            raise _fail("Empty objects are not allowed")

    def _or(self, rules: _Rules) -> None:
        current = [dict(rule) for rule in rules]
        rules.clear()
        if self.p.next() != t.START_ARRAY:
            raise _fail("It must be an Array followed with $or.")
        count = 0
        while (kind := self.p.next()) != t.END_ARRAY:
            count += 1
            if kind != t.START_OBJECT:
                raise _fail("Only JSON object is allowed in array of $or relationship.")
            forked = [dict(rule) for rule in current] or [{}]
            self._object(forked, in_or=True)
            rules.extend(forked)
            if len(rules) > MAX_OR_COMBINATIONS:
                raise _fail(f"Event pattern has more than {MAX_OR_COMBINATIONS} $or combinations")
        if count < 2:
            raise _fail("There must have at least 2 Objects in $or relationship.")

    def _write(self, rules: _Rules, name: str) -> None:
        values = _Values()
        present = False
        while (kind := self.p.next()) != t.END_ARRAY:
            present = True
            if kind == t.START_OBJECT:
                operator = self._expression()
                if operator is None:
                    values.absent = True
                else:
                    values.operators.append(operator)
            elif kind == t.VALUE_STRING:
                ip = parse_ip(self.p.text)
                values.operators.append(IpEquals(*ip) if ip is not None else Equals(self.p.text))
            elif kind in _NUMBERS:
                values.operators.append(NumberEquals(_literal_double(self.p.text)))
            elif kind == t.VALUE_NULL:
                values.operators.append(NullEquals())
            elif kind in (t.VALUE_TRUE, t.VALUE_FALSE):
                values.operators.append(BoolEquals(kind == t.VALUE_TRUE))
            else:
                raise _fail("Match value must be String, number, true, false, or null")
        if not present:
            raise _fail("Empty arrays are not allowed")
        if not rules:
            rules.append({})
        for rule in rules:
            rule[name] = values

    def _end_object(self, reason: str = "Only one key allowed in match expression") -> None:
        if self.p.next() != t.END_OBJECT:
            raise _fail(reason)

    def _string_operand(self, reason: str) -> str:
        if self.p.next() != t.VALUE_STRING:
            raise _fail(reason)
        return self.p.text

    def _expression(self) -> Operator | None:
        """One ``{"op": ...}`` item of a value list; None means ``{"exists": false}``."""
        p = self.p
        if p.next() != t.FIELD_NAME:
            raise _fail("Match expression name not found")
        op = p.text
        result: Operator | None
        if op == "exactly":
            result = Equals(self._string_operand("exact match pattern must be a string"))
        elif op in ("prefix", "suffix"):
            if p.next() == t.START_OBJECT:
                return self._ignore_case_affix(op)
            if p.kind != t.VALUE_STRING:
                raise _fail(f"{op} match pattern must be a string")
            result = Prefix(p.text) if op == "prefix" else Suffix(p.text)
        elif op == "numeric":
            if p.next() != t.START_ARRAY:
                raise _fail("Value of numeric must be an array.")
            result = self._numeric()
            self._end_object("Too many elements in numeric expression")
            return result
        elif op == "anything-but":
            return self._anything_but()
        elif op == "exists":
            kind = p.next()
            if kind not in (t.VALUE_TRUE, t.VALUE_FALSE):
                raise _fail("exists match pattern must be either true or false.")
            result = Exists() if kind == t.VALUE_TRUE else None
        elif op == "cidr":
            result = _cidr(self._string_operand("prefix match pattern must be a string"))
        elif op == "equals-ignore-case":
            text = self._string_operand("equals-ignore-case match pattern must be a string")
            result = EqualsIgnoreCase(fold(text))
        elif op == "wildcard":
            result = compile_wildcard(
                self._string_operand("wildcard match pattern must be a string")
            )
        else:
            raise _fail(f"Unrecognized match type {op}")
        self._end_object()
        return result

    def _ignore_case_affix(self, op: str) -> Operator:
        p = self.p
        if p.next() != t.FIELD_NAME:
            raise _fail(f"{op.capitalize()} expression name not found")
        if p.text != "equals-ignore-case":
            raise _fail(f"Unsupported {op} pattern: {p.text}")
        text = self._string_operand("equals-ignore-case match pattern must be a string")
        self._end_object()
        self._end_object()
        return PrefixIgnoreCase(fold(text)) if op == "prefix" else SuffixIgnoreCase(fold(text))

    def _numeric(self) -> Operator:
        p = self.p
        if p.next() != t.VALUE_STRING:
            raise _fail(f"Invalid member in numeric match: {p.text}")
        operator = p.text
        kind = p.next()
        name = "equals" if operator == "=" else operator
        if operator not in ("=", "<", "<=", ">", ">="):
            raise _fail(f"Unrecognized numeric range operator: {operator}")
        if kind not in _NUMBERS:
            raise _fail(f"Value of {name} must be numeric")
        value = p.text
        if operator in ("=", "<", "<="):
            if p.next() != t.END_ARRAY:
                raise _fail("Too many elements in numeric expression")
            if operator == "=":
                return NumberEquals(_double(value))
            return NumericRange(-math.inf, False, _double(value), operator == "<")
        if p.next() == t.END_ARRAY:
            return NumericRange(_double(value), operator == ">", math.inf, False)
        if p.kind != t.VALUE_STRING:
            raise _fail(f"Bad value in numeric range: {p.text}")
        top_operator = p.text
        if top_operator not in ("<", "<="):
            raise _fail(f"Bad numeric range operator: {top_operator}")
        if p.next() not in _NUMBERS:
            raise _fail(f"Value of {top_operator} must be numeric")
        top = p.text
        if p.next() != t.END_ARRAY:
            raise _fail("Too many terms in numeric range expression")
        low, high = _double(value), _double(top)
        if not low < high:
            raise _fail("Bottom must be less than top")
        return NumericRange(low, operator == ">", high, top_operator == "<")

    def _anything_but(self) -> Operator:
        p = self.p
        variant = ""
        kind = p.next()
        if kind == t.START_OBJECT:
            if p.next() != t.FIELD_NAME:
                raise _fail("Anything-But expression name not found")
            variant = p.text
            if variant not in ("equals-ignore-case", "prefix", "suffix", "wildcard"):
                raise _fail(f"Unsupported anything-but pattern: {variant}")
            kind = p.next()
        if kind not in (t.START_ARRAY, t.VALUE_STRING, *_NUMBERS):
            raise _fail("Value of anything-but must be an array or single string/number value.")
        result: Operator
        if not variant:
            result = self._anything_but_values(kind)
        else:
            texts: list[str] = []
            if kind == t.START_ARRAY:
                while (item := p.next()) != t.END_ARRAY:
                    texts.append(self._anything_but_text(variant, item))
            else:
                texts.append(self._anything_but_text(variant, kind))
            result = self._anything_but_variant(variant, texts)
        self._end_object("Too many elements in numeric expression")
        if variant:
            self._end_object("Too many elements in numeric expression")
        return result

    def _anything_but_values(self, kind: int) -> AnythingBut:
        p = self.p
        strings: set[str] = set()
        numbers: set[float] = set()
        if kind != t.START_ARRAY:
            if kind == t.VALUE_STRING:
                return AnythingBut(frozenset({p.text}), frozenset())
            return AnythingBut(frozenset(), frozenset({_double(p.text)}))
        while (item := p.next()) != t.END_ARRAY:
            if item == t.VALUE_STRING:
                strings.add(p.text)
            elif item in _NUMBERS:
                numbers.add(_double(p.text))
            else:
                raise _fail("Inside anything but list, start|null|boolean is not supported.")
        if bool(strings) == bool(numbers):
            raise _fail(
                "Inside anything but list, either all values are number or string, "
                "mixed type is not supported"
            )
        return AnythingBut(frozenset(strings), frozenset(numbers))

    def _anything_but_text(self, variant: str, kind: int) -> str:
        if kind != t.VALUE_STRING:
            if variant == "equals-ignore-case":
                raise _fail(
                    "Inside anything-but/equals-ignore-case list, "
                    "number|start|null|boolean is not supported."
                )
            if variant == "wildcard":
                raise _fail("wildcard match pattern must be a string")
            raise _fail("prefix/suffix match pattern must be a string")
        if variant in ("prefix", "suffix") and not self.p.text:
            raise _fail("Null prefix/suffix not allowed")
        return self.p.text

    @staticmethod
    def _anything_but_variant(variant: str, texts: list[str]) -> Operator:
        unique = tuple(dict.fromkeys(texts))
        if variant == "equals-ignore-case":
            return AnythingButIgnoreCase(frozenset(fold(text) for text in unique))
        if variant == "prefix":
            return AnythingButPrefix(unique)
        if variant == "suffix":
            return AnythingButSuffix(unique)
        return AnythingButWildcard(tuple(compile_wildcard(text) for text in unique))


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _pattern_text_length(pattern: object) -> int:
    """The length of a parsed pattern written as compact JSON."""
    try:
        encoded = orjson.dumps(pattern).decode()
    except TypeError:
        try:  # orjson refuses nesting beyond 255 levels; the standard library goes deeper
            encoded = json.dumps(pattern, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            return MAX_LENGTH + 1  # nested this deep, the text is longer than any limit
        except (TypeError, ValueError):
            return 0  # not JSON; the compiler reports what is wrong
    return _utf16_length(encoded)


def _branch(rule: Mapping[str, _Values]) -> tuple[Field, ...]:
    fields = [
        Field(path, tuple(dict.fromkeys(values.operators)), values.absent)
        for path, values in rule.items()
    ]
    fields.sort(key=lambda field: path_order(field.path))
    return tuple(fields)


def _check_wildcards(branches: tuple[tuple[Field, ...], ...]) -> bool:
    by_path: dict[str, dict[str, Wildcard]] = {}
    for branch in branches:
        for field in branch:
            for operator in field.operators:
                if isinstance(operator, Wildcard):
                    by_path.setdefault(field.path, {})[operator.text] = operator
    for wildcards in by_path.values():
        if complexity(wildcards.values()) >= COMPLEXITY_LIMIT:
            raise _fail(TOO_COMPLEX)
    return bool(by_path)


def compile_pattern(pattern: Any, *, max_length: int = DEFAULT_MAX_LENGTH) -> CompiledPattern:
    """Validate and compile an event pattern.

    Args:
        pattern: JSON text (``str`` or ``bytes``), an already parsed value, or a
            :class:`CompiledPattern` (returned as is).
        max_length: the length limit in characters (1 to 4096); a parsed pattern is
            measured as compact JSON.

    Returns:
        The compiled pattern.

    Raises:
        InvalidEventPattern: the pattern is not valid; ``message`` is AWS's first line.
        ValueError: ``max_length`` is outside 1..4096.
        TypeError: a parsed pattern holds a value that is not JSON.
    """
    if isinstance(pattern, CompiledPattern):
        return pattern
    if not 1 <= max_length <= MAX_LENGTH:
        raise ValueError(f"max_length must be between 1 and {MAX_LENGTH}, not {max_length}")
    if isinstance(pattern, bytes | bytearray | memoryview):
        try:
            pattern = bytes(pattern).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(f"Invalid UTF-8 start byte 0x{exc.object[exc.start]:02x}") from None
    if isinstance(pattern, str):
        length = _utf16_length(pattern)
        stream = t.text_tokens(pattern)
    else:
        length = _pattern_text_length(pattern)
        stream = t.value_tokens(pattern)
    if length > max_length:
        raise _fail(f"Event pattern is too long: {length} characters, the limit is {max_length}")
    try:
        rules = _Compiler(t.TokenReader(stream)).compile()
    except t.JsonSyntaxError as exc:
        raise _fail(exc.reason) from None
    branches = tuple(_branch(rule) for rule in rules)
    return CompiledPattern(branches, _check_wildcards(branches))
