"""Run the retail example end to end and check what every party got.

    .venv/bin/python examples/retail/run.py [--url URL] [--work-dir DIR]

1. Starts an eventyard server in the work directory (or uses ``--url``, e.g. the one
   ``make run`` serves).
2. Starts a notification webhook (an aiohttp app in this process) and puts a rule on the
   ``retail`` bus that sends it large orders only (a numeric pattern), shaped by an
   InputTransformer.
3. Sets up the warehouse and invoicing consumers (their queues start empty) and starts
   each as a real ``eventyard worker`` process.
4. The web shop publishes its orders.
5. Waits until the inventory, the webhook and the invoicing DLQ have settled, stops the
   workers with SIGTERM, prints all three, and exits 0 only if each is exactly right.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from eventyard.errors import ResourceAlreadyExists
from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import Consumer
from eventyard.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make ``examples.retail`` importable
    sys.path.insert(0, str(REPO))

from examples.retail import invoicing, shop, warehouse  # noqa: E402

STOCK = {"gadget": 40, "gizmo": 30, "widget": 100}
WEBHOOK_RULE = "notify-large-orders"
WEBHOOK_PATTERN = {
    "detail-type": ["OrderPlaced"],
    "detail": {"total": [{"numeric": [">=", shop.LARGE_ORDER]}]},
}
WEBHOOK_TRANSFORMER = {
    "InputPathsMap": {
        "order": "$.detail.orderId",
        "customer": "$.detail.customer",
        "total": "$.detail.total",
    },
    "InputTemplate": (
        '{"order": <order>, "total": <total>, '
        '"text": "Large order <order> from <customer>: <total> EUR"}'
    ),
}
WORKERS = {"warehouse": warehouse.consumer, "invoicing": invoicing.consumer}
TIMEOUT = 30.0


def quiet_logs() -> None:
    """This process's own eventyard logs (set-up messages) only from warnings up."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.asynccontextmanager
async def webhook(received: list[dict[str, Any]]) -> AsyncIterator[str]:
    """A notification service on a free port; yields its URL."""

    async def notify(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/notify", notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/notify"
    finally:
        await runner.cleanup()


async def prepare(client: AsyncClient, hook_url: str) -> None:
    """The bus, the webhook rule, and the consumers' queues and rules, all empty."""
    with contextlib.suppress(ResourceAlreadyExists):
        await client.create_bus(shop.BUS)
    await client.put_rule(WEBHOOK_RULE, WEBHOOK_PATTERN, bus=shop.BUS)
    target = {"Id": "webhook", "Arn": hook_url, "InputTransformer": WEBHOOK_TRANSFORMER}
    await client.put_targets(WEBHOOK_RULE, [target], bus=shop.BUS)
    for consumer in WORKERS.values():
        await consumer.setup(client)
        for handler in consumer.handlers:  # a re-run against the same server starts clean
            await client.purge_queue(handler.queue)
            await client.purge_queue(handler.dead_letter_queue)


async def start_worker(name: str, url: str, work_dir: Path) -> asyncio.subprocess.Process:
    """``eventyard worker examples.retail.<name>:consumer``, logging to ``<name>.log``."""
    env = {**os.environ, "RETAIL_DB": str(work_dir / "inventory.db")}
    with (work_dir / f"{name}.log").open("w") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventyard",
            "worker",
            f"examples.retail.{name}:consumer",
            "--url",
            url,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
        )


async def wait_for(what: str, done: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await done():
        if time.monotonic() > deadline:
            say(f"  gave up waiting for {what} after {TIMEOUT:.0f} s")
            return
        await asyncio.sleep(0.1)


async def dead_letters(client: AsyncClient, consumer: Consumer) -> list[tuple[str, dict[str, str]]]:
    """(order id, attributes) of every message in the consumer's dead-letter queues."""
    found: list[tuple[str, dict[str, str]]] = []
    for handler in consumer.handlers:
        while batch := await client.receive_messages(handler.dead_letter_queue, wait=0):
            found += [(m.event().detail["orderId"], m.attributes) for m in batch]
    return sorted(found)


async def main(url: str | None, work_dir: Path) -> bool:
    os.environ["RETAIL_DB"] = str(work_dir / "inventory.db")
    server = None
    if url is None:
        say(f"starting eventyard (data in {work_dir / 'server'})")
        env = {"EVENTYARD_SHUTDOWN_TIMEOUT": "1", "EVENTYARD_RETRY_BASE_DELAY": "0.2"}
        server = ServerProcess(work_dir / "server", env=env).start()
        url = server.url
    say(f"eventyard at {url}")
    orders = shop.orders()
    received: list[dict[str, Any]] = []
    workers: dict[str, asyncio.subprocess.Process] = {}
    try:
        async with webhook(received) as hook_url, AsyncClient(url) as client:
            await prepare(client, hook_url)
            warehouse.stock_up(STOCK)
            say(f"webhook at {hook_url} gets orders of {shop.LARGE_ORDER} or more")
            for name in WORKERS:
                workers[name] = await start_worker(name, url, work_dir)
            say(f"workers started: {', '.join(WORKERS)} (logs in {work_dir})")

            await client.put_events([order.event() for order in orders], bus=shop.BUS)
            say(f"the shop published {len(orders)} OrderPlaced events")

            reserved = len(orders)
            large = sum(order.total >= shop.LARGE_ORDER for order in orders)
            invoiced = [o.order_id for o in orders if o.payment == "invoice"]
            dlq = invoicing.consumer.handler(invoicing.send_invoice).dead_letter_queue

            async def warehouse_done() -> bool:
                return len(warehouse.reservations()) >= reserved

            async def webhook_done() -> bool:
                return len(received) >= large

            async def dlq_done() -> bool:
                counts = await client.get_queue_attributes(dlq)
                return int(counts["ApproximateNumberOfMessages"]) >= len(invoiced)

            await asyncio.gather(
                wait_for("the warehouse", warehouse_done),
                wait_for("the webhook", webhook_done),
                wait_for("the dead-letter queue", dlq_done),
            )
            await asyncio.sleep(0.5)  # anything extra (a duplicate) would show up now
            wait = max(c.poll_wait for c in WORKERS.values())
            say(f"stopping the workers (SIGTERM: each finishes its long poll, up to {wait} s)")
            codes = await stop_workers(workers)
            dead = await dead_letters(client, invoicing.consumer)
    finally:
        for process in workers.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        if server is not None:
            server.stop()
    return report(
        orders=orders,
        stock=warehouse.inventory(),
        received=received,
        dead=dead,
        codes=codes,
        work_dir=work_dir,
    )


async def stop_workers(workers: dict[str, asyncio.subprocess.Process]) -> dict[str, int]:
    """SIGTERM every worker: running handlers finish, then they exit."""
    for process in workers.values():
        process.send_signal(signal.SIGTERM)
    return {name: await asyncio.wait_for(p.wait(), 15) for name, p in workers.items()}


def report(
    *,
    orders: list[shop.Order],
    stock: dict[str, int],
    received: list[dict[str, Any]],
    dead: list[tuple[str, dict[str, str]]],
    codes: dict[str, int],
    work_dir: Path,
) -> bool:
    """Print what each party got, compared with what it should have got."""
    sold: Counter[str] = Counter()
    for order in orders:
        sold.update(order.items)
    want_stock = {sku: STOCK[sku] - sold[sku] for sku in STOCK}
    want_hooks = sorted((o.order_id, o.total) for o in orders if o.total >= shop.LARGE_ORDER)
    got_hooks = sorted((str(h.get("order")), h.get("total")) for h in received)
    want_dead = sorted(o.order_id for o in orders if o.payment == "invoice")

    checks: list[tuple[str, bool]] = []
    say("\ninventory (SQLite, updated by the warehouse worker)")
    say(f"  {'sku':<8} {'start':>6} {'sold':>5} {'on hand':>8}")
    for sku in sorted(STOCK):
        say(f"  {sku:<8} {STOCK[sku]:>6} {sold[sku]:>5} {stock.get(sku, '?'):>8}")
    checks.append(("inventory reflects every order exactly once", stock == want_stock))

    say(f"\nwebhook (large orders only, total >= {shop.LARGE_ORDER}, via InputTransformer)")
    for body in sorted(received, key=lambda b: str(b.get("order"))):
        say(f"  {json.dumps(body)}")
    checks.append(("the webhook got exactly the large orders", got_hooks == want_hooks))

    say("\ninvoicing worker (from its log): each failure is retried with backoff")
    for line in (work_dir / "invoicing.log").read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("event") == "handler failed":
            say(
                f"  event {record['event_id'][:8]} attempt {record['attempt']} failed, "
                f"retry in {record['retry_in']:.2f} s"
            )
        elif record.get("event") == "dead-lettered":
            say(
                f"  event {record['event_id'][:8]} attempt {record['attempt']} failed, "
                "dead-lettered"
            )

    say("\ndead-letter queue of invoicing")
    for order_id, attributes in dead:
        say(
            f"  {order_id}: after {attributes.get('ATTEMPTS')} attempts, "
            f"{attributes.get('ERROR_CODE')}: {attributes.get('ERROR_MESSAGE')}"
        )
    dead_right = [order_id for order_id, _ in dead] == want_dead and all(
        a.get("ATTEMPTS") == str(invoicing.consumer.max_attempts)
        and a.get("ERROR_MESSAGE", "").startswith("ConnectionError: billing system unreachable")
        for _, a in dead
    )
    checks.append(("the invoice orders are dead-lettered after 3 attempts", dead_right))
    checks.append(("the workers stopped cleanly", all(code == 0 for code in codes.values())))

    say("")
    for text, ok in checks:
        say(f"  [{'ok' if ok else 'FAILED'}] {text}")
    return all(ok for _, ok in checks)


def cli() -> int:
    parser = argparse.ArgumentParser(description="Run the eventyard retail example.")
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--work-dir", type=Path, help="where data and logs go (default: temp)")
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="eventyard-retail-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    quiet_logs()
    ok = asyncio.run(main(args.url, work_dir.resolve()))
    say("\nall good" if ok else f"\nsomething is wrong: see the logs in {work_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())
