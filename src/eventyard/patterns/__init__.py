"""The Amazon EventBridge event pattern language: validation, matching, many-rule matching.

- :func:`validate` checks a pattern and raises
  :class:`~eventyard.errors.InvalidEventPattern` with AWS's exact message;
- :func:`matches` decides whether one event matches one pattern (the reference
  semantics, brute force and simple);
- :class:`Matcher` compiles the patterns of many rules into one machine whose cost per
  event does not grow with the number of rules;
- :func:`explain` says why an event does not match a pattern (which field failed, and
  how), None when it matches;
- :func:`compile_pattern` gives the validated :class:`CompiledPattern`, which the others
  also accept.

Patterns and events are JSON text (``str``/``bytes``) or already parsed values.
``docs/patterns.md`` describes the language and the choices made where AWS is unclear.

Shared by the SDK and the server. May import: :mod:`eventyard.errors` only.
"""

from __future__ import annotations

from eventyard.patterns.explain import Explanation, Mismatch, explain
from eventyard.patterns.machine import Matcher
from eventyard.patterns.parse import (
    DEFAULT_MAX_LENGTH,
    MAX_LENGTH,
    MAX_OR_COMBINATIONS,
    CompiledPattern,
    Field,
    compile_pattern,
)
from eventyard.patterns.reference import matches, validate

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_LENGTH",
    "MAX_OR_COMBINATIONS",
    "CompiledPattern",
    "Explanation",
    "Field",
    "Matcher",
    "Mismatch",
    "compile_pattern",
    "explain",
    "matches",
    "validate",
]
