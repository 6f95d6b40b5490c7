"""Wildcard values: parsing with event-ruler's errors, matching, and the complexity guard.

A wildcard value is literal text in which ``*`` spans zero or more characters. ``\\*`` is a
literal asterisk and ``\\\\`` a literal backslash; a backslash before anything else, and two
``*`` in a row, are errors whose position is event-ruler's: the byte offset inside the
UTF-8 value with a ``"`` prepended (``Consecutive wildcard characters at pos 26``).

AWS also rejects wildcard patterns whose matching would be too non-deterministic
(``Rule is too complex - …``). event-ruler measures this with its
``MachineComplexityEvaluator``: the worst-case number of automaton transitions that are
live at once for some input, counted over all wildcard patterns of one field. We model
that automaton directly (one state per literal character, a self-loop where a ``*`` is,
a transition freshly entering a ``*`` state counting twice) and reject a field whose
worst case reaches :data:`COMPLEXITY_LIMIT`. The model reproduces every AWS-recorded data
point: ``*:*:*:*:*:event-bus/*`` scores 11 and is rejected;
``arn:aws:events:us-east-1:*:event-bus/*`` scores 3 and ``/Users/*/dir/dir/dir/dir/dir/doc.txt``
scores 7, both accepted; three ``*:stack/<name>/*`` values on one field score 9 (accepted by
AWS) and four score 12 (rejected by AWS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eventyard.errors import InvalidEventPattern
from eventyard.patterns.operators import Wildcard

__all__ = [
    "COMPLEXITY_LIMIT",
    "TOO_COMPLEX",
    "compile_wildcard",
    "complexity",
    "wildcard_segments",
]

COMPLEXITY_LIMIT = 10
"""A field whose wildcard complexity reaches this is rejected."""

TOO_COMPLEX = (
    "Rule is too complex - try using fewer wildcard characters or fewer repeating "
    "character sequences after a wildcard character"
)

_MAX_EXPLORED = 20_000
"""Bound on automaton state sets explored per field; patterns that need more are rejected."""


def wildcard_segments(text: str) -> list[str]:
    """Split a wildcard value into its literal segments (``*`` sits between segments).

    Raises:
        InvalidEventPattern: consecutive wildcards or an invalid escape, with event-ruler's
            byte position.
    """
    raw = ('"' + text + '"').encode("utf-8", "surrogatepass")
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x2A and i + 1 < len(raw) and raw[i + 1] == 0x2A:
            raise InvalidEventPattern.because(f"Consecutive wildcard characters at pos {i}")
        if byte == 0x5C:
            if i + 1 < len(raw) and raw[i + 1] in (0x2A, 0x5C):
                i += 2
                continue
            raise InvalidEventPattern.because(f"Invalid escape character at pos {i}")
        i += 1
    segments: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars))
        elif char == "*":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def compile_wildcard(text: str) -> Wildcard:
    """The :class:`Wildcard` operator for ``text`` (validated as :func:`wildcard_segments`)."""
    return Wildcard(text, tuple(wildcard_segments(text)))


def _automaton(segments: Sequence[str]) -> tuple[str, list[bool]]:
    """Literal characters and, per state, whether a ``*`` loops on it."""
    literals = "".join(segments)
    loops = [False] * (len(literals) + 1)
    position = 0
    for segment in segments[:-1]:
        position += len(segment)
        loops[position] = True
    return literals, loops


def complexity(patterns: Iterable[Wildcard], limit: int = COMPLEXITY_LIMIT) -> int:
    """Worst-case live transitions for the wildcard patterns of one field, capped at ``limit``.

    Explores the subset automaton over the characters the patterns use plus one character
    they do not; stops as soon as ``limit`` is reached.
    """
    machines = [_automaton(wildcard_segments(p.text)) for p in patterns]
    if not machines:
        return 0
    alphabet = {c for literals, _ in machines for c in literals}
    alphabet.add("\x00" if "\x00" not in alphabet else "\uffff")
    start = tuple(frozenset({0}) for _ in machines)
    seen = {start}
    todo = [start]
    worst = 0
    while todo:
        states = todo.pop()
        for char in alphabet:
            nxt: list[frozenset[int]] = []
            live = 0
            for (literals, loops), current in zip(machines, states, strict=True):
                reached: set[int] = set()
                for k in current:
                    if loops[k]:
                        reached.add(k)
                        live += 1
                    if k < len(literals) and literals[k] == char:
                        reached.add(k + 1)
                        live += 1
                        if loops[k + 1] and k + 1 not in current:
                            live += 1
                nxt.append(frozenset(reached))
            worst = max(worst, live)
            if worst >= limit:
                return limit
            key = tuple(nxt)
            if key not in seen and any(key):
                if len(seen) >= _MAX_EXPLORED:
                    return limit
                seen.add(key)
                todo.append(key)
    return worst
