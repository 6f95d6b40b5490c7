"""The streams and the bucket of a JetStream store, created or verified idempotently.

Every process of one eventyard runs :func:`ensure_streams` at open, possibly all at
once: creating a stream that exists with the same configuration is a no-op on the
server, so concurrent opens converge. A stream that exists with a *different* retention
or replica count is reported (a store opened with ``replicas=3`` over R1 streams would
otherwise silently run unreplicated).

* ``<prefix>_log``: every event, limits retention (``expire_log`` purges it), one
  subject per bus (and one for each bus's off-clock events, :mod:`.timeindex`).
* ``<prefix>_deliveries``: one message per pending delivery record, work-queue retention
  (a record exists until a consumer acks it), one subject per target.
* ``<prefix>_journal``: each ingest as one message until it is applied (:mod:`.journal`).
* ``<prefix>_archive``: archived events, one subject per archive and event hour, and
  each archive's ledger of count and size (:mod:`.archives`).
* ``<prefix>_trace``: the trace journal over hashed bucket subjects (:mod:`.trace`),
  with a maximum age as a safety net.
* ``<prefix>_dstate``: the due time and attempts of a record that was retried, one
  subject per record (the latest message only); removed when the record is.
* ``KV_<prefix>_catalog``: the catalog, a KV bucket of history 1.

All are file-backed with the configured replicas, and the writes of ``ingest`` carry
``Nats-Msg-Id`` with an explicit duplicate window (:data:`DUPLICATE_WINDOW`).
"""

from __future__ import annotations

import nats.js.errors
from nats.js import api

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.codec import Names
from eventyard.server.store.jetstream.connection import Link, nats_errors
from eventyard.server.store.jetstream.trace import MAX_AGE as TRACE_MAX_AGE

__all__ = ["DUPLICATE_WINDOW", "ensure_streams"]

DUPLICATE_WINDOW = 600.0
"""Seconds within which a publish with a ``Nats-Msg-Id`` already seen is a duplicate."""

_IN_USE = 10058  # stream name already in use with a different configuration


def _configs(names: Names, replicas: int) -> list[api.StreamConfig]:
    file = api.StorageType.FILE
    return [
        api.StreamConfig(
            name=names.log_stream,
            description="eventyard: the event log",
            subjects=[f"{names.prefix}.log.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=file,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
        ),
        api.StreamConfig(
            name=names.deliveries_stream,
            description="eventyard: pending delivery records, one subject per target",
            subjects=[names.deliveries_all],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=file,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
        ),
        api.StreamConfig(
            name=names.journal_stream,
            description="eventyard: ingests written but maybe not yet applied",
            subjects=[f"{names.prefix}.journal.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=file,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
        ),
        api.StreamConfig(
            name=names.archive_stream,
            description="eventyard: archived events by event hour, and archive ledgers",
            subjects=[f"{names.prefix}.arc.>", f"{names.prefix}.arcstat.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=file,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
            allow_rollup_hdrs=True,
        ),
        api.StreamConfig(
            name=names.trace_stream,
            description="eventyard: the trace journal, hashed over bucket subjects",
            subjects=[f"{names.prefix}.trace.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=file,
            num_replicas=replicas,
            max_age=TRACE_MAX_AGE,
            allow_direct=True,
        ),
        api.StreamConfig(
            name=names.state_stream,
            description="eventyard: due time and attempts of retried delivery records",
            subjects=[f"{names.prefix}.dstate.>"],
            retention=api.RetentionPolicy.LIMITS,
            max_msgs_per_subject=1,
            storage=file,
            num_replicas=replicas,
            allow_direct=True,
        ),
    ]


async def _ensure(link: Link, config: api.StreamConfig) -> None:
    try:
        with nats_errors(f"create stream {config.name}", link):
            try:
                await link.js.add_stream(config)
                return
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _IN_USE:
                    raise
            assert config.name is not None
            info = await link.js.stream_info(config.name)
    except StoreError:
        raise
    existing = info.config
    if existing.retention != config.retention or existing.num_replicas != config.num_replicas:
        raise StoreError(
            f"JetStream stream {config.name} exists with retention {existing.retention} and "
            f"{existing.num_replicas} replicas, but this store wants {config.retention} and "
            f"{config.num_replicas}: use the same --replicas as the other processes, or "
            "move the stream (nats stream edit)"
        )


async def ensure_streams(link: Link, names: Names, replicas: int) -> None:
    """Create the store's streams and catalog bucket, or check the existing ones."""
    if replicas not in (1, 3, 5):
        raise StoreError(f"JetStream replicas must be 1, 3 or 5, not {replicas}")
    for config in _configs(names, replicas):
        await _ensure(link, config)
    kv = api.KeyValueConfig(
        bucket=names.catalog_bucket,
        description="eventyard: the catalog",
        history=1,
        storage=api.StorageType.FILE,
        replicas=replicas,
        direct=True,
    )
    with nats_errors(f"create bucket {names.catalog_bucket}", link):
        try:
            await link.js.create_key_value(kv)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _IN_USE:
                raise
            info = await link.js.stream_info(names.catalog_stream)
            if info.config.num_replicas != replicas:
                raise StoreError(
                    f"JetStream bucket {names.catalog_bucket} has "
                    f"{info.config.num_replicas} replicas, but this store wants {replicas}"
                ) from exc
