"""Accounts, access keys, the master key and bearer tokens."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from eventyard.errors import (
    ConfigurationError,
    ResourceAlreadyExists,
    ResourceNotFound,
    ValidationError,
)
from eventyard.server.auth import CatalogKeyStore, Keyring, MasterKey, MemoryKeyStore, hash_token
from eventyard.server.auth.keys import ACCESS_KEY_ID_RE, ACCOUNT_ID_RE
from eventyard.server.auth.keystore import KeyStore
from eventyard.server.store.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "catalog"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    """Every keyring test runs on the memory store and on the SQLite store's catalog."""
    if request.param == "memory":
        yield MemoryKeyStore()
        return
    sqlite = SQLiteStore(str(tmp_path / "data" / "eventyard.db"))
    await sqlite.open()
    try:
        yield CatalogKeyStore(sqlite)
    finally:
        await sqlite.close()


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def keyring(store: KeyStore, master: MasterKey) -> Keyring:
    return Keyring(store, master, clock=lambda: 1_700_000_000.0)


async def test_an_account_gets_a_random_twelve_digit_id(keyring: Keyring) -> None:
    account = await keyring.create_account(name="shop")
    assert ACCOUNT_ID_RE.match(account.account_id)
    assert (account.name, account.created) == ("shop", 1_700_000_000.0)
    assert await keyring.list_accounts() == [account]


async def test_an_account_id_can_be_chosen_once(keyring: Keyring) -> None:
    await keyring.create_account("111122223333", org_id="o-abcdef1234")
    with pytest.raises(ResourceAlreadyExists):
        await keyring.create_account("111122223333")
    account = await keyring.get_account("111122223333")
    assert account is not None and account.org_id == "o-abcdef1234"


@pytest.mark.parametrize("bad", ["12345", "abcdefghijkl", "1111222233334"])
async def test_an_account_id_must_be_twelve_digits(keyring: Keyring, bad: str) -> None:
    with pytest.raises(ValidationError):
        await keyring.create_account(bad)


async def test_an_org_id_must_look_like_one(keyring: Keyring) -> None:
    with pytest.raises(ValidationError):
        await keyring.create_account(org_id="my-org")


async def test_a_key_has_aws_shaped_credentials_shown_once(keyring: Keyring) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id, description="ci")
    assert ACCESS_KEY_ID_RE.match(new.key.access_key_id) and len(new.key.access_key_id) == 20
    assert len(new.secret_access_key) == 40
    assert new.secret_access_key not in repr(new)
    assert await keyring.list_keys(account.account_id) == [new.key]
    assert new.key.description == "ci"


async def test_a_key_needs_an_existing_account(keyring: Keyring) -> None:
    with pytest.raises(ResourceNotFound):
        await keyring.create_key("999999999999")


async def test_the_stored_record_holds_no_plaintext_credential(
    keyring: Keyring, store: KeyStore
) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id)
    stored = orjson.dumps(await store.list("access-key")).decode()
    assert new.key.access_key_id in stored
    assert new.secret_access_key not in stored
    assert new.bearer_token not in stored
    assert hash_token(new.bearer_token) in stored


async def test_the_signing_key_decrypts_the_secret(keyring: Keyring) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id)
    signing = await keyring.signing_key(new.key.access_key_id)
    assert signing is not None
    assert signing.secret_access_key == new.secret_access_key
    assert signing.account_id == account.account_id
    assert new.secret_access_key not in repr(signing)


async def test_a_wrong_master_key_fails_naming_both_fingerprints(
    store: KeyStore, master: MasterKey
) -> None:
    first = Keyring(store, master)
    account = await first.create_account()
    new = await first.create_key(account.account_id)
    other = MasterKey.generate(source="EVENTYARD_MASTER_KEY")
    second = Keyring(store, other)
    with pytest.raises(ConfigurationError) as caught:
        await second.signing_key(new.key.access_key_id)
    assert master.fingerprint in str(caught.value)
    assert other.fingerprint in str(caught.value)
    assert "EVENTYARD_MASTER_KEY" in str(caught.value)
    with pytest.raises(ConfigurationError):
        await second.check_master_key()
    await first.check_master_key()


async def test_a_secret_moved_to_another_record_does_not_decrypt(
    keyring: Keyring, store: KeyStore
) -> None:
    account = await keyring.create_account()
    one = await keyring.create_key(account.account_id)
    two = await keyring.create_key(account.account_id)
    doc_one = await store.get("access-key", one.key.access_key_id)
    doc_two = await store.get("access-key", two.key.access_key_id)
    assert doc_one is not None and doc_two is not None
    doc_two["Secret"] = doc_one["Secret"]
    await store.put("access-key", two.key.access_key_id, doc_two)
    with pytest.raises(ConfigurationError, match="does not decrypt"):
        await keyring.signing_key(two.key.access_key_id)


async def test_deleting_a_key_stops_it_at_once(keyring: Keyring) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id)
    assert await keyring.signing_key(new.key.access_key_id) is not None  # now cached
    assert await keyring.delete_key(new.key.access_key_id)
    assert await keyring.signing_key(new.key.access_key_id) is None
    assert await keyring.authenticate_bearer(new.bearer_token) is None
    assert not await keyring.delete_key(new.key.access_key_id)


async def test_deleting_an_account_deletes_its_keys_only(keyring: Keyring) -> None:
    gone = await keyring.create_account()
    kept = await keyring.create_account()
    gone_key = await keyring.create_key(gone.account_id)
    kept_key = await keyring.create_key(kept.account_id)
    assert await keyring.signing_key(gone_key.key.access_key_id) is not None
    assert await keyring.delete_account(gone.account_id)
    assert await keyring.signing_key(gone_key.key.access_key_id) is None
    assert await keyring.list_keys() == [kept_key.key]
    assert [a.account_id for a in await keyring.list_accounts()] == [kept.account_id]


async def test_a_bearer_token_authenticates_its_key(keyring: Keyring) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id)
    principal = await keyring.authenticate_bearer(new.bearer_token)
    assert principal is not None
    assert (principal.account_id, principal.access_key_id) == (
        account.account_id,
        new.key.access_key_id,
    )


@pytest.mark.parametrize("mangle", ["suffix", "swap-key", "garbage", "empty"])
async def test_a_wrong_bearer_token_authenticates_nobody(keyring: Keyring, mangle: str) -> None:
    account = await keyring.create_account()
    new = await keyring.create_key(account.account_id)
    other = await keyring.create_key(account.account_id)
    token = {
        "suffix": new.bearer_token + "x",
        "swap-key": new.bearer_token.replace(new.key.access_key_id, other.key.access_key_id),
        "garbage": "eyk_notakey_abc",
        "empty": "",
    }[mangle]
    assert await keyring.authenticate_bearer(token) is None


def test_a_token_hash_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- the master key file -----------------------------------------------------------------


def test_a_missing_master_key_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "eventyard.key"
    key = MasterKey.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = MasterKey.from_file(path)
    assert again.fingerprint == key.fingerprint
    assert key.to_text() not in repr(key)


def test_a_master_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.key"
    MasterKey.from_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        MasterKey.from_file(path)


def test_a_missing_master_key_file_is_an_error_when_not_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        MasterKey.from_file(tmp_path / "nope.key", create=False)


@pytest.mark.parametrize("text", ["not base64!", "c2hvcnQ="])
def test_a_master_key_text_must_be_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(ConfigurationError):
        MasterKey.from_text(text, source="EVENTYARD_MASTER_KEY")


def test_a_master_key_round_trips_through_its_text() -> None:
    key = MasterKey.generate()
    same = MasterKey.from_text(key.to_text(), source="env")
    sealed = key.seal("secret", context="AKIA1")
    assert same.unseal(sealed, context="AKIA1") == "secret"
    assert "secret" not in orjson.dumps(sealed).decode()
