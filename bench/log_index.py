"""CPU cost of the SQLite store's ingest statements, by kind of time index of the log.

What the time index costs ingest, measured where it is paid: the statements the writer
runs for each ingest (on the event loop) and once per group-commit batch. Each batch of
``--batch`` ingests (10 events of ~600 bytes, one delivery each) runs in one
transaction on three databases in turn, in alternating order, so whatever else the
machine does falls on all three alike:

* ``none``: no time index (the time marks skipped): the cost before it;
* ``marks``: as shipped (``eventyard.server.store.sqlite_audit``): the events' (bus,
  second) noted per ingest, upserted once per batch;
* ``time-index``: an index on ``log(time)`` instead: one b-tree entry per event.

Printed: CPU µs (thread time) per ingest, median of ``--rounds`` rounds, and the ratio
to ``none``. No fsync (``synchronous=OFF``): the disk is the same for all three. Uses
private names of the store on purpose, as ``bench/store.py`` does.

    .venv/bin/python bench/log_index.py [--rounds 5] [--batches 60] [--batch 50]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid

from eventyard.server.store import NewDelivery, NewEvent, sqlite_audit, sqlite_files
from eventyard.server.store import sqlite as store_sqlite

__all__ = ["main"]

BODY = (
    b'{"version":"0","detail-type":"order.created","source":"shop","detail":{"x":"'
    + b"y" * 520
    + b'"}}'
)
VARIANTS = ("none", "marks", "time-index")
Ingest = tuple[list[NewEvent], list[NewDelivery]]


def _request(events: int) -> Ingest:
    now = time.time()
    new_events, deliveries = [], []
    for _ in range(events):
        event_id = str(uuid.uuid4())
        new_events.append(NewEvent(event_id, "default", now, BODY))
        deliveries.append(NewDelivery("default/r/t", event_id, BODY, BODY, now, now))
    return new_events, deliveries


def _open(variant: str, directory: str) -> sqlite3.Connection:
    conn = sqlite_files.connect(os.path.join(directory, f"{variant}.db"), writer=True)
    sqlite_files.migrate(conn)
    if variant == "time-index":
        conn.execute("CREATE INDEX log_by_time ON log (time)")
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def _batch(
    conn: sqlite3.Connection, variant: str, ingests: list[Ingest], book: sqlite_audit.MarkBook
) -> float:
    """Run one batch as the writer does (a savepoint per ingest); returns its CPU time."""
    conn.execute("BEGIN IMMEDIATE")
    began = time.thread_time()
    for events, deliveries in ingests:
        # what SQLiteStore.ingest prepares before queueing the write, then the write
        conn.execute("SAVEPOINT w")
        rows = [(e.event_id, e.bus, e.time, e.body) for e in events]
        marks = sqlite_audit.ingest_marks(events) if variant == "marks" else ()
        archived = sqlite_audit.archive_rows(events)
        delivery_rows = store_sqlite._delivery_rows(events, deliveries)
        store_sqlite._ingest(
            conn, rows, delivery_rows, [], marks=marks, book=book, archived=archived
        )
        conn.execute("RELEASE w")
    book.write(conn)
    spent = time.thread_time() - began
    conn.execute("COMMIT")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60, help="batches per round")
    parser.add_argument("--batch", type=int, default=50, help="ingests per batch")
    args = parser.parse_args()
    ingests = args.batches * args.batch
    per_ingest: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as root:
        for n in range(args.rounds):
            directory = os.path.join(root, str(n))
            os.mkdir(directory)
            conns = {v: _open(v, directory) for v in VARIANTS}
            books = {v: sqlite_audit.MarkBook() for v in VARIANTS}
            spent = dict.fromkeys(VARIANTS, 0.0)
            for b in range(args.batches):
                batch = [_request(10) for _ in range(args.batch)]
                for variant in VARIANTS if b % 2 else VARIANTS[::-1]:
                    spent[variant] += _batch(conns[variant], variant, batch, books[variant])
            for variant, conn in conns.items():
                per_ingest[variant].append(spent[variant] / ingests * 1e6)
                conn.close()
    print(
        f"CPU of the store's ingest statements per 10-event ingest (1 delivery each), "
        f"{args.batch} ingests a batch, {args.rounds} rounds of {ingests} ingests"
    )
    base = statistics.median(per_ingest["none"])
    print(f"{'variant':<11} {'µs/ingest':>10} {'ratio':>7}  rounds")
    for variant, values in per_ingest.items():
        median = statistics.median(values)
        rounds = " ".join(f"{v:.0f}" for v in values)
        print(f"{variant:<11} {median:>10.1f} {median / base:>7.3f}  {rounds}")


if __name__ == "__main__":
    main()
