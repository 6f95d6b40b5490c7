"""What a FIFO receive costs when a group's head is in flight with a backlog behind it.

A FIFO queue holds ``--backlog`` messages of one group whose first message is in
flight, plus one message of a second group; a standard queue beside it holds
``--other`` messages. Each receive (a write transaction of the SQLite store, so it holds
the writer meanwhile) must return the second group's message without reading the
blocked backlog or the other queue. Printed: the mean time of a receive.

    .venv/bin/python bench/fifo_receive.py [--backlog 50000] [--other 50000] [--receives 20]

Measured on the review branch (2 shared cores, defaults): 1,276 ms per receive when
it read the messages row by row in Python (every queue's, in rowid order), 17 ms with
the group index (one pass over the queue's index entries in SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from eventyard.server.store import NewMessage
from eventyard.server.store.sqlite import SQLiteStore

__all__ = ["main", "run"]


async def run(backlog: int, other: int, receives: int) -> float:
    """The mean seconds of one receive (see the module docstring)."""
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(f"{directory}/bench.db")
        await store.open()
        try:
            fifo = "bench.fifo"
            await store.queue_send([NewMessage(fifo, "head", group_id="blocked")])
            await store.queue_receive(fifo, 1, 3600, time.time())
            for start in range(0, backlog, 1000):
                count = min(1000, backlog - start)
                await store.queue_send(
                    [NewMessage(fifo, "x", group_id="blocked") for _ in range(count)]
                )
            for start in range(0, other, 1000):
                count = min(1000, other - start)
                await store.queue_send([NewMessage("plain", "y") for _ in range(count)])
            await store.queue_send([NewMessage(fifo, "free", group_id="free")])
            started = time.perf_counter()
            for _ in range(receives):
                got = await store.queue_receive(fifo, 10, 0, time.time())
                assert [m.body for m in got] == ["free"], got
            return (time.perf_counter() - started) / receives
        finally:
            await store.close()


def main() -> None:
    """Parse the arguments, run, print the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--other", type=int, default=50_000)
    parser.add_argument("--receives", type=int, default=20)
    args = parser.parse_args()
    mean = asyncio.run(run(args.backlog, args.other, args.receives))
    print(
        f"FIFO receive past {args.backlog} blocked messages (and {args.other} in another "
        f"queue): {mean * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
