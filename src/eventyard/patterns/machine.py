"""Many patterns compiled into one machine: :class:`Matcher`.

Matching rule by rule costs O(rules) per event. The machine instead shares work between
rules the way event-ruler does: every branch of every pattern becomes a path through a
tree of states, one step per field, and an event walks only the transitions its own
leaves take.

- A branch's fields with operators become *steps*, most selective first: exact values,
  then prefix/suffix/wildcard/cidr, then numeric ranges, then ``exists``/``anything-but``
  (ties broken by path so that identical fields of different rules share states). A
  field's ORed operators fan out to one transition each, so rules whose detail-type lists
  both contain ``"X"`` share the state reached through ``"X"``; fan-out stops multiplying
  past :data:`EXPANSION_LIMIT` paths per branch, and the remaining fields are checked at
  the end instead.
- Each state keeps a :class:`~eventyard.patterns.index.PathIndex` per path, which turns the
  event's leaves at that path into next states with dict look-ups, bisects and prefix
  tables (never a scan over rules).
- Where a branch ends, an *entry* names its rule. Reaching an entry proves the branch's
  step fields each accept some leaf; the entry then checks what the steps could not:
  fields left out of the steps, ``exists: false``, and, when the event holds arrays of
  objects on the branch's paths, array consistency (by the reference search).

So the work per event depends on the event's leaves and on the rules that (partly)
match it, not on how many rules there are. Adding a rule inserts its branches; removing
it deletes them and prunes the states left empty; nothing is ever rebuilt wholesale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eventyard.patterns.flatten import Members, Values, collect, parse_event
from eventyard.patterns.index import PathIndex
from eventyard.patterns.operators import (
    BoolEquals,
    Cidr,
    Equals,
    EqualsIgnoreCase,
    IpEquals,
    NullEquals,
    NumberEquals,
    NumericRange,
    Prefix,
    PrefixIgnoreCase,
    Suffix,
    SuffixIgnoreCase,
    Wildcard,
)
from eventyard.patterns.parse import MAX_LENGTH, CompiledPattern, Field, compile_pattern, path_order
from eventyard.patterns.reference import branch_matches

__all__ = ["EXPANSION_LIMIT", "Matcher"]

EXPANSION_LIMIT = 256
"""Most paths one branch may fan out into; further fields are checked at its entry."""

_POINT = (Equals, IpEquals, NumberEquals, BoolEquals, NullEquals, EqualsIgnoreCase)
_STRING = (*_POINT, Prefix, Suffix, PrefixIgnoreCase, SuffixIgnoreCase, Wildcard, Cidr)
_BOUNDED = (*_STRING, NumericRange)


class _State:
    """A machine state: transitions per path, and the branches that end here.

    ``plain`` holds the rule ids of the plain entries (matched on arrival unless the
    event has arrays of objects) and ``checked`` the entries needing a check, both kept
    in step with ``entries`` so that matching spends no time sorting them out.
    """

    __slots__ = ("checked", "edges", "entries", "plain")

    def __init__(self) -> None:
        self.edges: dict[str, PathIndex[_State]] = {}
        self.entries: list[_Entry] = []
        self.plain: tuple[str, ...] = ()
        self.checked: tuple[_Entry, ...] = ()

    def set_entries(self, entries: list[_Entry]) -> None:
        self.entries = entries
        self.plain = tuple(entry.rule_id for entry in entries if entry.plain)
        self.checked = tuple(entry for entry in entries if not entry.plain)


@dataclass(slots=True, frozen=True, eq=False)
class _Entry:
    """One branch of one rule, where its steps end.

    Attributes:
        rule_id: the rule to report.
        fields: the whole branch, in path order (for the array-consistent search).
        tail: fields with operators that are not steps (each needs an accepting leaf).
        absent: fields with ``exists: false`` (a leaf, if any, must be accepted).
        paths: every path of the branch.
        plain: no tail and no absent fields: reaching the entry is a match (unless the
            event has arrays of objects on these paths).
    """

    rule_id: str
    fields: tuple[Field, ...]
    tail: tuple[Field, ...]
    absent: tuple[Field, ...]
    paths: frozenset[str]
    plain: bool


@dataclass(slots=True, frozen=True)
class _Rule:
    pattern: CompiledPattern
    branches: tuple[tuple[_Entry, tuple[Field, ...]], ...]  # entry and its step fields
    paths: frozenset[str]


def _rank(field: Field) -> int:
    operators = field.operators
    if all(isinstance(op, _POINT) for op in operators):
        return 0
    if all(isinstance(op, _STRING) for op in operators):
        return 1
    if all(isinstance(op, _BOUNDED) for op in operators):
        return 2
    return 3


def _plan(rule_id: str, branch: tuple[Field, ...]) -> tuple[_Entry, tuple[Field, ...]]:
    """Choose a branch's steps and build its entry."""
    positive = sorted(
        (field for field in branch if not field.absent),
        key=lambda field: (_rank(field), path_order(field.path)),
    )
    steps: list[Field] = []
    tail: list[Field] = []
    fan_out = 1
    for field in positive:
        width = len(field.operators)
        if not steps or fan_out * width <= EXPANSION_LIMIT:
            steps.append(field)
            fan_out *= width
        else:
            tail.append(field)
    absent = tuple(field for field in branch if field.absent)
    entry = _Entry(
        rule_id,
        branch,
        tuple(tail),
        absent,
        frozenset(field.path for field in branch),
        not tail and not absent,
    )
    return entry, tuple(steps)


def _insert(state: _State, steps: tuple[Field, ...], depth: int, entry: _Entry) -> None:
    if depth == len(steps):
        state.set_entries([*state.entries, entry])
        return
    field = steps[depth]
    index = state.edges.get(field.path)
    if index is None:
        index = state.edges[field.path] = PathIndex()
    for operator in field.operators:
        _insert(index.child(operator, _State), steps, depth + 1, entry)


def _delete(state: _State, steps: tuple[Field, ...], depth: int, entry: _Entry) -> bool:
    """Remove ``entry`` below ``state``; True when ``state`` is left empty."""
    if depth == len(steps):
        state.set_entries([e for e in state.entries if e is not entry])
    else:
        field = steps[depth]
        index = state.edges[field.path]
        for operator in field.operators:
            child = index.children.get(operator)
            if child is not None and _delete(child, steps, depth + 1, entry):
                index.discard(operator)
        if not index:
            del state.edges[field.path]
    return not state.edges and not state.entries


def _accepts(field: Field, values: list[Any]) -> bool:
    return any(op.test(value) for value in values for op in field.operators)


def _verify(entry: _Entry, values: Values, members: Members | None) -> bool:
    """Whether a reached entry's branch really matches the event.

    Array consistency can only fail when two of the branch's paths have leaves inside
    elements of arrays; only then is the (slower) reference search needed.
    """
    if members is not None and len(entry.paths.intersection(members)) > 1:
        leaves = {
            path: list(zip(found, members.get(path) or [()] * len(found), strict=True))
            for path in entry.paths
            if (found := values.get(path)) is not None
        }
        return branch_matches(entry.fields, leaves)
    if entry.plain:
        return True
    for field in entry.tail:
        found = values.get(field.path)
        if found is None or not _accepts(field, found):
            return False
    for field in entry.absent:
        found = values.get(field.path)
        if found is not None and not _accepts(field, found):
            return False
    return True


class Matcher:
    """Event patterns of many rules, compiled into one machine.

    ``match`` agrees with :func:`~eventyard.patterns.matches` for every rule, and its cost
    depends on the event and on the rules that (partly) match it, not on how many rules
    there are. Not thread-safe: do not change rules while another thread matches.

    Args:
        max_pattern_length: the length limit ``add`` enforces. Defaults to 4096, the most
            AWS ever accepts; the per-account quota (2048 by default) is the API's to check.
    """

    def __init__(self, *, max_pattern_length: int = MAX_LENGTH) -> None:
        if not 1 <= max_pattern_length <= MAX_LENGTH:
            raise ValueError(f"max_pattern_length must be between 1 and {MAX_LENGTH}")
        self._max_length = max_pattern_length
        self._root = _State()
        self._rules: dict[str, _Rule] = {}
        self._path_refs: dict[str, int] = {}
        self._wanted: dict[str, int] | None = {}

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def rule_ids(self) -> list[str]:
        """The ids of all rules, in the order they were added."""
        return list(self._rules)

    def add(self, rule_id: str, pattern: Any) -> None:
        """Add a rule, or replace the rule with the same id.

        Args:
            rule_id: the id ``match`` reports.
            pattern: JSON text, a parsed pattern, or a ``CompiledPattern``.

        Raises:
            InvalidEventPattern: the pattern is not valid (the rules are left unchanged).
        """
        compiled = compile_pattern(pattern, max_length=self._max_length)
        if rule_id in self._rules:
            self.remove(rule_id)
        branches = []
        for branch in compiled.branches:
            entry, steps = _plan(rule_id, branch)
            _insert(self._root, steps, 0, entry)
            branches.append((entry, steps))
        paths = frozenset(field.path for branch in compiled.branches for field in branch)
        for path in paths:
            self._path_refs[path] = self._path_refs.get(path, 0) + 1
        self._wanted = None
        self._rules[rule_id] = _Rule(compiled, tuple(branches), paths)

    def remove(self, rule_id: str) -> None:
        """Remove a rule; unknown ids are ignored."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return
        for entry, steps in rule.branches:
            _delete(self._root, steps, 0, entry)
        for path in rule.paths:
            left = self._path_refs[path] - 1
            if left:
                self._path_refs[path] = left
            else:
                del self._path_refs[path]
        self._wanted = None

    def pattern(self, rule_id: str) -> CompiledPattern:
        """The compiled pattern of a rule.

        Raises:
            KeyError: no rule has this id.
        """
        return self._rules[rule_id].pattern

    def _build_wanted(self) -> dict[str, int]:
        wanted: dict[str, int] = {}
        for path in self._path_refs:
            wanted[path] = wanted.get(path, 0) | 1
            parts = path.split(".")
            for end in range(1, len(parts)):
                parent = ".".join(parts[:end])
                wanted[parent] = wanted.get(parent, 0) | 2
        self._wanted = wanted
        return wanted

    def match(self, event: Any) -> list[str]:
        """The ids of the rules whose pattern matches ``event``, sorted.

        Args:
            event: a parsed event (a dict; the fast path) or JSON text.

        Raises:
            ValidationError: the event is not a JSON object.
        """
        if type(event) is not dict:
            event = parse_event(event)
        wanted = self._wanted if self._wanted is not None else self._build_wanted()
        values, members = collect(event, wanted)
        arrays = members is not None and len(members) > 1
        found: set[str] = set()
        pending = [self._root]
        pop, push, get = pending.pop, pending.append, values.get
        while pending:
            state = pop()
            if state.entries:
                if not arrays:
                    found.update(state.plain)
                    entries: Iterable[_Entry] = state.checked
                else:
                    entries = state.entries
                for entry in entries:
                    if entry.rule_id not in found and _verify(entry, values, members):
                        found.add(entry.rule_id)
            edges = state.edges
            if not edges:
                continue
            if len(edges) == 1 or len(edges) <= len(values):
                for path, index in edges.items():
                    leaves = get(path)
                    if leaves is None:
                        continue
                    if index.exact_only and len(leaves) == 1 and type(leaves[0]) is str:
                        # inlined PathIndex.collect: one string leaf, only exact strings here
                        nxt = index.strings.get(leaves[0])  # type: ignore[union-attr]
                        if nxt is not None:
                            push(nxt)
                    else:
                        index.collect(leaves, pending)
            else:
                for path, leaves in values.items():
                    found_index = edges.get(path)
                    if found_index is not None:
                        found_index.collect(leaves, pending)
        return sorted(found)
