"""The JetStream store (NATS JetStream, for scale-out); its queues are in :mod:`.queues`."""

from __future__ import annotations

__all__: list[str] = []
