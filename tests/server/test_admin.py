"""The admin channel in-process: its operations, the socket round trip and who may use it.

The commands themselves, with and without a running server, are tested end to end in
``tests/e2e/test_auth.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventyard.errors import ConfigurationError, ResourceNotFound, ValidationError
from eventyard.server.accounts import Accounts
from eventyard.server.admin import (
    AdminServer,
    admin_socket_path,
    call_admin,
    load_master_key,
    master_key_path,
    open_keyring,
    perform,
)
from eventyard.server.api.connections import ConnectionsApi
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore
from eventyard.server.config import Settings
from eventyard.server.store import open_store
from tests.conftest import require


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(MemoryKeyStore(), MasterKey.generate())


@pytest.fixture
async def served(keyring: Keyring) -> AsyncIterator[AdminServer]:
    # a directory others may traverse, so the other-user test can reach the socket
    directory = Path(tempfile.mkdtemp(prefix="eventyard-admin-"))
    directory.chmod(0o755)
    server = AdminServer(str(directory / "admin.sock"), keyring)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        directory.rmdir()


def test_paths_sit_beside_the_database() -> None:
    assert admin_socket_path(Settings(data_dir="/srv/ey")) == "/srv/ey/eventyard.db.admin.sock"
    assert master_key_path(Settings(data_dir="/srv/ey")) == "/srv/ey/master.key"
    url = Settings(data_dir="sqlite:///var/lib/ey/main.db")
    assert admin_socket_path(url) == "/var/lib/ey/main.db.admin.sock"
    assert master_key_path(url) == "/var/lib/ey/master.key"
    chosen = Settings(data_dir="/srv/ey", master_key_file="/etc/eventyard/key")
    assert master_key_path(chosen) == "/etc/eventyard/key"


def test_the_master_key_comes_from_the_environment_before_the_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    from_file = load_master_key(settings, environ={})
    key_file = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_master_key(settings, environ={}).fingerprint == from_file.fingerprint
    given = MasterKey.generate()
    from_env = load_master_key(settings, environ={"EVENTYARD_MASTER_KEY": given.to_text()})
    assert from_env.fingerprint == given.fingerprint
    assert from_env.source == "EVENTYARD_MASTER_KEY"


async def test_operations_create_list_and_delete(keyring: Keyring) -> None:
    account = await perform(keyring, "create_account", {"account_id": "123456789012"})
    assert account["AccountId"] == "123456789012"
    key = await perform(keyring, "create_key", {"account_id": "123456789012"})
    assert set(key) >= {"AccessKeyId", "SecretAccessKey", "BearerToken"}
    listed = await perform(keyring, "list_keys", {"account_id": "123456789012"})
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]
    with pytest.raises(ResourceNotFound):
        await perform(keyring, "delete_key", {"access_key_id": "AKIAAAAAAAAAAAAAAAAA"})
    with pytest.raises(ValidationError):
        await perform(keyring, "drop_everything", {})
    with pytest.raises(ValidationError):
        await perform(keyring, "delete_account", {"account_id": 12})
    await perform(keyring, "delete_account", {"account_id": "123456789012"})
    assert await perform(keyring, "list_keys", {}) == []


def test_no_server_on_the_socket_means_no_answer(tmp_path: Path) -> None:
    assert call_admin(str(tmp_path / "nothing.sock"), "list_keys", {}) == (False, None)
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # bound, never listening: what a killed server leaves
    assert call_admin(str(stale), "list_keys", {}) == (False, None)


async def test_a_socket_round_trip_acts_on_the_server_s_keyring(
    served: AdminServer, keyring: Keyring
) -> None:
    assert stat.S_IMODE(os.stat(served.path).st_mode) == 0o600
    answered, account = await asyncio.to_thread(
        call_admin, served.path, "create_account", {"account_id": "210987654321"}
    )
    assert answered and account["AccountId"] == "210987654321"
    assert [a.account_id for a in await keyring.list_accounts()] == ["210987654321"]
    with pytest.raises(ResourceNotFound, match="Account 999999999999 does not exist"):
        await asyncio.to_thread(
            call_admin, served.path, "create_key", {"account_id": "999999999999"}
        )


async def test_another_user_is_refused_even_through_an_open_socket(served: AdminServer) -> None:
    require(os.geteuid() == 0, "acting as another user needs root")
    os.chmod(served.path, 0o666)  # the peer check must hold even if the mode does not
    script = (
        "import os, socket\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({served.path!r})\n"
        's.sendall(b\'{"op": "list_keys", "args": {}}\'); s.shutdown(socket.SHUT_WR)\n'
        "print(s.recv(1000).decode())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["error"]["code"] == "AccessDenied"


async def test_a_stale_socket_file_is_replaced_at_start(keyring: Keyring, tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    path.write_text("left by a killed server")
    server = AdminServer(str(path), keyring)
    await server.start()
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
    finally:
        await server.stop()
    assert not path.exists()


async def test_a_missing_key_file_is_created_only_while_no_key_exists(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    key_file = Path(master_key_path(settings))
    store = open_store(settings.data_dir)
    await store.open()
    try:
        keyring = await open_keyring(store, settings, environ={})
        assert key_file.exists()  # no key yet: a new master key is fine
        await keyring.create_account("123456789012")
        await keyring.create_key("123456789012")
        key_file.rename(tmp_path / "moved.key")
        with pytest.raises(ConfigurationError, match="does not exist: give the master key"):
            await open_keyring(store, settings, environ={})
        assert not key_file.exists()  # and none was made up
        moved = MasterKey.from_file(tmp_path / "moved.key", create=False)
        reopened = await open_keyring(
            store, settings, environ={"EVENTYARD_MASTER_KEY": moved.to_text()}
        )
        assert await reopened.key_count() == 1
        with pytest.raises(ConfigurationError, match="was encrypted with master key"):
            other = MasterKey.generate()
            await open_keyring(store, settings, environ={"EVENTYARD_MASTER_KEY": other.to_text()})
    finally:
        await store.close()


async def test_a_missing_key_file_is_not_made_up_while_connection_secrets_exist(
    tmp_path: Path,
) -> None:
    # no access key, but a connection's sealed secret: a new master key would open none
    # of them, and every API destination delivery would fail into its dead-letter queue
    settings = Settings(data_dir=str(tmp_path / "data"))
    key_file = Path(master_key_path(settings))
    store = open_store(settings.data_dir)
    await store.open()
    try:
        keyring = await open_keyring(store, settings, environ={})
        scope = Accounts(settings).home
        await ConnectionsApi(store, settings, keyring.master).create_connection(
            {
                "Name": "chat",
                "AuthorizationType": "API_KEY",
                "AuthParameters": {
                    "ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "k"}
                },
            },
            scope,
        )
        key_file.rename(tmp_path / "moved.key")
        with pytest.raises(ConfigurationError, match="connection secrets"):
            await open_keyring(store, settings, environ={})
        assert not key_file.exists()
    finally:
        await store.close()
