"""The reference semantics: does one pattern match one event, decided by brute force.

This module is deliberately simple; the compiled :class:`~eventyard.patterns.Matcher`
must always agree with it (a property test checks that).

A pattern matches when one of its branches does. A branch's fields are taken in
event-ruler's order (by path) and the search looks for one leaf per field such that all
chosen leaves are array-consistent:

- a field with operators holds through a leaf at its path, consistent with the leaves
  chosen so far, that one of its operators accepts;
- a field with ``{"exists": false}`` also holds when no leaf at its path is consistent
  with the leaves chosen so far (so it holds when the path is missing altogether, or is
  an object or an empty array, never a leaf).

Taking fields in path order and judging absence against the leaves chosen before is how
event-ruler's array-consistent finder (``ACFinder``) behaves; ``docs/patterns.md`` shows
what it means for ``exists: false`` inside arrays of objects.
"""

from __future__ import annotations

from typing import Any

from eventyard.patterns.flatten import Leaves, Membership, flatten, merge, parse_event
from eventyard.patterns.parse import DEFAULT_MAX_LENGTH, Field, compile_pattern

__all__ = ["branch_matches", "matches", "validate"]


def branch_matches(fields: tuple[Field, ...], leaves: Leaves) -> bool:
    """Whether one branch (fields in path order) matches the flattened event."""

    def search(index: int, chosen: Membership) -> bool:
        if index == len(fields):
            return True
        field = fields[index]
        candidates = leaves.get(field.path, [])
        for value, membership in candidates:
            merged = merge(chosen, membership)
            if (
                merged is not None
                and any(operator.test(value) for operator in field.operators)
                and search(index + 1, merged)
            ):
                return True
        if field.absent and all(merge(chosen, m) is None for _, m in candidates):
            return search(index + 1, chosen)
        return False

    return search(0, ())


def matches(pattern: Any, event: Any, *, max_length: int = DEFAULT_MAX_LENGTH) -> bool:
    """Whether ``event`` matches ``pattern``, exactly as Amazon EventBridge decides.

    Args:
        pattern: JSON text (``str``/``bytes``), a parsed pattern, or a ``CompiledPattern``.
        event: JSON text or a parsed object.
        max_length: the pattern length limit (default AWS's 2048; at most 4096).

    Returns:
        True when the event matches.

    Raises:
        InvalidEventPattern: the pattern is not valid.
        ValidationError: the event is not a JSON object.
    """
    compiled = compile_pattern(pattern, max_length=max_length)
    leaves = flatten(parse_event(event))
    return any(branch_matches(branch, leaves) for branch in compiled.branches)


def validate(pattern: Any, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
    """Check an event pattern as AWS does.

    Args:
        pattern: JSON text (``str``/``bytes``) or a parsed pattern.
        max_length: the pattern length limit (default AWS's 2048; at most 4096).

    Raises:
        InvalidEventPattern: the pattern is not valid; ``message`` is AWS's first line,
            ``Event pattern is not valid. Reason: …``.
    """
    compile_pattern(pattern, max_length=max_length)
