"""Which store a server opens: its settings' ``store`` URL, else SQLite in ``data_dir``.

``eventyard serve --store nats://h1:4222,h2:4222`` (``EVENTYARD_STORE``, or ``store`` in
the config file) runs on the JetStream store, which any number of eventyard processes
may share; without it the embedded SQLite store in ``--data-dir`` is used, which one
process owns. With a JetStream store the data directory still holds this process's own
files: the master key file by default and the admin socket. Those are per process, so
each process of a cluster has its own data directory (nothing in it is locked: the
SQLite store's one-process lock is the SQLite store's, beside its database), and all
of them must be given the same master key (``EVENTYARD_MASTER_KEY`` or
``master_key_file``), which :func:`shared_store_master_key_problem` checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from eventyard.errors import StoreError
from eventyard.server.config import Settings, nats_servers
from eventyard.server.store import Store, database_path, open_store

__all__ = [
    "JETSTREAM_EXTRA_HINT",
    "is_shared_store",
    "open_settings_store",
    "shared_store_master_key_problem",
    "store_description",
]

JETSTREAM_EXTRA_HINT = "pip install 'eventyard[jetstream]'"


def is_shared_store(settings: Settings) -> bool:
    """Whether the settings name a store that several processes share (JetStream)."""
    return bool(settings.store)


def store_description(settings: Settings) -> str:
    """The store in a few words, for the banner, logs and errors."""
    if is_shared_store(settings):
        servers = ",".join(s.removeprefix("nats://") for s in nats_servers(settings.store))
        return (
            f"JetStream on nats://{servers} (replicas {settings.store_replicas}, "
            f"prefix {settings.store_prefix})"
        )
    return f"SQLite {os.path.abspath(database_path(settings.data_dir))}"


def open_settings_store(settings: Settings) -> Store:
    """Create (not yet open) the store the settings name.

    Raises:
        StoreError: the JetStream store is asked for but its client library (the
            ``jetstream`` extra) is not installed.
        ConfigurationError: the store URL is not valid.
    """
    if not is_shared_store(settings):
        return open_store(settings.data_dir)
    try:
        # imported here: the SQLite-only install has no nats-py
        from eventyard.server.store.jetstream import JetStreamStore
    except ImportError as exc:
        raise StoreError(
            f"the JetStream store needs the NATS client ({JETSTREAM_EXTRA_HINT}): {exc}"
        ) from None
    return JetStreamStore(
        nats_servers(settings.store),
        replicas=settings.store_replicas,
        prefix=settings.store_prefix,
    )


def shared_store_master_key_problem(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why a process on a shared store would not share its master key, or None.

    On a shared store every process must open the access keys the others sealed, so
    each must be given the same master key: ``EVENTYARD_MASTER_KEY``, or an existing
    ``master_key_file`` (which the operator copies to every process). A key file that
    one process would create for itself is refused: the others would not have it.
    """
    if not is_shared_store(settings):
        return None
    env = os.environ if environ is None else environ
    if env.get("EVENTYARD_MASTER_KEY"):
        return None
    if settings.master_key_file and os.path.exists(settings.master_key_file):
        return None
    if not settings.master_key_file:
        default = os.path.join(os.path.dirname(database_path(settings.data_dir)), "master.key")
        if os.path.exists(default):
            return None
    return (
        "a store shared by several processes needs the master key they all use: set "
        "EVENTYARD_MASTER_KEY (e.g. EVENTYARD_MASTER_KEY=$(openssl rand -base64 32), the "
        "same for every process) or give an existing master_key_file copied to each"
    )
