"""Why an event does not match a pattern: the field that failed, and how.

:func:`explain` answers "why didn't my rule fire?" for one pattern and one event. It
returns None exactly when :func:`~eventyard.patterns.matches` says the event matches
(it decides with the same reference search), and otherwise an :class:`Explanation`:
for each ``$or`` branch of the pattern, the fields of that branch that fail, each a
:class:`Mismatch` with its path, the kind of failure, the conditions the pattern sets
(written as pattern JSON) and the values the event has there.

The kinds of failure:

- ``missing``: the event has no value at the path (or only an object or an empty array);
- ``value``: the event has values there, and no condition accepts any of them (wrong
  value, wrong type, a number out of range, a value ``anything-but`` excludes…);
- ``exists``: the pattern says ``{"exists": false}`` and the event has a value there;
- ``array``: every field holds on its own, but only in different elements of an array
  (EventBridge matches the fields of one pattern within one array element).

Shared by the SDK (which reads explanations back from the trace API) and the server.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from eventyard.patterns.flatten import Leaves, flatten, parse_event
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
    is_number,
)
from eventyard.patterns.parse import DEFAULT_MAX_LENGTH, Field, compile_pattern
from eventyard.patterns.reference import branch_matches

__all__ = ["Explanation", "Mismatch", "MismatchKind", "describe", "explain"]

MismatchKind = Literal["missing", "value", "exists", "array"]

#: the most event values a mismatch quotes
_MAX_ACTUAL = 5
_MAX_TEXT = 80


@dataclass(slots=True, frozen=True)
class Mismatch:
    """One field of a pattern branch that the event fails.

    Attributes:
        path: the dot-joined field path (``detail.state``); for ``array``, the paths
            that hold only in different array elements, comma-separated.
        kind: ``missing``, ``value``, ``exists`` or ``array`` (see the module docs).
        expected: the field's conditions as pattern JSON (``"running"``,
            ``{"prefix": "i-"}``, ``{"exists": false}``…), ORed.
        actual: the event's values at the path (at most five), empty when missing.
        message: a sentence saying what failed.
    """

    path: str
    kind: MismatchKind
    expected: tuple[str, ...]
    actual: tuple[Any, ...]
    message: str

    def to_json(self) -> dict[str, Any]:
        """The mismatch as a JSON object (the trace API's form)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "expected": list(self.expected),
            "actual": list(self.actual),
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mismatch:
        """The mismatch of :meth:`to_json`'s form."""
        kind = data["kind"]
        if kind not in ("missing", "value", "exists", "array"):
            raise ValueError(f"unknown mismatch kind {kind!r}")
        return cls(
            str(data["path"]),
            kind,
            tuple(str(e) for e in data["expected"]),
            tuple(data["actual"]),
            str(data["message"]),
        )


@dataclass(slots=True, frozen=True)
class Explanation:
    """Why an event does not match a pattern.

    Attributes:
        branches: for each branch of the pattern (one, or one per ``$or``
            combination), the fields that fail in it; never empty, nor is any branch.
    """

    branches: tuple[tuple[Mismatch, ...], ...]

    @property
    def mismatches(self) -> tuple[Mismatch, ...]:
        """Every mismatch of every branch, in order."""
        return tuple(m for branch in self.branches for m in branch)

    def __str__(self) -> str:
        if len(self.branches) == 1:
            return "; ".join(m.message for m in self.branches[0])
        parts = [
            f"({n}) " + "; ".join(m.message for m in branch)
            for n, branch in enumerate(self.branches, 1)
        ]
        return f"none of the {len(self.branches)} $or branches matches: " + " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The explanation as a JSON object (the trace API's form)."""
        return {
            "message": str(self),
            "branches": [[m.to_json() for m in branch] for branch in self.branches],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        """The explanation of :meth:`to_json`'s form."""
        return cls(
            tuple(tuple(Mismatch.from_json(m) for m in branch) for branch in data["branches"])
        )


def explain(
    pattern: Any, event: Any, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Explanation | None:
    """Why ``event`` does not match ``pattern``; None when it matches.

    Args:
        pattern: JSON text, a parsed pattern, or a ``CompiledPattern``.
        event: JSON text or a parsed object.
        max_length: the pattern length limit (as for :func:`matches`).

    Returns:
        None exactly when :func:`~eventyard.patterns.matches` returns True; otherwise
        the failing fields of every branch.

    Raises:
        InvalidEventPattern: the pattern is not valid.
        ValidationError: the event is not a JSON object.
    """
    compiled = compile_pattern(pattern, max_length=max_length)
    leaves = flatten(parse_event(event))
    if any(branch_matches(branch, leaves) for branch in compiled.branches):
        return None
    return Explanation(tuple(_branch(branch, leaves) for branch in compiled.branches))


def _branch(fields: tuple[Field, ...], leaves: Leaves) -> tuple[Mismatch, ...]:
    """The fields of a failing branch that fail on their own, or else the array
    consistency that fails them together."""
    failed = [m for f in fields if (m := _field(f, leaves)) is not None]
    if failed:
        return tuple(failed)
    paths = [f.path for f in fields if leaves.get(f.path)]
    return (
        Mismatch(
            ", ".join(paths),
            "array",
            (),
            (),
            f"{_join(paths)} each match, but only in different elements of an array "
            "(the fields of a pattern must match within one array element)",
        ),
    )


def _field(field: Field, leaves: Leaves) -> Mismatch | None:
    """Why ``field`` fails on its own (ignoring the other fields), None if it holds."""
    values = [value for value, _ in leaves.get(field.path, ())]
    expected = tuple(describe(op) for op in field.operators)
    if field.absent:
        expected = (*expected, '{"exists": false}')
    if not values:
        if field.absent:
            return None
        where = (
            "is an object or an empty array"
            if _has_children(field.path, leaves)
            else ("is missing")
        )
        return Mismatch(
            field.path,
            "missing",
            expected,
            (),
            f"{field.path} {where}; the pattern expects {_alternatives(expected)}",
        )
    if any(op.test(v) for op in field.operators for v in values):
        return None
    actual = tuple(values[:_MAX_ACTUAL])
    shown = _values(values)
    if field.absent and not field.operators:
        return Mismatch(
            field.path,
            "exists",
            expected,
            actual,
            f"{field.path} is {shown}, but the pattern says it must not exist",
        )
    if len(field.operators) == 1 and len(values) == 1 and not field.absent:
        reason = _why(field.operators[0], values[0])
    else:
        reason = f"the pattern expects {_alternatives(expected)}"
    return Mismatch(field.path, "value", expected, actual, f"{field.path} is {shown}; {reason}")


def _has_children(path: str, leaves: Leaves) -> bool:
    prefix = path + "."
    return any(p.startswith(prefix) for p in leaves)


def _why(op: Operator, value: object) -> str:
    """Why the one condition ``op`` rejects the one value ``value``."""
    text = describe(op)
    string_ops = (
        Equals,
        IpEquals,
        Prefix,
        PrefixIgnoreCase,
        Suffix,
        SuffixIgnoreCase,
        EqualsIgnoreCase,
        Wildcard,
        Cidr,
    )
    if isinstance(op, string_ops) and not isinstance(value, str):
        return f"{text} only matches strings, and this is {_type(value)}"
    if isinstance(op, NumericRange | NumberEquals) and not is_number(value):
        return f"{text} only matches numbers, and this is {_type(value)}"
    if isinstance(op, NumericRange) and is_number(value):
        return f"it is outside the range {text}"
    if isinstance(
        op,
        AnythingBut
        | AnythingButPrefix
        | AnythingButSuffix
        | AnythingButIgnoreCase
        | AnythingButWildcard,
    ):
        return f"{text} excludes it"
    return f"the pattern expects {text}"


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _json(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _values(values: list[Any]) -> str:
    shown = ", ".join(_json(v) for v in values[:_MAX_ACTUAL])
    if len(values) == 1:
        return shown
    more = f" and {len(values) - _MAX_ACTUAL} more" if len(values) > _MAX_ACTUAL else ""
    return f"[{shown}{more}]"


def _alternatives(expected: tuple[str, ...]) -> str:
    if len(expected) == 1:
        return expected[0]
    return "one of " + ", ".join(expected)


def _join(paths: list[str]) -> str:
    return " and ".join(paths) if len(paths) <= 2 else ", ".join(paths)


def _number(value: float) -> Any:
    """A double as the pattern would write it (``5`` rather than ``5.0``)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return int(value)
    return value


def _ip(version: int, address: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(address))
    return str(ipaddress.IPv6Address(address))


def _cidr(op: Cidr) -> str:
    bits = 32 if op.version == 4 else 128
    host = (op.high ^ op.low).bit_length()
    return f"{_ip(op.version, op.low)}/{bits - host}"


def describe(op: Operator) -> str:
    """One condition written as pattern JSON (``"x"``, ``{"prefix": "x"}``, …).

    Case-insensitive texts appear folded (lower case), as they are compared.
    """
    value: Any
    if isinstance(op, Equals):
        value = op.value
    elif isinstance(op, IpEquals):
        value = _ip(op.version, op.address)
    elif isinstance(op, NumberEquals):
        value = _number(op.value)
    elif isinstance(op, BoolEquals):
        value = op.value
    elif isinstance(op, NullEquals):
        value = None
    elif isinstance(op, Prefix):
        value = {"prefix": op.text}
    elif isinstance(op, PrefixIgnoreCase):
        value = {"prefix": {"equals-ignore-case": op.folded}}
    elif isinstance(op, Suffix):
        value = {"suffix": op.text}
    elif isinstance(op, SuffixIgnoreCase):
        value = {"suffix": {"equals-ignore-case": op.folded}}
    elif isinstance(op, EqualsIgnoreCase):
        value = {"equals-ignore-case": op.folded}
    elif isinstance(op, Wildcard):
        value = {"wildcard": op.text}
    elif isinstance(op, NumericRange):
        terms: list[Any] = []
        if op.low != -math.inf:
            terms += [">" if op.low_open else ">=", _number(op.low)]
        if op.high != math.inf:
            terms += ["<" if op.high_open else "<=", _number(op.high)]
        value = {"numeric": terms}
    elif isinstance(op, Cidr):
        value = {"cidr": _cidr(op)}
    elif isinstance(op, Exists):
        value = {"exists": True}
    elif isinstance(op, AnythingBut):
        excluded: list[Any] = sorted(op.strings) or sorted(_number(n) for n in op.numbers)
        value = {"anything-but": excluded[0] if len(excluded) == 1 else excluded}
    elif isinstance(op, AnythingButPrefix):
        value = {"anything-but": {"prefix": _one_or_list(op.prefixes)}}
    elif isinstance(op, AnythingButSuffix):
        value = {"anything-but": {"suffix": _one_or_list(op.suffixes)}}
    elif isinstance(op, AnythingButIgnoreCase):
        value = {"anything-but": {"equals-ignore-case": _one_or_list(sorted(op.folded))}}
    else:
        value = {"anything-but": {"wildcard": _one_or_list([w.text for w in op.wildcards])}}
    return orjson.dumps(value).decode()


def _one_or_list(items: tuple[str, ...] | list[str]) -> Any:
    return items[0] if len(items) == 1 else list(items)
