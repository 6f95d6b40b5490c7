"""Helpers of the store contract suite that use only the protocol."""

from __future__ import annotations

from eventyard.server.store import Delivery, Store

__all__ = ["OWNER", "claim_all"]

#: the lease owner of contract tests that claim records only to settle them
OWNER = "contract-tests"


async def claim_all(
    store: Store, target: str, owner: str = OWNER, lease: float = 300.0
) -> list[Delivery]:
    """Claim every record of ``target`` due now for ``owner``, in claim order."""
    claimed: list[Delivery] = []
    while True:
        claim = await store.claim_deliveries(owner, target, 1000, lease)
        claimed += claim.deliveries
        if not claim.deliveries:
            return claimed
