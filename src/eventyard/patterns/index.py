"""Per-path value indexes: which operators accept an event leaf, without trying each one.

The compiled machine (:mod:`eventyard.patterns.machine`) is a tree of states; a state's
transitions on one path live in a :class:`PathIndex` that maps each operator to the next
state. Given the leaf values an event has at that path, :meth:`PathIndex.collect` finds
the next states of all accepting operators with work that depends on the leaves, not on
how many operators the index holds:

- exact strings, numbers (as doubles), booleans, ``null``, case-folded strings and IP
  addresses: one dict look-up each;
- prefixes and suffixes (plain or case-folded): one look-up per distinct length, in dicts
  keyed by the leaf's prefix/suffix of that length;
- wildcards: indexed like prefixes by their literal text before the first ``*``, then
  confirmed with the compiled expression;
- CIDR blocks: one look-up per distinct (version, mask length);
- numeric ranges: a bisect into the sorted range bounds, whose elementary intervals each
  know the ranges covering them (rebuilt lazily after a change);
- ``exists: true``: taken whenever the path has a leaf;
- ``anything-but`` variants: their ``test`` per leaf (they accept nearly everything, so
  the work is proportional to what they accept anyway).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from eventyard.patterns.operators import (
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
    as_double,
    fold,
    parse_ip,
)

__all__ = ["PathIndex"]

T = TypeVar("T")


class _Affixes(Generic[T]):
    """Items keyed by a prefix (or suffix) text, grouped by the text's length."""

    __slots__ = ("by_length", "lengths")

    def __init__(self) -> None:
        self.by_length: dict[int, dict[str, list[T]]] = {}
        self.lengths: list[int] = []

    def add(self, key: str, item: T) -> None:
        group = self.by_length.get(len(key))
        if group is None:
            group = self.by_length[len(key)] = {}
            self.lengths = sorted(self.by_length)
        group.setdefault(key, []).append(item)

    def discard(self, key: str, item: T) -> bool:
        """Remove ``item``; True when nothing is left at all."""
        group = self.by_length[len(key)]
        items = group[key]
        items.remove(item)
        if not items:
            del group[key]
            if not group:
                del self.by_length[len(key)]
                self.lengths = sorted(self.by_length)
        return not self.by_length

    def prefixes_of(self, text: str, out: list[T]) -> None:
        """Append the items of every key that is a prefix of ``text``."""
        size = len(text)
        by_length = self.by_length
        for length in self.lengths:
            if length > size:
                break
            items = by_length[length].get(text[:length])
            if items is not None:
                out.extend(items)

    def suffixes_of(self, text: str, out: list[T]) -> None:
        """Append the items of every key that is a suffix of ``text``."""
        size = len(text)
        by_length = self.by_length
        for length in self.lengths:
            if length > size:
                break
            items = by_length[length].get(text[size - length :])
            if items is not None:
                out.extend(items)


class _RangeTable(Generic[T]):
    """Numeric ranges; stabbing queries by bisect over elementary intervals."""

    __slots__ = ("bounds", "items", "regions")

    def __init__(self) -> None:
        self.items: list[tuple[NumericRange, T]] = []
        self.bounds: list[float] = []
        self.regions: list[tuple[T, ...]] | None = None

    def add(self, item: tuple[NumericRange, T]) -> None:
        self.items.append(item)
        self.regions = None

    def discard(self, item: tuple[NumericRange, T]) -> bool:
        self.items.remove(item)
        self.regions = None
        return not self.items

    def _region(self, number: float) -> int:
        i = bisect_left(self.bounds, number)
        return 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == number else 2 * i

    def build(self) -> list[tuple[T, ...]]:
        """Compute (and keep) the ranges covering each elementary interval."""
        bounds = sorted({b for r, _ in self.items for b in (r.low, r.high) if math.isfinite(b)})
        self.bounds = bounds
        count = 2 * len(bounds) + 1
        starts: list[list[T]] = [[] for _ in range(count + 1)]
        ends: list[list[T]] = [[] for _ in range(count + 1)]
        for r, item in self.items:
            first = self._region(r.low) + (1 if r.low_open else 0) if math.isfinite(r.low) else 0
            last = (
                self._region(r.high) - (1 if r.high_open else 0)
                if math.isfinite(r.high)
                else count - 1
            )
            if first <= last:
                starts[first].append(item)
                ends[last + 1].append(item)
        regions: list[tuple[T, ...]] = []
        active: dict[int, T] = {}
        for region in range(count):
            for item in ends[region]:
                del active[id(item)]
            for item in starts[region]:
                active[id(item)] = item
            regions.append(tuple(active.values()))
        self.regions = regions
        return regions


class PathIndex(Generic[T]):
    """The operators of one path at one state, each leading to a ``T`` (the next state)."""

    __slots__ = (
        "affix_folded",
        "children",
        "cidrs",
        "exact_only",
        "exists",
        "folded",
        "ips",
        "numbers",
        "others",
        "prefix_folded",
        "prefixes",
        "ranges",
        "rare_strings",
        "scalars",
        "strings",
        "suffix_folded",
        "suffixes",
        "wildcards",
    )

    def __init__(self) -> None:
        self.children: dict[Operator, T] = {}
        self.strings: dict[str, T] | None = None
        self.numbers: dict[float, T] | None = None
        self.scalars: dict[bool | None, T] | None = None  # True, False and None (null)
        self.folded: dict[str, T] | None = None
        self.prefixes: _Affixes[T] | None = None
        self.suffixes: _Affixes[T] | None = None
        self.prefix_folded: _Affixes[T] | None = None
        self.suffix_folded: _Affixes[T] | None = None
        self.affix_folded = False
        self.wildcards: _Affixes[tuple[Wildcard, T]] | None = None
        self.ips: dict[tuple[int, int], T] | None = None
        self.cidrs: dict[tuple[int, int], dict[int, list[tuple[Cidr, T]]]] | None = None
        self.ranges: _RangeTable[T] | None = None
        self.exists: T | None = None
        self.others: list[tuple[Operator, T]] | None = None
        self.exact_only = False
        self.rare_strings = False

    def __bool__(self) -> bool:
        return bool(self.children)

    # -- building ----------------------------------------------------------------------
    def child(self, operator: Operator, make: Callable[[], T]) -> T:
        """The state ``operator`` leads to, created (and indexed) on first use."""
        found = self.children.get(operator)
        if found is None:
            found = self.children[operator] = make()
            self._index(operator, found)
        return found

    def discard(self, operator: Operator) -> None:
        """Forget ``operator`` and its state."""
        state = self.children.pop(operator)
        self._unindex(operator, state)

    def _index(self, op: Operator, state: T) -> None:
        if isinstance(op, Equals):
            self.strings = _put(self.strings, op.value, state)
        elif isinstance(op, NumberEquals):
            self.numbers = _put(self.numbers, op.value, state)
        elif isinstance(op, BoolEquals | NullEquals):
            self.scalars = _put(self.scalars, _scalar_key(op), state)
        elif isinstance(op, EqualsIgnoreCase):
            self.folded = _put(self.folded, op.folded, state)
        elif isinstance(op, IpEquals):
            self.ips = _put(self.ips, (op.version, op.address), state)
        elif isinstance(op, Prefix):
            self.prefixes = self.prefixes or _Affixes()
            self.prefixes.add(op.text, state)
        elif isinstance(op, Suffix):
            self.suffixes = self.suffixes or _Affixes()
            self.suffixes.add(op.text, state)
        elif isinstance(op, PrefixIgnoreCase):
            self.prefix_folded = self.prefix_folded or _Affixes()
            self.prefix_folded.add(op.folded, state)
        elif isinstance(op, SuffixIgnoreCase):
            self.suffix_folded = self.suffix_folded or _Affixes()
            self.suffix_folded.add(op.folded, state)
        elif isinstance(op, Wildcard):
            self.wildcards = self.wildcards or _Affixes()
            self.wildcards.add(op.prefix, (op, state))
        elif isinstance(op, Cidr):
            self.cidrs = self.cidrs or {}
            bits = _host_bits(op)
            group = self.cidrs.setdefault((op.version, bits), {})
            group.setdefault(op.low >> bits, []).append((op, state))
        elif isinstance(op, NumericRange):
            self.ranges = self.ranges or _RangeTable()
            self.ranges.add((op, state))
        elif isinstance(op, Exists):
            self.exists = state
        else:
            self.others = self.others or []
            self.others.append((op, state))
        self._refresh()

    def _refresh(self) -> None:
        self.affix_folded = self.prefix_folded is not None or self.suffix_folded is not None
        self.exact_only = self.strings is not None and len(self.strings) == len(self.children)
        self.rare_strings = (
            self.suffixes is not None
            or self.folded is not None
            or self.affix_folded
            or self.wildcards is not None
            or self.ips is not None
            or self.cidrs is not None
        )

    def _unindex(self, op: Operator, state: T) -> None:
        if isinstance(op, Equals):
            self.strings = _pop(self.strings, op.value)
        elif isinstance(op, NumberEquals):
            self.numbers = _pop(self.numbers, op.value)
        elif isinstance(op, BoolEquals | NullEquals):
            self.scalars = _pop(self.scalars, _scalar_key(op))
        elif isinstance(op, EqualsIgnoreCase):
            self.folded = _pop(self.folded, op.folded)
        elif isinstance(op, IpEquals):
            self.ips = _pop(self.ips, (op.version, op.address))
        elif isinstance(op, Prefix):
            if self.prefixes is not None and self.prefixes.discard(op.text, state):
                self.prefixes = None
        elif isinstance(op, Suffix):
            if self.suffixes is not None and self.suffixes.discard(op.text, state):
                self.suffixes = None
        elif isinstance(op, PrefixIgnoreCase):
            if self.prefix_folded is not None and self.prefix_folded.discard(op.folded, state):
                self.prefix_folded = None
        elif isinstance(op, SuffixIgnoreCase):
            if self.suffix_folded is not None and self.suffix_folded.discard(op.folded, state):
                self.suffix_folded = None
        elif isinstance(op, Wildcard):
            if self.wildcards is not None and self.wildcards.discard(op.prefix, (op, state)):
                self.wildcards = None
        elif isinstance(op, Cidr):
            assert self.cidrs is not None
            bits = _host_bits(op)
            group = self.cidrs[(op.version, bits)]
            members = group[op.low >> bits]
            members.remove((op, state))
            if not members:
                del group[op.low >> bits]
                if not group:
                    del self.cidrs[(op.version, bits)]
            self.cidrs = self.cidrs or None
        elif isinstance(op, NumericRange):
            if self.ranges is not None and self.ranges.discard((op, state)):
                self.ranges = None
        elif isinstance(op, Exists):
            self.exists = None
        else:
            assert self.others is not None
            self.others.remove((op, state))
            self.others = self.others or None
        self._refresh()

    # -- matching ----------------------------------------------------------------------
    def collect(self, values: list[Any], out: list[T]) -> None:
        """Append to ``out`` the state of every operator that accepts one of ``values``."""
        if len(values) == 1:
            value = values[0]
            if self.exact_only:  # the common case: only exact strings on this path
                state = self.strings.get(value) if type(value) is str else None  # type: ignore[union-attr]
                if state is not None:
                    out.append(state)
                return
            self._one(value, out)
        else:
            found: list[T] = []
            for value in values:
                self._one(value, found)
            out.extend(dict.fromkeys(found))
        if self.exists is not None:
            out.append(self.exists)

    def _one(self, value: Any, out: list[T]) -> None:
        """The states of the operators accepting one leaf (``exists`` aside)."""
        kind = type(value)
        if kind is str:
            strings = self.strings
            if strings is not None:
                state = strings.get(value)
                if state is not None:
                    out.append(state)
            prefixes = self.prefixes
            if prefixes is not None:
                prefixes.prefixes_of(value, out)
            if self.rare_strings:
                self._string(value, out)
        elif kind is float or kind is int:
            if self.numbers is not None or self.ranges is not None:
                self._number(value if kind is float else as_double(value), out)
        elif kind is bool or value is None:
            if self.scalars is not None:
                state = self.scalars.get(value)
                if state is not None:
                    out.append(state)
        elif isinstance(value, str):
            self._one(str(value), out)
            return
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(as_double(value), out)
        if self.others is not None:
            out.extend(state for op, state in self.others if op.test(value))

    def _string(self, text: str, out: list[T]) -> None:
        """The less common string indexes (suffix, case-folded, wildcard, IP)."""
        if self.suffixes is not None:
            self.suffixes.suffixes_of(text, out)
        if self.folded is not None or self.affix_folded:
            folded = fold(text)
            if self.folded is not None:
                state = self.folded.get(folded)
                if state is not None:
                    out.append(state)
            if self.prefix_folded is not None:
                self.prefix_folded.prefixes_of(folded, out)
            if self.suffix_folded is not None:
                self.suffix_folded.suffixes_of(folded, out)
        if self.wildcards is not None:
            candidates: list[tuple[Wildcard, T]] = []
            self.wildcards.prefixes_of(text, candidates)
            out.extend(state for op, state in candidates if op.matches(text))
        if self.ips is not None or self.cidrs is not None:
            self._address(text, out)

    def _number(self, number: float, out: list[T]) -> None:
        if self.numbers is not None:
            state = self.numbers.get(number)
            if state is not None:
                out.append(state)
        ranges = self.ranges
        if ranges is not None and number - number == 0.0:  # finite
            regions = ranges.regions if ranges.regions is not None else ranges.build()
            bounds = ranges.bounds
            i = bisect_left(bounds, number)
            out.extend(regions[2 * i + 1 if i < len(bounds) and bounds[i] == number else 2 * i])

    def _address(self, text: str, out: list[T]) -> None:
        parsed = parse_ip(text)
        if parsed is None:
            return
        if self.ips is not None:
            state = self.ips.get(parsed)
            if state is not None:
                out.append(state)
        if self.cidrs is not None:
            version, address = parsed
            for (block_version, bits), group in self.cidrs.items():
                if block_version == version:
                    for op, state in group.get(address >> bits, ()):
                        if op.low <= address:
                            out.append(state)


def _put(table: dict[Any, T] | None, key: Any, state: T) -> dict[Any, T]:
    if table is None:
        table = {}
    table[key] = state
    return table


def _pop(table: dict[Any, T] | None, key: Any) -> dict[Any, T] | None:
    assert table is not None
    del table[key]
    return table or None


def _scalar_key(op: BoolEquals | NullEquals) -> bool | None:
    return op.value if isinstance(op, BoolEquals) else None


def _host_bits(op: Cidr) -> int:
    """How many low bits the block leaves free (its ``high`` has them all set)."""
    end = op.high + 1
    return (end & -end).bit_length() - 1
