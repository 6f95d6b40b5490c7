"""Accounts and their access keys: create, list, delete, and look up when verifying.

An **account** is a 12-digit id (as on AWS), with an optional name and an optional
organization id (what ``aws:PrincipalOrgID`` conditions of bus policies compare). An
**access key** belongs to one account; it is an access key id (``AKIA`` + 16 characters,
20 in all), a secret access key (40 characters) and a bearer token. The caller's key
chooses the account its requests act in.

How each credential is kept, and why:

* the **secret access key** signs requests (SigV4 is an HMAC keyed by it), so the server
  must be able to recover it: it is **encrypted** with the master key
  (:mod:`eventyard.server.auth.masterkey`), never stored in plaintext;
* the **bearer token** (``Authorization: Bearer …`` on the native endpoints) is only
  compared, so only its **SHA-256** is stored.

:meth:`Keyring.create_key` returns the secret and the token once; nothing can show them
again. Lookups by access key id are cached (the decrypted secret stays in memory, as it
must to verify signatures quickly); deleting a key or an account drops it from the cache
before the call returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventyard.errors import (
    ConfigurationError,
    ResourceAlreadyExists,
    ResourceNotFound,
    ValidationError,
)
from eventyard.server.auth.keystore import KeyStore
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.store import CatalogChange

__all__ = [
    "ACCESS_KEY_ID_RE",
    "ACCOUNT_ID_RE",
    "AccessKey",
    "Account",
    "Keyring",
    "NewKey",
    "Principal",
    "SigningKey",
    "hash_token",
]

ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
ACCESS_KEY_ID_RE = re.compile(r"^AKIA[A-Z2-7]{16}$")
_ORG_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")  # AWS Organizations' id pattern
_TOKEN_PREFIX = "eyk"
_ACCOUNT = "account"
_ACCESS_KEY = "access-key"
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified request comes from: an account, through one of its keys."""

    account_id: str
    access_key_id: str


@dataclass(frozen=True, slots=True)
class Account:
    """An account: its id, name, organization and creation time (epoch seconds)."""

    account_id: str
    name: str
    created: float
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An access key as listed: never its secret nor its token."""

    access_key_id: str
    account_id: str
    created: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created, with the credentials shown this one time only."""

    key: AccessKey
    secret_access_key: str = field(repr=False)
    bearer_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What SigV4 verification needs: the key, its account and its plaintext secret."""

    access_key_id: str
    account_id: str
    secret_access_key: str = field(repr=False)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a bearer token is stored.

    A plain, unsalted, fast hash is the right tool here, not bcrypt/scrypt/argon2:
    those slow hashes exist to make guessing low-entropy *passwords* expensive. A
    bearer token is 256 random bits chosen by the server, so there is nothing to
    guess and no dictionary to precompute; SHA-256's preimage resistance is the whole
    defence, and a slow hash would only cost CPU on every request.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def _new_access_key_id() -> str:
    # 16 base32 characters: 80 random bits, the alphabet AWS uses for its key ids
    return "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode()


def _new_secret() -> str:
    # 30 random bytes: exactly 40 URL-safe characters, the length of an AWS secret
    return secrets.token_urlsafe(30)


def _new_token(access_key_id: str) -> str:
    # The key id inside the token lets a lookup find the one record to compare against.
    return f"{_TOKEN_PREFIX}_{access_key_id}_{secrets.token_urlsafe(32)}"


def _account(doc: dict[str, Any]) -> Account:
    return Account(
        account_id=doc["AccountId"],
        name=doc.get("Name", ""),
        created=float(doc["CreationTime"]),
        org_id=doc.get("OrgId"),
    )


def _access_key(doc: dict[str, Any]) -> AccessKey:
    return AccessKey(
        access_key_id=doc["AccessKeyId"],
        account_id=doc["AccountId"],
        created=float(doc["CreationTime"]),
        description=doc.get("Description", ""),
    )


@dataclass(frozen=True, slots=True)
class _Cached:
    signing: SigningKey
    token_sha256: str = field(repr=False)


class Keyring:
    """Accounts and access keys over a :class:`KeyStore`, secrets sealed by a master key.

    Also the :class:`~eventyard.server.auth.sigv4.KeyLookup` that SigV4 verification
    uses (:meth:`signing_key`) and the bearer-token check (:meth:`authenticate_bearer`).

    Args:
        store: where records are kept.
        master: the key that seals and unseals secrets.
        clock: the time source for creation times (injectable for tests).
    """

    def __init__(
        self, store: KeyStore, master: MasterKey, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.master = master
        self.clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        # Bumped by every deletion or change: a lookup that read a record before it
        # finished must not put that record back into the cache after it.
        self._generation = 0
        # The ids of the keys that exist, once listed: the API asks on every request
        # whether any key exists (dev mode), so the answer must not cost a store read.
        # Keys created and deleted here update it, and so does the catalog's change feed
        # for those another process (an admin command) creates or deletes
        # (:meth:`catalog_changed`), so it stays exact.
        self._key_ids: set[str] | None = None

    # -- accounts ---------------------------------------------------------------------
    async def create_account(
        self, account_id: str | None = None, *, name: str = "", org_id: str | None = None
    ) -> Account:
        """Create an account; a random 12-digit id when ``account_id`` is None.

        Raises:
            ValidationError: the account id is not 12 digits, or the org id is not an
                AWS Organizations id (``o-`` and 10 to 32 lowercase letters or digits).
            ResourceAlreadyExists: an account with that id exists.
        """
        if org_id is not None and not _ORG_ID_RE.match(org_id):
            raise ValidationError(
                f"Organization id {org_id!r} is not valid: it must look like o-a1b2c3d4e5."
            )
        if account_id is not None and not ACCOUNT_ID_RE.match(account_id):
            raise ValidationError(f"Account id {account_id!r} is not valid: it must be 12 digits.")
        while True:
            chosen = account_id or f"{secrets.randbelow(10**12):012d}"
            account = Account(chosen, name, self.clock(), org_id)
            doc: dict[str, Any] = {
                "AccountId": chosen,
                "Name": name,
                "CreationTime": account.created,
            }
            if org_id is not None:
                doc["OrgId"] = org_id
            if await self.store.create(_ACCOUNT, chosen, doc):
                return account
            if account_id is not None:
                raise ResourceAlreadyExists(f"Account {account_id} already exists.")
            # a random id collided with an existing account: draw another

    async def get_account(self, account_id: str) -> Account | None:
        """One account, or None."""
        doc = await self.store.get(_ACCOUNT, account_id)
        return _account(doc) if doc is not None else None

    async def list_accounts(self) -> list[Account]:
        """Every account, by id."""
        return [_account(doc) for doc in await self.store.list(_ACCOUNT)]

    async def delete_account(self, account_id: str) -> bool:
        """Delete an account and all its keys; returns whether the account existed.

        The keys go first, so a key never outlives its account, even if this call is
        interrupted half-way (a retry finishes the job).
        """
        for key in await self.list_keys(account_id):
            await self.delete_key(key.access_key_id)
        return await self.store.delete(_ACCOUNT, account_id)

    # -- access keys ------------------------------------------------------------------
    async def create_key(self, account_id: str, *, description: str = "") -> NewKey:
        """Create an access key for ``account_id``.

        Returns the key with its secret and bearer token: the only time they are shown.

        Raises:
            ResourceNotFound: the account does not exist.
        """
        if await self.store.get(_ACCOUNT, account_id) is None:
            raise ResourceNotFound(f"Account {account_id} does not exist.")
        while True:
            key_id = _new_access_key_id()
            secret = _new_secret()
            token = _new_token(key_id)
            key = AccessKey(key_id, account_id, self.clock(), description)
            doc = {
                "AccessKeyId": key_id,
                "AccountId": account_id,
                "CreationTime": key.created,
                "Description": description,
                "Secret": self.master.seal(secret, context=key_id),
                "TokenSha256": hash_token(token),
            }
            if await self.store.create(_ACCESS_KEY, key_id, doc):
                if self._key_ids is not None:
                    self._key_ids.add(key_id)
                return NewKey(key, secret, token)

    async def list_keys(self, account_id: str | None = None) -> list[AccessKey]:
        """The keys of one account (every key when None), by key id; never secrets."""
        keys = [_access_key(doc) for doc in await self.store.list(_ACCESS_KEY)]
        return [key for key in keys if account_id is None or key.account_id == account_id]

    async def delete_key(self, access_key_id: str) -> bool:
        """Delete an access key; it stops working before this returns."""
        existed = await self.store.delete(_ACCESS_KEY, access_key_id)
        self._forget(access_key_id)
        return existed

    async def key_count(self) -> int:
        """How many access keys exist (listed once, then kept up to date)."""
        if self._key_ids is None:
            keys = await self.store.list(_ACCESS_KEY)
            self._key_ids = {str(doc["AccessKeyId"]) for doc in keys}
        return len(self._key_ids)

    def has_keys(self) -> bool:
        """Whether any access key exists, as last counted; no I/O (call
        :meth:`key_count` once first, as the server does at start-up)."""
        return bool(self._key_ids)

    def catalog_changed(self, change: CatalogChange) -> None:
        """Follow a committed change of the catalog, made by any process: a key created,
        changed or deleted elsewhere is counted, and never served from the cache as it
        was (a deleted key stops working here too)."""
        if change.kind != _ACCESS_KEY:
            return
        if change.entry is None:
            self._forget(change.key)
            return
        # changed: looked up afresh next time
        self._generation += 1
        self._cache.pop(change.key, None)
        if self._key_ids is not None:
            self._key_ids.add(change.key)

    def _forget(self, access_key_id: str) -> None:
        """A key is gone. After the store delete: a lookup that read the record before
        it and finishes later sees the generation change and does not cache it."""
        if self._key_ids is not None:
            self._key_ids.discard(access_key_id)
        self._generation += 1
        self._cache.pop(access_key_id, None)

    # -- lookups ----------------------------------------------------------------------
    async def signing_key(self, access_key_id: str) -> SigningKey | None:
        """The key with its plaintext secret, for SigV4; None when there is no such key.

        Raises:
            ConfigurationError: the secret does not decrypt with this master key.
        """
        cached = await self._lookup(access_key_id)
        return cached.signing if cached is not None else None

    async def authenticate_bearer(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None when it is not valid."""
        prefix, _, rest = token.partition("_")
        access_key_id, _, _ = rest.partition("_")
        if prefix != _TOKEN_PREFIX or not ACCESS_KEY_ID_RE.match(access_key_id):
            return None
        cached = await self._lookup(access_key_id)
        if cached is None or not hmac.compare_digest(cached.token_sha256, hash_token(token)):
            return None
        return Principal(cached.signing.account_id, access_key_id)

    async def check_master_key(self) -> None:
        """Unseal every stored secret once, so a wrong master key fails at start-up.

        Raises:
            ConfigurationError: a secret does not decrypt with this master key.
        """
        for doc in await self.store.list(_ACCESS_KEY):
            self.master.unseal(doc["Secret"], context=doc["AccessKeyId"])

    async def _lookup(self, access_key_id: str) -> _Cached | None:
        cached = self._cache.get(access_key_id)
        if cached is not None:
            self._cache.move_to_end(access_key_id)
            return cached
        if not ACCESS_KEY_ID_RE.match(access_key_id):
            return None  # not a key this server could have made: no store read
        generation = self._generation
        doc = await self.store.get(_ACCESS_KEY, access_key_id)
        if doc is None:
            return None  # misses are not cached: random ids must not fill memory
        try:
            secret = self.master.unseal(doc["Secret"], context=access_key_id)
        except KeyError:
            raise ConfigurationError(f"Access key {access_key_id} has no stored secret.") from None
        cached = _Cached(SigningKey(access_key_id, doc["AccountId"], secret), doc["TokenSha256"])
        if generation == self._generation:
            self._cache[access_key_id] = cached
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return cached
