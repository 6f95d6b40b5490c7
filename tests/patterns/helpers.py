"""Assertion helper shared by the pattern tests: both engines must give the same answer."""

from __future__ import annotations

from typing import Any

from eventyard.patterns import Matcher, matches

__all__ = ["assert_match", "assert_no_match"]


def _both(pattern: Any, event: Any) -> tuple[bool, bool]:
    matcher = Matcher()
    matcher.add("rule", pattern)
    return matches(pattern, event), matcher.match(event) == ["rule"]


def assert_match(pattern: Any, event: Any) -> None:
    """``event`` matches ``pattern`` by :func:`matches` and by a :class:`Matcher`."""
    assert _both(pattern, event) == (True, True)


def assert_no_match(pattern: Any, event: Any) -> None:
    """``event`` matches ``pattern`` by neither engine."""
    assert _both(pattern, event) == (False, False)
