"""eventyard: a self-hosted event router that speaks the Amazon EventBridge API.

The SDK's public names live here: :class:`Client` and :class:`AsyncClient` to publish
events and manage buses, rules, targets and queues; :class:`Consumer` with
:class:`Retry` and :class:`Drop` to consume them; :class:`Event` and :class:`Message`;
the exception tree in :mod:`eventyard.errors`; and :mod:`eventyard.webhooks` to verify
signed webhook deliveries.
"""

from __future__ import annotations

from eventyard import errors, webhooks
from eventyard._version import __version__
from eventyard.sdk.client import AsyncClient, Client, Message
from eventyard.sdk.consumer import Consumer, Drop, Retry
from eventyard.sdk.event import Event
from eventyard.sdk.trace import StoredEvent, Trace

__all__ = [
    "AsyncClient",
    "Client",
    "Consumer",
    "Drop",
    "Event",
    "Message",
    "Retry",
    "StoredEvent",
    "Trace",
    "__version__",
    "errors",
    "webhooks",
]
