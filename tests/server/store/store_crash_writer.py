"""Child process of the kill -9 test: write as fast as possible, report each ack.

Usage: ``python store_crash_writer.py STORE_NAME LOCATION``. Opens the store that
``store_factories.FACTORIES[STORE_NAME]`` makes for LOCATION and runs concurrent writers
until killed. Each writer loops: ingest one event (with a delivery and a queue message),
then put its catalog document; *after* each await returns it writes one line to stdout
(a single ``os.write``, so a line is either wholly in the pipe or not at all):

    E <event id>          the ingest of that event was acknowledged
    C <key> <counter>     the catalog put of {"i": counter} under key was acknowledged
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from store_factories import FACTORIES

from eventyard.server.store import NewDelivery, NewEvent, NewMessage, Store

WRITERS = 32
BODY = b'{"detail":"' + b"x" * 500 + b'"}'


async def writer(store: Store, n: int) -> None:
    i = 0
    while True:
        event_id = f"w{n}-{i}"
        now = time.time()
        await store.ingest(
            [NewEvent(event_id, "default", now, BODY)],
            [NewDelivery("default/r/t", event_id, BODY, BODY, now, now)],
            [NewMessage("crash", event_id)],
        )
        os.write(1, f"E {event_id}\n".encode())
        await store.catalog_put("crash", f"w{n}", {"i": i})
        os.write(1, f"C w{n} {i}\n".encode())
        i += 1


async def main(name: str, location: str) -> None:
    store = FACTORIES[name](Path(location))
    await store.open()
    await asyncio.gather(*(writer(store, n) for n in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
