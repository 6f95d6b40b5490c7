"""Child process of the JetStream kill -9 lease test: claim, say so, then hang.

Usage: ``python jetstream_claimer.py URLS PREFIX TARGET LEASE``. Opens the store, claims
every due record of TARGET with a LEASE-second lease, prints ``claimed <ids>`` and then
waits forever without settling (the test kills it with SIGKILL).
"""

from __future__ import annotations

import asyncio
import sys

from eventyard.server.store.jetstream import JetStreamStore


async def main(urls: str, prefix: str, target: str, lease: float) -> None:
    store = JetStreamStore(urls.split(","), prefix=prefix, name="claimer")
    await store.open()
    claim = await store.claim_deliveries("child", target, 1000, lease)
    print("claimed", " ".join(str(d.id) for d in claim.deliveries), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
