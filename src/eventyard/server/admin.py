"""The admin channel of a data directory: accounts and keys, with or without a server.

``eventyard accounts …`` and ``eventyard keys …`` change the keyring of one data
directory. The SQLite store is locked to one process while ``serve`` runs, so a second
process cannot open it; the running server therefore serves the same operations on a
**unix socket beside the database** (``eventyard.db.admin.sock``), and the commands use
it when a server answers there, else open the store themselves (:func:`run_admin`).

Only the data directory's owner can use the socket: it is created ``0600`` inside the
store's ``0700`` directory, and the server also checks the peer's user id
(``SO_PEERCRED``) and refuses any other user than its own (or root). The protocol is
one JSON object per connection each way: ``{"op": …, "args": {…}}`` then
``{"result": …}`` or ``{"error": {"type": …, "code": …, "message": …}}``. Changes made
through the socket go through the server's own :class:`~eventyard.server.auth.Keyring`,
so they apply to the next request (a new key works at once, a deleted key stops at once,
and the first key ends dev mode at once).

The master key that seals the secrets comes from ``EVENTYARD_MASTER_KEY`` (its base64
text) or else from the ``master_key_file`` setting (default ``master.key`` beside the
database), created ``0600`` on first use (:func:`load_master_key`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import orjson
import structlog

from eventyard.errors import (
    ConfigurationError,
    EventyardError,
    ResourceAlreadyExists,
    ResourceNotFound,
    ServiceError,
    StoreError,
    ValidationError,
)
from eventyard.server.auth.keys import Keyring
from eventyard.server.auth.keystore import CatalogKeyStore
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import RULE, SIGNING
from eventyard.server.config import Settings
from eventyard.server.store import Store, database_path, open_store

__all__ = [
    "MASTER_KEY_ENV",
    "OPERATIONS",
    "AdminServer",
    "admin_socket_path",
    "call_admin",
    "load_master_key",
    "master_key_path",
    "open_keyring",
    "perform",
    "run_admin",
]

log = structlog.get_logger("eventyard.server.admin")

MASTER_KEY_ENV = "EVENTYARD_MASTER_KEY"
OPERATIONS = frozenset(
    {"create_account", "list_accounts", "delete_account", "create_key", "list_keys", "delete_key"}
)
_MAX_REQUEST = 64 * 1024
_TIMEOUT = 30.0
# sun_path holds 108 bytes with its final NUL; a longer path is reached through the
# directory's file descriptor (/proc/self/fd/N/name), which is always short
_MAX_SOCKET_PATH = 107
# errors that cross the socket keep their class, so the command fails as it would locally
_ERRORS: dict[str, type[ServiceError]] = {
    "ResourceNotFound": ResourceNotFound,
    "ResourceAlreadyExists": ResourceAlreadyExists,
    "ValidationError": ValidationError,
}


def admin_socket_path(settings: Settings) -> str:
    """The admin socket of the store ``settings.data_dir`` names."""
    return database_path(settings.data_dir) + ".admin.sock"


def master_key_path(settings: Settings) -> str:
    """The master key file: ``master_key_file``, else ``master.key`` beside the database."""
    if settings.master_key_file:
        return settings.master_key_file
    return os.path.join(os.path.dirname(database_path(settings.data_dir)), "master.key")


def load_master_key(
    settings: Settings, environ: Mapping[str, str] | None = None, *, create: bool = True
) -> MasterKey:
    """The master key: ``EVENTYARD_MASTER_KEY``'s text, else the key file.

    Args:
        settings: where the key file is (``master_key_file``, else beside the database).
        environ: the environment (default ``os.environ``).
        create: create the key file with a new key when it is missing.

    Raises:
        ConfigurationError: the variable or the file does not hold a valid key, the
            file is readable by other users, or it is missing and ``create`` is false.
    """
    env = os.environ if environ is None else environ
    text = env.get(MASTER_KEY_ENV)
    if text:
        return MasterKey.from_text(text, source=MASTER_KEY_ENV)
    return MasterKey.from_file(master_key_path(settings), create=create)


async def open_keyring(
    store: Store, settings: Settings, environ: Mapping[str, str] | None = None
) -> Keyring:
    """The keyring of an open store, its master key checked against every stored secret.

    A missing key file is created only while no secret is sealed (no access key, no
    webhook signing secret): when some are, they were sealed with a key that is elsewhere
    (another file, ``EVENTYARD_MASTER_KEY``), and a new one would only hide that.

    Raises:
        ConfigurationError: the master key cannot be read, is missing while keys exist,
            or does not open the stored secrets.
    """
    try:
        master = load_master_key(settings, environ, create=False)
    except ConfigurationError:
        if os.path.exists(master_key_path(settings)):
            raise
        probe = Keyring(CatalogKeyStore(store), MasterKey.generate())
        if await probe.key_count():
            raise ConfigurationError(
                f"the store has access keys but the master key file "
                f"{master_key_path(settings)} does not exist: give the master key they were "
                f"created with ({MASTER_KEY_ENV}, or master_key_file)"
            ) from None
        if await _has_signing_secrets(store):
            raise ConfigurationError(
                f"the store has webhook signing secrets but the master key file "
                f"{master_key_path(settings)} does not exist: give the master key they were "
                f"sealed with ({MASTER_KEY_ENV}, or master_key_file)"
            ) from None
        master = load_master_key(settings, environ)
    keyring = Keyring(CatalogKeyStore(store), master)
    await keyring.check_master_key()
    await keyring.key_count()
    return keyring


async def _has_signing_secrets(store: Store) -> bool:
    """Whether a webhook target of any rule has sealed signing secrets."""
    return any(
        SIGNING in target
        for entry in await store.catalog_list(RULE)
        for target in entry.doc.get("Targets") or ()
    )


# -- the operations ---------------------------------------------------------------------


def _account(account: Any) -> dict[str, Any]:
    data = asdict(account)
    return {
        "AccountId": data["account_id"],
        "Name": data["name"],
        "OrgId": data["org_id"],
        "CreationTime": data["created"],
    }


def _key(key: Any) -> dict[str, Any]:
    data = asdict(key)
    return {
        "AccessKeyId": data["access_key_id"],
        "AccountId": data["account_id"],
        "Description": data["description"],
        "CreationTime": data["created"],
    }


def _text(args: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string.")
    return value


async def perform(keyring: Keyring, op: str, args: Mapping[str, Any]) -> Any:
    """Run one admin operation on ``keyring``; returns its JSON-able result.

    Raises:
        ValidationError: an unknown operation or a bad argument.
        ResourceNotFound: the account or key does not exist.
        ResourceAlreadyExists: the account id is taken.
    """
    if op == "create_account":
        account = await keyring.create_account(
            _text(args, "account_id"), name=_text(args, "name") or "", org_id=_text(args, "org_id")
        )
        return _account(account)
    if op == "list_accounts":
        return [_account(account) for account in await keyring.list_accounts()]
    if op == "delete_account":
        account_id = _text(args, "account_id", required=True)
        assert account_id is not None
        if not await keyring.delete_account(account_id):
            raise ResourceNotFound(f"Account {account_id} does not exist.")
        return {"AccountId": account_id, "Deleted": True}
    if op == "create_key":
        account_id = _text(args, "account_id", required=True)
        assert account_id is not None
        new = await keyring.create_key(account_id, description=_text(args, "description") or "")
        return {
            **_key(new.key),
            "SecretAccessKey": new.secret_access_key,
            "BearerToken": new.bearer_token,
        }
    if op == "list_keys":
        return [_key(key) for key in await keyring.list_keys(_text(args, "account_id"))]
    if op == "delete_key":
        key_id = _text(args, "access_key_id", required=True)
        assert key_id is not None
        account_id = _text(args, "account_id")
        if account_id is not None and key_id not in {
            key.access_key_id for key in await keyring.list_keys(account_id)
        }:
            raise ResourceNotFound(f"Access key {key_id} of account {account_id} does not exist.")
        if not await keyring.delete_key(key_id):
            raise ResourceNotFound(f"Access key {key_id} does not exist.")
        return {"AccessKeyId": key_id, "Deleted": True}
    raise ValidationError(f"Unknown admin operation {op!r}.")


# -- the socket, server side ------------------------------------------------------------


@contextlib.contextmanager
def _reachable(path: str) -> Iterator[str]:
    """A path ``bind``/``connect`` accept for ``path``, however long ``path`` is."""
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _, uid, _ = struct.unpack("3i", creds)
    return int(uid)


class AdminServer:
    """Serves :func:`perform` on the admin socket of a running server.

    Args:
        path: the socket's path.
        keyring: the server's keyring.
    """

    def __init__(self, path: str, keyring: Keyring) -> None:
        self.path = path
        self.keyring = keyring
        self._server: asyncio.AbstractServer | None = None
        self._uid = os.getuid()

    async def start(self) -> None:
        """Listen on the socket (a stale one from a killed server is replaced).

        The store's lock is held when this runs, so no other server uses this path.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with _reachable(self.path) as where:
            self._server = await asyncio.start_unix_server(self._serve, where)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = _peer_uid(sock) if sock is not None else None
            # read (and bound) the request in every case, so a refused client gets the
            # answer instead of a broken pipe
            raw = await asyncio.wait_for(_read_request(reader), _TIMEOUT)
            if uid is None or uid not in (self._uid, 0):
                log.warning("admin connection refused", peer_uid=uid)
                answer: dict[str, Any] = {
                    "error": {"type": "", "code": "AccessDenied", "message": "not the owner"}
                }
            else:
                answer = await self._answer(raw)
            writer.write(orjson.dumps(answer))
            await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = orjson.loads(raw)
            op, args = request["op"], request.get("args") or {}
            if not isinstance(op, str) or not isinstance(args, dict):
                raise TypeError(op)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error_of(ValidationError("Malformed admin request."))
        try:
            result = await perform(self.keyring, op, args)
        except ServiceError as exc:
            return _error_of(exc)
        except Exception:
            log.exception("admin operation failed", op=op)
            return {"error": {"type": "", "code": "InternalError", "message": "internal error"}}
        if not op.startswith("list_"):
            log.info("admin operation", op=op)
        return {"result": result}


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """The request, up to the client's end of writing (at most ``_MAX_REQUEST`` bytes)."""
    data = bytearray()
    while len(data) <= _MAX_REQUEST:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _error_of(exc: ServiceError) -> dict[str, Any]:
    return {"error": {"type": type(exc).__name__, "code": exc.code, "message": exc.message}}


# -- the client side --------------------------------------------------------------------


def call_admin(path: str, op: str, args: Mapping[str, Any]) -> tuple[bool, Any]:
    """Run ``op`` through a running server's admin socket.

    Returns:
        ``(False, None)`` when no server listens on ``path``; else ``(True, result)``.

    Raises:
        ServiceError: the server refused the operation (its own error class when known).
        StoreError: the socket exists but the exchange failed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_TIMEOUT)
    with sock:
        try:
            with _reachable(path) as where:
                sock.connect(where)
        except (FileNotFoundError, ConnectionRefusedError):
            return False, None
        except OSError as exc:
            raise StoreError(f"cannot use the admin socket {path}: {exc.strerror}") from None
        try:
            sock.sendall(orjson.dumps({"op": op, "args": dict(args)}))
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answer = orjson.loads(b"".join(chunks))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StoreError(f"the server's admin socket {path} failed: {exc}") from None
    if "error" in answer:
        error = answer["error"]
        kind = _ERRORS.get(error.get("type", ""), ServiceError)
        raise kind(str(error.get("message")), code=str(error.get("code")))
    return True, answer.get("result")


async def _direct(settings: Settings, op: str, args: Mapping[str, Any]) -> Any:
    store = open_store(settings.data_dir)
    await store.open()
    try:
        # a key sealed with another master key would make the keyring unusable
        keyring = await open_keyring(store, settings)
        return await perform(keyring, op, args)
    finally:
        await store.close()


def run_admin(settings: Settings, op: str, args: Mapping[str, Any]) -> Any:
    """Run an admin operation on the data directory of ``settings``.

    Through the running server's socket when one answers, else on the store itself.

    Raises:
        ServiceError: the operation was refused.
        StoreError: the store is locked by a process that does not answer on the
            socket, or cannot be opened.
        ConfigurationError: the master key cannot be read or does not match.
    """
    path = admin_socket_path(settings)
    answered, result = call_admin(path, op, args)
    if answered:
        return result
    try:
        return asyncio.run(_direct(settings, op, args))
    except StoreError as exc:
        if "in use by" in str(exc):
            raise StoreError(
                f"{exc}, and no server answers on its admin socket {path}: is that "
                "process an eventyard server of another version, or still starting?"
            ) from None
        raise
    except EventyardError:
        raise
    except OSError as exc:
        raise ConfigurationError(f"cannot use {settings.data_dir}: {exc}") from None
