"""Fuzz run: N generated requests against the real app; 0 answers of 5xx, 0 crashes, 0 hangs.

The generators and the stateful machine of the fuzz suite (``tests/fuzz``) drive the
real ASGI app (router, delivery engine, EventBridge and SQS APIs over a SQLite store in a
temporary directory) in this process, without sockets: requests built from botocore's
models of ``events`` and ``sqs`` with edge values, envelope garbage, and working paths
(bus, rule, targets, matching PutEvents, receives and settles) with fuzzed contents.
Every answer is checked as in the suite: status < 500, AWS-shaped JSON errors (SQS's
query-compatible flavour for SQS), no exception out of the app, an answer within
``--timeout`` seconds. Problems are counted, not fatal; the first few are printed with
their request. Afterwards ``/readyz`` must still answer ready.

Prints requests by operation, the status histogram, error codes, 5xx / crashes / hangs,
elapsed time, requests per second and RSS before and after.

Run: ``.venv/bin/python bench/fuzz.py`` (default 20,000 requests, about a minute);
``--requests 100000`` for the documented full run (docs/fuzzing.md). Exits 1 on any
problem.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz.harness import InProcessServer, Tally, rss_bytes
from tests.fuzz.machine import ApiMachine

STEPS = 50  # requests per generated sequence
ROUND = 20  # sequences per hypothesis run


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def run(requests: int, seed: int, timeout: float, data_dir: Path) -> tuple[Tally, dict[str, str]]:
    """Run the machine until ``requests`` requests were sent; returns the tally and facts."""
    random.seed(seed)
    tally = Tally()
    facts: dict[str, str] = {}
    with InProcessServer(data_dir, timeout=timeout) as server:
        ApiMachine.server, ApiMachine.tally, ApiMachine.strict = server, tally, False
        before = rss_bytes()
        started = time.perf_counter()
        reported = 0
        while tally.requests < requests:
            if tally.requests - reported >= 10_000:
                reported = tally.requests
                print(
                    f"... {reported} requests, {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            remaining = requests - tally.requests
            # in rounds: one long hypothesis run keeps what it generated (GBs by 100k)
            run_state_machine_as_test(
                ApiMachine,
                settings=settings(
                    max_examples=max(1, min(ROUND, remaining // STEPS)),
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                ),
            )
        elapsed = time.perf_counter() - started
        after = rss_bytes()
        ready = server.get("/readyz")
        facts = {
            "elapsed": f"{elapsed:.1f} s",
            "requests/s": f"{tally.requests / elapsed:.0f}",
            "RSS before": _mib(before),
            "RSS after": _mib(after),
            "/readyz after": f"{ready.status} {ready.body.decode()}",
            "logged exceptions": str(len(server.error_log.exceptions)),
            "other error logs": str(len(server.error_log.errors)),
            "slowest call": f"{tally.slowest * 1000:.0f} ms",
        }
        for entry in server.error_log.exceptions[:5]:
            print("logged exception:", entry)
    return tally, facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests to send")
    parser.add_argument("--seed", type=int, default=8, help="seed of the generators")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a hang")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventyard-fuzz-") as tmp:
        tally, facts = run(args.requests, args.seed, args.timeout, Path(tmp))
    width = max(len(op) for op in tally.operations) + 2
    print(f"{'operation':<{width}}{'requests':>10}")
    for operation, count in sorted(tally.operations.items()):
        print(f"{operation:<{width}}{count:>10}")
    print()
    print(f"{'status':<{width}}{'answers':>10}")
    for status, count in sorted(tally.statuses.items()):
        print(f"{status:<{width}}{count:>10}")
    print()
    print(f"{'error code':<{width + 20}}{'answers':>10}")
    for code, count in tally.errors.most_common():
        print(f"{code:<{width + 20}}{count:>10}")
    print()
    server_errors = sum(n for s, n in tally.statuses.items() if s.isdigit() and int(s) >= 500)
    summary = {
        "requests": str(tally.requests),
        "5xx answers": str(server_errors),
        "crashes": str(tally.statuses["crash"]),
        "hangs": str(tally.statuses["hang"]),
        "broken promises": str(len(tally.failures)),
        **facts,
    }
    for name, value in summary.items():
        print(f"{name:<{width}}{value:>10}")
    for request, found in tally.failures[:10]:
        print(f"\nPROBLEM {found}\n  {request!r}")
    ok = (
        not tally.failures
        and facts["logged exceptions"] == "0"
        and facts["/readyz after"].startswith("200")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
