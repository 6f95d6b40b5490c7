"""The warehouse: reserves the stock of every placed order in a SQLite inventory.

Run it as a worker (``eventyard worker examples.retail.warehouse:consumer``); the
database is ``RETAIL_DB`` (default ``retail-inventory.db``). The handler is a plain sync
function, so the worker runs it in a thread, and its parameter is a pydantic model, so
an order whose ``detail`` does not fit goes straight to the dead-letter queue.

Delivery is at least once, so the handler de-duplicates on the order id: the
reservation row and the stock update commit in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping

import pydantic

from eventyard.sdk.consumer import Consumer

from .shop import BUS

__all__ = [
    "OrderPlaced",
    "consumer",
    "database",
    "inventory",
    "reservations",
    "reserve_stock",
    "stock_up",
]

consumer = Consumer(bus=BUS, name="warehouse")


class Item(pydantic.BaseModel):
    sku: str
    qty: int = pydantic.Field(gt=0)


class OrderPlaced(pydantic.BaseModel):
    orderId: str  # the event's field name
    items: list[Item]


def database() -> sqlite3.Connection:
    """A connection to the inventory database (created if missing)."""
    connection = sqlite3.connect(os.environ.get("RETAIL_DB", "retail-inventory.db"), timeout=30)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS inventory (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL)"
    )
    connection.execute("CREATE TABLE IF NOT EXISTS reservations (order_id TEXT PRIMARY KEY)")
    return connection


def stock_up(stock: Mapping[str, int]) -> None:
    """Start the day with exactly ``stock`` on hand and no reservations."""
    with database() as db:
        db.execute("DELETE FROM inventory")
        db.execute("DELETE FROM reservations")
        db.executemany("INSERT INTO inventory VALUES (?, ?)", stock.items())


def reservations() -> list[str]:
    """The orders whose stock is reserved."""
    connection = database()
    try:
        return [row[0] for row in connection.execute("SELECT order_id FROM reservations")]
    finally:
        connection.close()


def inventory() -> dict[str, int]:
    """What is on hand, by SKU."""
    connection = database()
    try:
        return dict(connection.execute("SELECT sku, on_hand FROM inventory ORDER BY sku"))
    finally:
        connection.close()


@consumer.on({"detail-type": ["OrderPlaced"]})
def reserve_stock(order: OrderPlaced) -> None:
    """Take the order's items off the shelf, once per order."""
    connection = database()
    try:
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            seen = connection.execute(
                "INSERT OR IGNORE INTO reservations VALUES (?)", (order.orderId,)
            )
            if seen.rowcount == 0:
                return  # a redelivery: already reserved
            connection.executemany(
                "UPDATE inventory SET on_hand = on_hand - ? WHERE sku = ?",
                [(item.qty, item.sku) for item in order.items],
            )
    finally:
        connection.close()
