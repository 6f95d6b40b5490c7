"""The web shop: the ``OrderPlaced`` events it publishes on the ``retail`` bus.

The orders are fixed, so the example can check its results exactly: three of them are
large (a total of 1000 or more) and two are paid by invoice.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard import Event

__all__ = ["BUS", "LARGE_ORDER", "PRICES", "Order", "orders"]

BUS = "retail"
LARGE_ORDER = 1000
"""Orders with a total of at least this much are "large": the notification webhook gets them."""

PRICES = {"widget": 25, "gadget": 120, "gizmo": 450}


@dataclass(frozen=True)
class Order:
    """An order as the shop sees it."""

    order_id: str
    customer: str
    items: dict[str, int]
    payment: str = "card"

    @property
    def total(self) -> int:
        """The order total."""
        return sum(PRICES[sku] * qty for sku, qty in self.items.items())

    def event(self) -> Event:
        """The ``OrderPlaced`` event announcing the order."""
        return Event(
            source="shop.web",
            detail_type="OrderPlaced",
            detail={
                "orderId": self.order_id,
                "customer": self.customer,
                "items": [{"sku": s, "qty": q, "price": PRICES[s]} for s, q in self.items.items()],
                "total": self.total,
                "payment": self.payment,
            },
        )


def orders() -> list[Order]:
    """Today's orders."""
    return [
        Order("o-1001", "ada", {"widget": 2}),
        Order("o-1002", "grace", {"gizmo": 3}),  # 1350: large
        Order("o-1003", "alan", {"gadget": 1, "widget": 4}),
        Order("o-1004", "barbara", {"widget": 10}, payment="invoice"),
        Order("o-1005", "edsger", {"gizmo": 2, "gadget": 2}),  # 1140: large
        Order("o-1006", "donald", {"gadget": 1}),
        Order("o-1007", "frances", {"gizmo": 4, "widget": 1}, payment="invoice"),  # large
        Order("o-1008", "ken", {"widget": 1, "gadget": 2}),
    ]
