"""Invoicing: the failing consumer. Its billing system is down, so every attempt fails.

It handles orders paid by invoice. Each attempt raises, the worker retries with backoff
(0.25 to 0.5 s, then 0.5 to 1 s), and after the third attempt the event lands in the
handler's dead-letter queue, ``invoicing-send_invoice-dlq``, with the error in its
message attributes.
"""

from __future__ import annotations

from eventyard import Event
from eventyard.sdk.consumer import Consumer

from .shop import BUS

__all__ = ["consumer", "send_invoice"]

consumer = Consumer(bus=BUS, name="invoicing", max_attempts=3, retry_delay=0.5)


@consumer.on({"detail-type": ["OrderPlaced"], "detail": {"payment": ["invoice"]}})
async def send_invoice(event: Event) -> None:
    """Send the customer an invoice (the billing system is unreachable today)."""
    raise ConnectionError(f"billing system unreachable for order {event.detail['orderId']}")
