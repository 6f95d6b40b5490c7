"""The value operators of the EventBridge pattern language and what each one matches.

A compiled pattern is made of fields (a flattened path and a list of operators, ORed);
each operator here is a small frozen record with a ``test(value)`` predicate over one
event leaf value (a ``str``, a number, ``True``/``False`` or ``None``). The predicates are
the reference semantics: :mod:`eventyard.patterns.reference` calls them directly, and the
compiled machine (:mod:`eventyard.patterns.machine`) indexes the same records by their
fields and falls back to ``test`` wherever it verifies a candidate.

Semantics follow Amazon EventBridge (``reference/eventbridge.md`` §2, event-ruler):

- string operators (prefix, suffix, equals-ignore-case, wildcard, cidr) only match strings;
- numbers compare as IEEE-754 doubles, so ``300`` matches ``300.0``;
- every ``anything-but`` matches any present leaf that is not excluded, ``null`` included,
  and non-string leaves for the string variants;
- a string literal that is an IP address matches the same address written another way.

Case-insensitive comparison uses :func:`fold` (``str.upper().lower()``), which equates
``ß`` and ``SS`` or ``ı`` and ``I`` as Java's per-character case mapping does.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "AnythingBut",
    "AnythingButIgnoreCase",
    "AnythingButPrefix",
    "AnythingButSuffix",
    "AnythingButWildcard",
    "BoolEquals",
    "Cidr",
    "Equals",
    "EqualsIgnoreCase",
    "Exists",
    "IpEquals",
    "NullEquals",
    "NumberEquals",
    "NumericRange",
    "Operator",
    "Prefix",
    "PrefixIgnoreCase",
    "Suffix",
    "SuffixIgnoreCase",
    "Wildcard",
    "as_double",
    "fold",
    "is_number",
    "looks_like_ip",
    "parse_ip",
]

_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_RE = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")


def fold(text: str) -> str:
    """The case-insensitive comparison key of ``text``."""
    return text.upper().lower()


def is_number(value: object) -> bool:
    """Whether ``value`` is a JSON number (``bool`` is not, although Python says so)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_double(value: int | float) -> float:
    """``value`` as a double; integers too large for one become an infinity, as in Java."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _finite_double(value: object) -> float | None:
    """The double of a JSON number leaf that numeric comparisons accept, else None."""
    if not is_number(value):
        return None
    number = as_double(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def looks_like_ip(text: str) -> bool:
    """Whether ``text`` has the shape event-ruler treats as an IP address (v4 or v6)."""
    return bool(_IPV4_RE.fullmatch(text) or _IPV6_RE.fullmatch(text))


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> tuple[int, int] | None:
    """``(version, address)`` of an IPv4 or IPv6 literal, None if ``text`` is not one.

    Only texts shaped like event-ruler's IP regexes are considered (so host names are never
    looked up); IPv4-mapped IPv6 addresses count as IPv4, as Java's ``InetAddress`` has it.
    """
    try:
        if _IPV4_RE.fullmatch(text):
            return 4, int(ipaddress.IPv4Address(text))
        if _IPV6_RE.fullmatch(text):
            address = ipaddress.IPv6Address(text)
            mapped = address.ipv4_mapped
            if mapped is not None:
                return 4, int(mapped)
            return 6, int(address)
    except ValueError:
        return None
    return None


@dataclass(slots=True, frozen=True)
class Equals:
    """An exact string (a string literal, or ``{"exactly": ...}``)."""

    value: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and value == self.value


@dataclass(slots=True, frozen=True)
class IpEquals:
    """A string literal that is an IP address: matches every spelling of that address."""

    version: int
    address: int

    def test(self, value: object) -> bool:
        return isinstance(value, str) and parse_ip(value) == (self.version, self.address)


@dataclass(slots=True, frozen=True)
class NumberEquals:
    """A number literal or ``{"numeric": ["=", n]}``: equal as doubles."""

    value: float

    def test(self, value: object) -> bool:
        return is_number(value) and as_double(value) == self.value  # type: ignore[arg-type]


@dataclass(slots=True, frozen=True)
class BoolEquals:
    """``true`` or ``false``."""

    value: bool

    def test(self, value: object) -> bool:
        return value is self.value


@dataclass(slots=True, frozen=True)
class NullEquals:
    """``null``: matches a JSON null leaf, never a missing field or an empty array."""

    def test(self, value: object) -> bool:
        return value is None


@dataclass(slots=True, frozen=True)
class Prefix:
    """``{"prefix": "x"}``; ``""`` matches every string."""

    text: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.text)


@dataclass(slots=True, frozen=True)
class PrefixIgnoreCase:
    """``{"prefix": {"equals-ignore-case": "x"}}``; ``folded`` is ``fold(x)``."""

    folded: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and fold(value).startswith(self.folded)


@dataclass(slots=True, frozen=True)
class Suffix:
    """``{"suffix": "x"}``; ``""`` matches every string."""

    text: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and value.endswith(self.text)


@dataclass(slots=True, frozen=True)
class SuffixIgnoreCase:
    """``{"suffix": {"equals-ignore-case": "x"}}``; ``folded`` is ``fold(x)``."""

    folded: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and fold(value).endswith(self.folded)


@dataclass(slots=True, frozen=True)
class EqualsIgnoreCase:
    """``{"equals-ignore-case": "x"}``; ``folded`` is ``fold(x)``."""

    folded: str

    def test(self, value: object) -> bool:
        return isinstance(value, str) and fold(value) == self.folded


@dataclass(slots=True, frozen=True)
class Wildcard:
    """``{"wildcard": "a*b"}``: ``*`` spans any characters; the whole string must match.

    ``text`` is the pattern as written (escapes included); ``segments`` its literal pieces
    between unescaped ``*`` (at least one; ``prefix`` is the first).

    Matching never backtracks: the first segment must start the value, the last must end
    it, and each middle segment is found left to right after the previous one. Taking the
    leftmost occurrence each time is always right when ``*`` is the only metacharacter,
    so a value is scanned about once per segment, whatever the pattern and however
    adversarial the value (a backtracking regex takes minutes on ``*a*a*a*b`` against a
    few thousand ``a``).
    """

    text: str
    segments: tuple[str, ...] = field(compare=False, repr=False)

    @property
    def prefix(self) -> str:
        """The literal text before the first ``*`` (what the index keys on)."""
        return self.segments[0]

    def test(self, value: object) -> bool:
        return isinstance(value, str) and self.matches(value)

    def matches(self, value: str) -> bool:
        """Whether the whole string ``value`` matches the wildcard."""
        segments = self.segments
        first = segments[0]
        if len(segments) == 1:
            return value == first
        last = segments[-1]
        end = len(value) - len(last)
        if end < len(first) or not value.startswith(first) or not value.endswith(last):
            return False
        position = len(first)
        for segment in segments[1:-1]:
            if segment:
                found = value.find(segment, position, end)
                if found < 0:
                    return False
                position = found + len(segment)
        return True


@dataclass(slots=True, frozen=True)
class NumericRange:
    """``{"numeric": [...]}`` other than ``=``: a range of doubles (bounds may be infinite)."""

    low: float
    low_open: bool
    high: float
    high_open: bool

    def contains(self, number: float) -> bool:
        """Whether the finite double ``number`` lies in the range."""
        if number < self.low or (self.low_open and number == self.low):
            return False
        return not (number > self.high or (self.high_open and number == self.high))

    def test(self, value: object) -> bool:
        number = _finite_double(value)
        return number is not None and self.contains(number)


@dataclass(slots=True, frozen=True)
class Cidr:
    """``{"cidr": "10.0.0.0/24"}``: string IP addresses from ``low`` to ``high``.

    As in event-ruler, ``low`` is the address as written (host bits are not cleared) and
    ``high`` that address with every host bit set.
    """

    version: int
    low: int
    high: int

    def test(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        parsed = parse_ip(value)
        return (
            parsed is not None and parsed[0] == self.version and self.low <= parsed[1] <= self.high
        )


@dataclass(slots=True, frozen=True)
class Exists:
    """``{"exists": true}``: the path has a leaf value (``null`` counts)."""

    def test(self, value: object) -> bool:
        return True


@dataclass(slots=True, frozen=True)
class AnythingBut:
    """``{"anything-but": v}`` or a list: a present leaf not equal to any listed value.

    Exactly one of ``strings`` / ``numbers`` is non-empty (lists are all strings or all
    numbers); leaves of any other type match.
    """

    strings: frozenset[str]
    numbers: frozenset[float]

    def test(self, value: object) -> bool:
        if isinstance(value, str):
            return value not in self.strings
        number = _finite_double(value)
        return number is None or number not in self.numbers


@dataclass(slots=True, frozen=True)
class AnythingButPrefix:
    """``{"anything-but": {"prefix": ...}}``: strings starting with none; non-strings match."""

    prefixes: tuple[str, ...]

    def test(self, value: object) -> bool:
        return not isinstance(value, str) or not value.startswith(self.prefixes)


@dataclass(slots=True, frozen=True)
class AnythingButSuffix:
    """``{"anything-but": {"suffix": ...}}``: strings ending with none; non-strings match."""

    suffixes: tuple[str, ...]

    def test(self, value: object) -> bool:
        return not isinstance(value, str) or not value.endswith(self.suffixes)


@dataclass(slots=True, frozen=True)
class AnythingButIgnoreCase:
    """``{"anything-but": {"equals-ignore-case": ...}}``; ``folded`` holds ``fold(x)``."""

    folded: frozenset[str]

    def test(self, value: object) -> bool:
        return not isinstance(value, str) or fold(value) not in self.folded


@dataclass(slots=True, frozen=True)
class AnythingButWildcard:
    """``{"anything-but": {"wildcard": ...}}``: strings matching none; non-strings match."""

    wildcards: tuple[Wildcard, ...]

    def test(self, value: object) -> bool:
        if not isinstance(value, str):
            return True
        return not any(w.matches(value) for w in self.wildcards)


Operator = (
    Equals
    | IpEquals
    | NumberEquals
    | BoolEquals
    | NullEquals
    | Prefix
    | PrefixIgnoreCase
    | Suffix
    | SuffixIgnoreCase
    | EqualsIgnoreCase
    | Wildcard
    | NumericRange
    | Cidr
    | Exists
    | AnythingBut
    | AnythingButPrefix
    | AnythingButSuffix
    | AnythingButIgnoreCase
    | AnythingButWildcard
)
"""Any value operator."""
