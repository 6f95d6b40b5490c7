"""The JetStream store: the Store protocol on NATS JetStream, shared by many processes.

One module per concept:

- :mod:`.store`: :class:`JetStreamStore`, opening, closing, the calls;
- :mod:`.connection`: the NATS connection, error translation, batched publishes;
- :mod:`.streams`: the streams and the bucket, created or verified at open;
- :mod:`.codec`: names, subjects and key encodings;
- :mod:`.catalog`: the catalog on a KV bucket and its change feed;
- :mod:`.log`: the event log and ingest;
- :mod:`.journal`: the ingest journal that makes an ingest all or nothing;
- :mod:`.deliveries`: delivery records, leases (pull consumers), settle;
- :mod:`.queues`: SQS-style queues, and :mod:`.queuewire`, their names, payloads and receipts;
- :mod:`.timeindex`: reads and expiry by time, on the server's time index;
- :mod:`.archives`: archived events by event hour, with their count and size;
- :mod:`.trace`: the trace journal over hashed bucket subjects;
- :mod:`.notify`: wake-ups across processes.

Needs ``nats-py`` (``pip install 'eventyard[jetstream]'``). Why each JetStream mechanism
is used, and the limits: docs/architecture.md, "The JetStream store".
"""

from __future__ import annotations

from eventyard.server.store.jetstream.store import JetStreamStore

__all__ = ["JetStreamStore"]
