"""Events as flattened leaves: dot-joined paths, values, and array membership.

Patterns match an event's *leaves* (strings, numbers, booleans, ``null``) by their
dot-joined path: ``{"detail": {"state": "x"}}`` and ``{"detail.state": "x"}`` both have
the leaf ``detail.state = "x"``. Arrays add no path segment: every element contributes
leaves under the array's own path, and an empty array or object contributes nothing.

For array-consistent matching each leaf also carries its *membership*: for every array
whose element (an object or an array) contains the leaf, the array's id and the element's
index. Two leaves are consistent when they agree on the index of every array they share
(:func:`merge`), so ``firstName`` from one employee and ``lastName`` from another are not.
Scalars directly inside an array get no entry for that array, as in event-ruler.

:func:`flatten` yields every leaf (used by the reference matcher); :func:`collect` only the
leaves under paths some rule uses, without membership unless the event needs it (used by
the compiled machine on every event, so it is written for speed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from eventyard.errors import ValidationError

__all__ = [
    "INVALID_EVENT",
    "Leaves",
    "Members",
    "Membership",
    "Values",
    "collect",
    "flatten",
    "merge",
    "parse_event",
]

Membership = tuple[tuple[int, int], ...]
"""``(array id, element index)`` pairs, outermost array first."""

Leaves = dict[str, list[tuple[Any, Membership]]]
"""Every leaf of an event by path, with its membership."""

Values = dict[str, list[Any]]
"""Leaf values by path."""

Members = dict[str, list[Membership]]
"""Memberships by path, parallel to :data:`Values` (only paths that have any)."""

INVALID_EVENT = "Parameter Event is not valid."

_LEAF = 1
_PARENT = 2


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_event(event: Any) -> dict[str, Any]:
    """The event as a dict; JSON text is parsed (numbers beyond a double are accepted).

    Raises:
        ValidationError: the event is not a JSON object (AWS's ``Parameter Event is not valid.``).
    """
    if type(event) is dict:
        return event
    if isinstance(event, Mapping):
        return dict(event)
    if isinstance(event, str | bytes | bytearray | memoryview):
        data = bytes(event) if isinstance(event, memoryview) else event
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            try:
                parsed = json.loads(data, parse_constant=_reject_constant)
            except (ValueError, TypeError):
                raise ValidationError(INVALID_EVENT) from None
        if isinstance(parsed, dict):
            return parsed
    raise ValidationError(INVALID_EVENT)


def merge(left: Membership, right: Membership) -> Membership | None:
    """The union of two consistent memberships, None if they disagree on an array."""
    if not left:
        return right
    if not right:
        return left
    seen = dict(left)
    for array, index in right:
        other = seen.get(array)
        if other is None:
            seen[array] = index
        elif other != index:
            return None
    return tuple(seen.items())


class _Everything(dict[str, int]):
    """A ``wanted`` mapping that wants every path (for :func:`flatten`)."""

    def get(self, key: str, default: Any = None) -> int:
        return _LEAF | _PARENT


_EVERYTHING = _Everything()


def flatten(event: Mapping[str, Any]) -> Leaves:
    """Every leaf of ``event`` with its membership, by path."""
    values, members = collect(event, _EVERYTHING)
    found = members or {}
    return {
        path: list(zip(leaves, found.get(path) or [()] * len(leaves), strict=True))
        for path, leaves in values.items()
    }


def _note(members: Members | None, values: Values, path: str, membership: Membership) -> Members:
    """Record a non-empty membership for the leaf just appended at ``path``."""
    if members is None:
        members = {}
    found = members.get(path)
    if found is None:
        found = members[path] = [()] * (len(values[path]) - 1)
    found.append(membership)
    return members


def collect(event: Mapping[str, Any], wanted: Mapping[str, int]) -> tuple[Values, Members | None]:
    """The leaf values of ``event`` under wanted paths, and memberships where there are any.

    Args:
        event: the parsed event.
        wanted: path -> flags; bit 1: the path's leaves are used, bit 2: paths below it are.

    Returns:
        ``(values, members)``; ``members`` lists only paths with a leaf whose membership is
        not empty (None when there is no such path).
    """
    values: Values = {}
    members: Members | None = None
    arrays = 0
    stack: list[tuple[Mapping[str, Any], str, Membership]] = [(event, "", ())]
    while stack:
        node, prefix, membership = stack.pop()
        for key, value in node.items():
            path = prefix + key
            flag = wanted.get(path)
            if flag is None:
                continue
            kind = type(value)
            if kind is dict:
                if flag & _PARENT:
                    stack.append((value, path + ".", membership))
                continue
            if kind is list or (kind is not str and isinstance(value, list | tuple)):
                lists = [(value, membership)]
                while lists:
                    items, outer = lists.pop()
                    array = arrays
                    arrays += 1
                    for index, item in enumerate(items):
                        if isinstance(item, Mapping):
                            if flag & _PARENT:
                                stack.append((item, path + ".", (*outer, (array, index))))
                        elif isinstance(item, list | tuple):
                            lists.append((item, (*outer, (array, index))))
                        elif flag & _LEAF:
                            found = values.get(path)
                            if found is None:
                                values[path] = [item]
                            else:
                                found.append(item)
                            if outer:
                                members = _note(members, values, path, outer)
                            elif members is not None and path in members:
                                members[path].append(())
                continue
            if kind is not str and isinstance(value, Mapping):
                if flag & _PARENT:
                    stack.append((value, path + ".", membership))
            elif flag & _LEAF:
                found = values.get(path)
                if found is None:
                    values[path] = [value]
                else:
                    found.append(value)
                if membership:
                    members = _note(members, values, path, membership)
                elif members is not None and path in members:
                    members[path].append(())
    return values, members
