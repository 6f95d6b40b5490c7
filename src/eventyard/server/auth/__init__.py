"""Authentication and authorization: who is calling, and may they do this.

* :mod:`~eventyard.server.auth.sigv4`: verify AWS Signature Version 4 (header and
  presigned query) with botocore's canonicalisation; AWS's error codes per API.
* :mod:`~eventyard.server.auth.keys`: accounts and access keys (:class:`Keyring`), the
  lookup SigV4 uses, and bearer tokens for the native endpoints.
* :mod:`~eventyard.server.auth.keystore`: where the keyring keeps its records (the
  store's catalog, or memory).
* :mod:`~eventyard.server.auth.masterkey`: the key, kept outside the database, that
  encrypts secret access keys at rest.
* :mod:`~eventyard.server.auth.policy`: evaluation of event bus resource policies for
  cross-account PutEvents, and the PutEvents error code of a refusal.

``docs/security.md`` describes the model. The router enforces bus policies with
:func:`~eventyard.server.auth.policy.refusal` (cross-account PutEvents and bus targets).
The HTTP layer calls it through
:mod:`eventyard.server.api.authn`; the admin commands through :mod:`eventyard.server.admin`.

May import: :mod:`eventyard.server.store` (the catalog), :mod:`eventyard.errors` and
botocore / cryptography. Never the API, which will call it.
"""

from __future__ import annotations

from eventyard.server.auth.keys import (
    AccessKey,
    Account,
    Keyring,
    NewKey,
    Principal,
    SigningKey,
    hash_token,
)
from eventyard.server.auth.keystore import CatalogKeyStore, KeyStore, MemoryKeyStore
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.auth.policy import Decision, PolicyRequest, evaluate
from eventyard.server.auth.sigv4 import KeyLookup, SignedRequestParts, verify

__all__ = [
    "AccessKey",
    "Account",
    "CatalogKeyStore",
    "Decision",
    "KeyLookup",
    "KeyStore",
    "Keyring",
    "MasterKey",
    "MemoryKeyStore",
    "NewKey",
    "PolicyRequest",
    "Principal",
    "SignedRequestParts",
    "SigningKey",
    "evaluate",
    "hash_token",
    "verify",
]
