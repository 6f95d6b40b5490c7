"""The master key that encrypts access-key secrets at rest.

SigV4 is an HMAC keyed by the secret access key, so the server needs each secret in
plaintext when it verifies a request: secrets cannot be hashed the way passwords are.
They are encrypted instead, with AES-256-GCM under a master key that lives outside the
database (a file next to the data directory, or an environment variable), so a copy of
the database alone (a backup, a stolen disk image, ``eventyard store recover``'s copy)
does not reveal a single secret.

Each sealed secret records the fingerprint of the master key that sealed it, so a server
started with another master key fails with a message naming both fingerprints instead
of an opaque decryption error. The AES-GCM associated data binds a ciphertext to the
record it belongs to (the access key id): a ciphertext copied into another key's record
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventyard.errors import ConfigurationError

__all__ = ["ALGORITHM", "KEY_BYTES", "MasterKey"]

KEY_BYTES = 32
ALGORITHM = "AES-256-GCM"
_NONCE_BYTES = 12  # the size AES-GCM is specified for; random nonces are safe far past
# the number of keys a router will ever seal (the bound is about 2**32 per master key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class MasterKey:
    """A 256-bit AES-GCM key and where it came from.

    Attributes:
        source: where the key was read (a file path or an environment variable name),
            used in error messages; never the key itself.
    """

    def __init__(self, key: bytes, *, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError(
                f"The master key from {source} is {len(key)} bytes long; it must be "
                f"{KEY_BYTES} bytes, base64-encoded."
            )
        self._aead = AESGCM(key)
        self.source = source
        # A fingerprint identifies the key in stored records and messages without
        # revealing it (a hash of a 256-bit random key cannot be inverted).
        self.fingerprint = hashlib.sha256(b"eventyard-master-key\0" + key).hexdigest()[:16]
        self._text = _b64(key)

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint!r}, source={self.source!r})"

    @classmethod
    def generate(cls, *, source: str = "(generated)") -> MasterKey:
        """A new random key (kept in memory only)."""
        return cls(secrets.token_bytes(KEY_BYTES), source=source)

    @classmethod
    def from_text(cls, text: str, *, source: str) -> MasterKey:
        """The key written as base64 text, e.g. an environment variable's value.

        Raises:
            ConfigurationError: the text is not base64 of 32 bytes.
        """
        try:
            key = _unb64(text.strip())
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"The master key from {source} is not base64 text: it must be "
                f"{KEY_BYTES} random bytes, base64-encoded (as `eventyard` writes it)."
            ) from None
        return cls(key, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, create: bool = True) -> MasterKey:
        """The key kept in ``path``; created with a new random key when missing.

        The file is created ``0600`` (exclusively, so two processes never write two
        keys) in a directory created ``0700`` if needed. An existing file that other
        users may read is refused, as ``ssh`` refuses a private key that is too open.

        Raises:
            ConfigurationError: the file is missing and ``create`` is false, unreadable,
                readable by group or others, or does not hold a valid key.
        """
        file = Path(path)
        source = str(file)
        if create and not file.exists():
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = cls.generate(source=source)
            try:
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: read theirs below
            else:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(key._text + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                return key
        try:
            mode = file.stat().st_mode
            text = file.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigurationError(f"The master key file {source} does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"The master key file {source} cannot be read: {exc}"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"The master key file {source} has mode {stat.S_IMODE(mode):04o}: other users "
                f"may read it. Run `chmod 600 {source}`."
            )
        return cls.from_text(text, source=source)

    def to_text(self) -> str:
        """The key as base64 text, the form :meth:`from_text` reads (for an env var)."""
        return self._text

    def seal(self, plaintext: str, *, context: str) -> dict[str, Any]:
        """Encrypt ``plaintext``, bound to ``context`` (the record's key id).

        Returns a JSON-able record: algorithm, master key fingerprint, nonce, ciphertext.
        """
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return {
            "Algorithm": ALGORITHM,
            "MasterKey": self.fingerprint,
            "Nonce": _b64(nonce),
            "Ciphertext": _b64(sealed),
        }

    def unseal(self, sealed: Mapping[str, Any], *, context: str) -> str:
        """Decrypt a record :meth:`seal` made for the same ``context``.

        Raises:
            ConfigurationError: the record was sealed with another master key, or it
                does not decrypt (altered, or moved from another record).
        """
        fingerprint = sealed.get("MasterKey")
        if fingerprint != self.fingerprint:
            raise ConfigurationError(
                f"The secret of {context} was encrypted with master key {fingerprint}, but "
                f"the master key from {self.source} is {self.fingerprint}: start the server "
                "with the master key the keys were created with."
            )
        if sealed.get("Algorithm") != ALGORITHM:
            raise ConfigurationError(
                f"The secret of {context} uses algorithm {sealed.get('Algorithm')!r}; "
                f"this version of eventyard reads {ALGORITHM} only."
            )
        try:
            nonce = _unb64(str(sealed["Nonce"]))
            ciphertext = _unb64(str(sealed["Ciphertext"]))
            plaintext = self._aead.decrypt(nonce, ciphertext, context.encode())
        except (KeyError, binascii.Error, ValueError, InvalidTag):
            raise ConfigurationError(
                f"The secret of {context} does not decrypt with master key {self.fingerprint} "
                f"from {self.source}: the stored record was altered or belongs to another key."
            ) from None
        return plaintext.decode()
