"""The store settings: ``store`` (a NATS URL, else SQLite in ``data_dir``), its replicas
and prefix, where each came from, and what a shared store asks of the master key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from eventyard.errors import ConfigurationError, StoreError
from eventyard.server.config import Settings, nats_servers
from eventyard.server.storage import (
    is_shared_store,
    open_settings_store,
    shared_store_master_key_problem,
    store_description,
)
from eventyard.server.store.sqlite import SQLiteStore


def test_without_a_store_url_the_sqlite_store_is_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, cwd=tmp_path, data_dir=str(tmp_path / "d"))
    assert (settings.store, settings.store_replicas, settings.store_prefix) == (
        "",
        1,
        "eventyard",
    )
    assert not is_shared_store(settings)
    assert isinstance(open_settings_store(settings), SQLiteStore)
    assert store_description(settings) == f"SQLite {tmp_path / 'd' / 'eventyard.db'}"


def test_flags_beat_variables_beat_the_file_and_each_source_is_printed(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.toml"
    path.write_text('store = "nats://file:4222"\nstore_replicas = 3\nstore_prefix = "f"\n')
    settings = Settings.load(
        environ={"EVENTYARD_STORE": "nats://env:4222", "EVENTYARD_STORE_PREFIX": "e"},
        cwd=tmp_path,
        store_prefix="flag",
    )
    assert (settings.store, settings.store_replicas, settings.store_prefix) == (
        "nats://env:4222",
        3,
        "flag",
    )
    text = settings.to_toml()
    lines = dict(line.split(" = ", 1) for line in text.splitlines())
    assert lines["store"] == '"nats://env:4222"  # EVENTYARD_STORE'
    assert lines["store_replicas"] == f"3  # {path}:2"
    assert lines["store_prefix"] == '"flag"  # --store-prefix'
    assert tomllib.loads(text)["store"] == "nats://env:4222"


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("nats://127.0.0.1:4222", ["nats://127.0.0.1:4222"]),
        ("nats://a:1,b:2", ["nats://a:1", "nats://b:2"]),
        ("nats://a:1, nats://b", ["nats://a:1", "nats://b:4222"]),
        ("nats://[::1]:4223", ["nats://[::1]:4223"]),
    ],
)
def test_a_nats_url_names_each_server(url: str, servers: list[str]) -> None:
    assert nats_servers(url) == servers
    settings = Settings.from_env({}, store=url)
    assert is_shared_store(settings)
    assert store_description(settings).startswith("JetStream on nats://")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"EVENTYARD_STORE": "redis://x"},
            r"store must be a NATS URL .*'redis://' .*EVENTYARD_STORE",
        ),
        ({"EVENTYARD_STORE": "/var/lib/x"}, r"store must be a NATS URL .*data_dir"),
        ({"EVENTYARD_STORE": "nats://a:70000"}, r"port 70000 of 'a:70000' is not 1 to 65535"),
        ({"EVENTYARD_STORE": "nats://a b"}, r"'a b' is not host or host:port"),
        ({"EVENTYARD_STORE": "nats://a,,b"}, r"'' is not host or host:port"),
        ({"EVENTYARD_STORE_REPLICAS": "0"}, r"store_replicas must be between 1 and 5 .*got 0"),
        ({"EVENTYARD_STORE_REPLICAS": "three"}, r"EVENTYARD_STORE_REPLICAS='three' is not an int"),
        ({"EVENTYARD_STORE_PREFIX": "a.b"}, r"store_prefix must be .*'a\.b' \(from EVENT"),
        ({"EVENTYARD_STORE_PREFIX": ""}, r"store_prefix must be 1 to 32"),
    ],
)
def test_a_store_setting_that_cannot_work_is_refused_naming_its_source(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(environ=environ, cwd=tmp_path)


def test_a_wrong_store_in_a_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.toml"
    path.write_text('port = 1\nstore = "sqlite:///x.db"\n')
    with pytest.raises(ConfigurationError, match=rf"\(from {path}:2\)$"):
        Settings.load(environ={}, cwd=tmp_path)


def test_the_jetstream_store_names_its_missing_client_or_opens(tmp_path: Path) -> None:
    settings = Settings.from_env({}, store="nats://127.0.0.1:4222", data_dir=str(tmp_path))
    try:
        store = open_settings_store(settings)
    except StoreError as exc:  # the jetstream extra is not installed
        assert "eventyard[jetstream]" in str(exc)
    else:
        assert type(store).__name__ == "JetStreamStore"


def test_a_shared_store_needs_a_master_key_every_process_has(tmp_path: Path) -> None:
    shared = Settings.from_env({}, store="nats://127.0.0.1:4222", data_dir=str(tmp_path / "d"))
    problem = shared_store_master_key_problem(shared, {})
    assert problem is not None and "EVENTYARD_MASTER_KEY" in problem
    assert shared_store_master_key_problem(shared, {"EVENTYARD_MASTER_KEY": "x"}) is None
    key_file = tmp_path / "master.key"
    given = Settings.from_env({}, store=shared.store, master_key_file=str(key_file))
    assert shared_store_master_key_problem(given, {}) is not None  # it does not exist
    key_file.write_text("k")
    assert shared_store_master_key_problem(given, {}) is None
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "master.key").write_text("k")  # copied into the data directory
    assert shared_store_master_key_problem(shared, {}) is None
    sqlite = Settings.from_env({}, data_dir=str(tmp_path / "e"))
    assert shared_store_master_key_problem(sqlite, {}) is None
