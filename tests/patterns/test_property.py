"""Property test: the compiled Matcher always agrees with the brute-force reference.

Hypothesis draws random (valid) patterns over a small vocabulary of paths and values,
random events (with nested objects, arrays and arrays of objects) and random sequences of
adds, replacements and removals; after each step every event must be matched by exactly
the rules for which :func:`matches` says yes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventyard.patterns import Matcher, matches

STRINGS = ["", "x", "xy", "yx", "X", "xY", "a*b", "10.0.0.1", "10.0.0.255", "2001:db8::1", "ß"]
NUMBERS = [0, 1, 1.0, 2.5, -3, 300, 1e9]
SCALARS = [*STRINGS, *NUMBERS, True, False, None]
WILDCARDS = ["*", "x*", "*y", "x*y", "", "\\*", "*x*", "a\\*b", "10.*"]
PATHS = ["a", "b", "c.d", "c.e", "items.k", "items.v", "items.deep.k"]


def _operator() -> st.SearchStrategy[Any]:
    nonempty = st.sampled_from([s for s in STRINGS if s])
    text = st.sampled_from(STRINGS)
    low = st.sampled_from([-5, 0, 1, 2.5])
    return st.one_of(
        st.sampled_from(SCALARS),
        text.map(lambda s: {"prefix": s}),
        text.map(lambda s: {"suffix": s}),
        text.map(lambda s: {"prefix": {"equals-ignore-case": s}}),
        text.map(lambda s: {"suffix": {"equals-ignore-case": s}}),
        text.map(lambda s: {"equals-ignore-case": s}),
        text.map(lambda s: {"exactly": s}),
        st.sampled_from(WILDCARDS).map(lambda w: {"wildcard": w}),
        st.sampled_from(["10.0.0.0/24", "10.0.0.5/30", "2001:db8::/64", "0.0.0.0/0"]).map(
            lambda c: {"cidr": c}
        ),
        st.booleans().map(lambda b: {"exists": b}),
        text.map(lambda s: {"anything-but": s}),
        st.sampled_from(NUMBERS).map(lambda n: {"anything-but": n}),
        st.lists(text, min_size=1, max_size=3).map(lambda v: {"anything-but": v}),
        st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3).map(
            lambda v: {"anything-but": v}
        ),
        st.lists(nonempty, max_size=2).map(lambda v: {"anything-but": {"prefix": v}}),
        nonempty.map(lambda s: {"anything-but": {"suffix": s}}),
        st.lists(text, max_size=2).map(lambda v: {"anything-but": {"equals-ignore-case": v}}),
        st.lists(st.sampled_from(WILDCARDS), max_size=2).map(
            lambda v: {"anything-but": {"wildcard": v}}
        ),
        st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), st.sampled_from(NUMBERS)).map(
            lambda t: {"numeric": list(t)}
        ),
        st.tuples(low, st.sampled_from([3, 300, 1e9])).map(
            lambda t: {"numeric": [">", t[0], "<=", t[1]]}
        ),
    )


def _nest(flat: dict[str, list[Any]], dotted: bool) -> dict[str, Any]:
    """Nested pattern object for dot-joined paths (or keep some keys dot-joined)."""
    out: dict[str, Any] = {}
    for path, values in flat.items():
        parts = [path] if dotted else path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = values
    return out


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    flat = draw(
        st.dictionaries(
            st.sampled_from(PATHS), st.lists(_operator(), min_size=1, max_size=3), max_size=3
        )
    )
    pattern = _nest(flat, draw(st.booleans()))
    if depth == 0 and (not pattern or draw(st.integers(0, 4)) == 0):
        pattern["$or"] = [draw(patterns(depth=1)), draw(patterns(depth=1))]
    if not pattern:
        pattern[draw(st.sampled_from(PATHS))] = [draw(_operator())]
    return pattern


def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(SCALARS), st.lists(st.sampled_from(SCALARS), max_size=3))


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(["a", "b"]), unique=True)):
        event[key] = draw(_leaf())
    if draw(st.booleans()):
        c = {k: draw(_leaf()) for k in draw(st.lists(st.sampled_from(["d", "e"]), unique=True))}
        if draw(st.booleans()):
            event["c.d"] = draw(_leaf())  # a dot-joined key in the event
        event["c"] = c if draw(st.integers(0, 5)) else [c, {"d": draw(_leaf())}]
    if draw(st.booleans()):
        item = st.fixed_dictionaries(
            {},
            optional={
                "k": _leaf(),
                "v": _leaf(),
                "deep": st.fixed_dictionaries({}, optional={"k": _leaf()}),
            },
        )
        event["items"] = draw(st.lists(item, max_size=3))
    return event


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["r1", "r2", "r3", "r4"]), st.none() | patterns()),
        min_size=1,
        max_size=8,
    ),
    sample=st.lists(events(), min_size=1, max_size=4),
)
def test_matcher_agrees_with_brute_force_matches(
    steps: list[tuple[str, dict[str, Any] | None]], sample: list[dict[str, Any]]
) -> None:
    matcher = Matcher()
    rules: dict[str, dict[str, Any]] = {}
    for rule_id, pattern in steps:
        if pattern is None:
            matcher.remove(rule_id)
            rules.pop(rule_id, None)
        else:
            matcher.add(rule_id, pattern)
            rules[rule_id] = pattern
        for event in sample:
            expected = sorted(rid for rid, p in rules.items() if matches(p, event))
            assert matcher.match(event) == expected, (rules, event)
    for rule_id in list(rules):
        matcher.remove(rule_id)
    assert len(matcher) == 0
    assert not matcher._root.edges and not matcher._root.entries  # pruned completely


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rules=st.lists(patterns(), min_size=5, max_size=30),
    removed=st.sets(st.integers(0, 29), max_size=10),
    sample=st.lists(events(), min_size=1, max_size=5),
)
def test_a_matcher_with_many_shared_rules_agrees_with_brute_force_matches(
    rules: list[dict[str, Any]], removed: set[int], sample: list[dict[str, Any]]
) -> None:
    matcher = Matcher()
    for n, pattern in enumerate(rules):
        matcher.add(f"r{n:02}", pattern)
    for n in removed:
        matcher.remove(f"r{n:02}")
    live = {f"r{n:02}": p for n, p in enumerate(rules) if n not in removed}
    for event in sample:
        expected = sorted(rid for rid, p in live.items() if matches(p, event))
        assert matcher.match(event) == expected, event
