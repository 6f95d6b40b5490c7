"""Benchmark: events per second through the compiled Matcher with 10, 1,000 and 10,000 rules.

Rules are generated to look like a real bus: exact ``source`` and ``detail-type`` (some
with lists), prefix detail-types, numeric ranges, anything-but lists, ``exists``, suffix
and equals-ignore-case, a prefix on a field inside an array of objects, and a few ``$or``.
Events are ~0.5 KB of JSON and are parsed (orjson) inside the timed loop, as the router
would. Each rate is the median of several runs, taken round-robin over the three rule
counts so that load from other processes affects them alike; the brute-force rate (a loop calling
:func:`eventyard.patterns.matches` for every rule) is shown at 1,000 rules for comparison.

Run: ``.venv/bin/python bench/matcher.py`` (about 30-60 s). Exits 1 if the done-when
targets of issue #2 are missed: >= 20,000 events/s at 10,000 rules, and a 10,000-rule rate
of at least 25 % of the 10-rule rate.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from typing import Any

import orjson

from eventyard.patterns import Matcher, compile_pattern, matches

__all__ = ["detail_types", "main", "make_events", "make_rules"]

RULE_COUNTS = (10, 1_000, 10_000)
EVENTS = 3_000
RUNS = 11
BRUTE_FORCE_RULES = 1_000
BRUTE_FORCE_EVENTS = 60

TEAMS = ["orders", "billing", "shipping", "users", "catalog", "search", "payments", "fraud"]
SERVICES = ["api", "worker", "scheduler", "gateway", "ledger", "importer", "notifier"]
SOURCES = (
    [f"com.example.{team}.{service}" for team in TEAMS for service in SERVICES]
    + [
        f"aws.{service}"
        for service in ("ec2", "s3", "iam", "ecs", "lambda", "rds", "sqs", "sns", "kms", "glue")
    ]
    + [f"partner.saas{n}" for n in range(40)]
)
NOUNS = ["Order", "Invoice", "Shipment", "User", "Instance", "Bucket", "Task", "Payment"]
VERBS = ["Created", "Updated", "Deleted", "Failed", "Approved", "Cancelled", "Started"]
STATUSES = ["pending", "active", "stopped", "failed", "archived", "initializing", "running"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
EXTENSIONS = [".png", ".jpg", ".csv", ".json", ".parquet", ".txt"]
SKUS = ["SKU-A", "SKU-B", "BOOK-", "FOOD-", "TOY-", "GIFT-", "PART-"]


def detail_types(source: str) -> list[str]:
    """The detail-types a source emits (each source has its own dozen)."""
    rng = random.Random(source)
    return [f"{noun} {verb}" for noun in rng.sample(NOUNS, 3) for verb in rng.sample(VERBS, 4)]


def _some(rng: random.Random, pool: list[str], most: int = 3) -> list[str]:
    return rng.sample(pool, rng.randint(2, most)) if rng.random() < 0.3 else [rng.choice(pool)]


def _rule(rng: random.Random) -> dict[str, Any]:
    sources = _some(rng, SOURCES, 2) if rng.random() < 0.3 else [rng.choice(SOURCES)]
    types = detail_types(sources[0])
    kind = rng.random()
    if kind < 0.30:
        return {"source": sources, "detail-type": _some(rng, types)}
    if kind < 0.42:
        return {"source": sources, "detail-type": [{"prefix": rng.choice(types).split()[0]}]}
    if kind < 0.57:
        low = rng.randrange(0, 900, 10)
        return {
            "source": sources,
            "detail-type": _some(rng, types),
            "detail": {"amount": [{"numeric": [">=", low, "<", low + rng.randrange(10, 500)]}]},
        }
    if kind < 0.67:
        return {
            "source": sources,
            "detail-type": [rng.choice(types)],
            "detail": {"status": [{"anything-but": rng.sample(STATUSES, 2)}]},
        }
    if kind < 0.73:
        return {
            "source": sources,
            "detail-type": _some(rng, types),
            "detail": {"customer": {"id": [{"exists": True}]}, "coupon": [{"exists": False}]},
        }
    if kind < 0.80:
        return {
            "source": sources,
            "detail-type": [{"prefix": rng.choice(types).split()[0]}],
            "detail": {
                "file": [{"suffix": rng.choice(EXTENSIONS)}],
                "region": [{"equals-ignore-case": rng.choice(REGIONS).upper()}],
            },
        }
    if kind < 0.95:
        return {
            "source": sources,
            "detail-type": _some(rng, types),
            "detail": {"items": {"sku": [{"prefix": rng.choice(SKUS)}]}},
        }
    return {
        "source": sources,
        "$or": [
            {"detail": {"amount": [{"numeric": [">", rng.randrange(100, 1000)]}]}},
            {"detail-type": [rng.choice(types)], "detail": {"priority": ["high", "urgent"]}},
        ],
    }


def make_rules(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` realistic rule patterns (deterministic for a seed)."""
    rng = random.Random(seed)
    return [_rule(rng) for _ in range(count)]


def make_events(count: int, seed: int = 11) -> list[bytes]:
    """``count`` realistic events of about 0.5 KB, as JSON bytes."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        source = rng.choice(SOURCES)
        detail: dict[str, Any] = {
            "status": rng.choice(STATUSES),
            "amount": round(rng.uniform(0, 1200), 2),
            "region": rng.choice(REGIONS),
            "file": f"reports/{n}/data{rng.choice(EXTENSIONS)}",
            "priority": rng.choice(["low", "normal", "high"]),
            "items": [
                {"sku": rng.choice(SKUS) + str(rng.randrange(1000)), "qty": rng.randint(1, 9)}
                for _ in range(rng.randint(1, 3))
            ],
            "note": "x" * rng.randint(20, 60),
        }
        if rng.random() < 0.7:
            detail["customer"] = {"id": f"c-{rng.randrange(10**6)}", "tier": "gold"}
        if rng.random() < 0.2:
            detail["coupon"] = "SAVE10"
        event = {
            "version": "0",
            "id": f"6a7e8feb-b491-4cf7-a9f1-{n:012d}",
            "detail-type": rng.choice(detail_types(source)),
            "source": source,
            "account": "111122223333",
            "time": "2017-12-22T18:43:48Z",
            "region": rng.choice(REGIONS),
            "resources": [f"arn:aws:ec2:us-west-1:123456789012:instance/i-{n:017x}"],
            "detail": detail,
        }
        events.append(orjson.dumps(event))
    return events


def _one_pass(matcher: Matcher, events: list[bytes]) -> tuple[float, int]:
    """Seconds to parse and match every event once, and the number of matches."""
    total = 0
    start = time.perf_counter()
    for data in events:
        total += len(matcher.match(orjson.loads(data)))
    return time.perf_counter() - start, total


def _brute_force_rate(rules: list[dict[str, Any]], events: list[bytes]) -> float:
    compiled = [compile_pattern(rule) for rule in rules]
    start = time.perf_counter()
    for data in events:
        event = orjson.loads(data)
        _ = [n for n, pattern in enumerate(compiled) if matches(pattern, event)]
    return len(events) / (time.perf_counter() - start)


def main() -> int:
    events = make_events(EVENTS)
    size = statistics.mean(len(e) for e in events)
    print(f"events: {len(events)} of {size:.0f} bytes on average; median of {RUNS} runs\n")
    matchers: dict[int, Matcher] = {}
    builds: dict[int, float] = {}
    for count in RULE_COUNTS:
        rules = make_rules(count)
        start = time.perf_counter()
        matcher = Matcher()
        for n, rule in enumerate(rules):
            matcher.add(f"rule-{n}", rule)
        builds[count] = time.perf_counter() - start
        matchers[count] = matcher
    # Round-robin runs, so that load from other processes hits every size alike.
    seconds: dict[int, list[float]] = {count: [] for count in RULE_COUNTS}
    matched: dict[int, int] = {}
    for _ in range(RUNS):
        for count in RULE_COUNTS:
            elapsed, matched[count] = _one_pass(matchers[count], events)
            seconds[count].append(elapsed)
    print(f"{'rules':>8} {'events/s':>10} {'us/event':>9} {'matches/event':>14} {'build s':>8}")
    rates: dict[int, float] = {}
    for count in RULE_COUNTS:
        rate = rates[count] = len(events) / statistics.median(seconds[count])
        per_event = matched[count] / len(events)
        print(
            f"{count:>8,} {rate:>10,.0f} {1e6 / rate:>9.1f} {per_event:>14.2f} "
            f"{builds[count]:>8.2f}"
        )
    brute = _brute_force_rate(make_rules(BRUTE_FORCE_RULES), events[:BRUTE_FORCE_EVENTS])
    print(
        f"\nbrute force (matches() per rule) at {BRUTE_FORCE_RULES:,} rules: {brute:,.0f} events/s"
    )
    big, small = rates[RULE_COUNTS[-1]], rates[RULE_COUNTS[0]]
    ok_rate = big >= 20_000
    ok_ratio = big >= 0.25 * small
    print(f"\n{RULE_COUNTS[-1]:,} rules >= 20,000 events/s: {'yes' if ok_rate else 'NO'}")
    print(f"{RULE_COUNTS[-1]:,}-rule rate >= 25% of {RULE_COUNTS[0]}-rule rate: ", end="")
    print(f"{'yes' if ok_ratio else 'NO'} ({big / small:.0%})")
    return 0 if ok_rate and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
