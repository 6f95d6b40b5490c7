"""Names and encodings of the JetStream store: tokens, subjects, stream names, headers.

NATS subjects and KV keys allow few characters (a KV key: ``[-/_=.a-zA-Z0-9]``, a ``.``
separating non-empty tokens), while our keys are any Unicode text. :func:`encode_token`
maps any string to one non-empty token of ``[-/_=a-zA-Z0-9]`` and back
(:func:`decode_token`): letters, digits, ``-``, ``_`` and ``/`` stay as they are (so
``default/r1/t`` stays readable in ``nats stream view``), every other UTF-8 byte becomes
``=XX`` (upper-case hex), and the empty string is ``=``. Consumer names cannot hold ``/``
(they name files on the server), so they use a hash (:func:`consumer_name`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from eventyard.errors import StoreError

__all__ = [
    "Names",
    "archive_token",
    "consumer_name",
    "decode_token",
    "encode_token",
    "fmt_float",
]

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/")
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")


def encode_token(text: str) -> str:
    """``text`` as one subject token / KV key token (non-empty, reversible)."""
    if not text:
        return "="
    data = text.encode("utf-8", "surrogatepass")
    if all(b in _PLAIN for b in data):
        return text
    return "".join(chr(b) if b in _PLAIN else f"={b:02X}" for b in data)


def decode_token(token: str) -> str:
    """The string :func:`encode_token` made ``token`` from.

    Raises:
        StoreError: ``token`` is not an encoded token.
    """
    if token == "=":
        return ""
    if "=" not in token:
        return token
    out = bytearray()
    i = 0
    try:
        while i < len(token):
            if token[i] == "=":
                out.append(int(token[i + 1 : i + 3], 16))
                i += 3
            else:
                out += token[i].encode("ascii")
                i += 1
        return out.decode("utf-8", "surrogatepass")
    except (ValueError, UnicodeError) as exc:
        raise StoreError(f"not an encoded JetStream key token: {token!r}") from exc


def archive_token(archive: str) -> str:
    """An archive key (any text, up to 300 characters) as one subject token: the key's
    :func:`encode_token` when that is short, else ``~`` and a hash (``~`` is no
    character of an encoded token, so the two never meet)."""
    token = encode_token(archive)
    if len(token) <= 64:
        return token
    digest = hashlib.blake2b(archive.encode("utf-8", "surrogatepass"), digest_size=16)
    return "~" + digest.hexdigest()


def consumer_name(kind: str, name: str) -> str:
    """A durable consumer name for ``name`` (any text): ``<kind>_<hash>``."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{kind}_{digest}"


def fmt_float(value: float) -> str:
    """A float as a header value that :func:`float` reads back exactly."""
    return repr(float(value))


@dataclass(slots=True, frozen=True)
class Names:
    """Every stream, bucket and subject name of one store, derived from its prefix.

    Two stores with the same prefix on the same NATS system share everything (they are
    processes of one eventyard); different prefixes share nothing.
    """

    prefix: str

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise StoreError(f"invalid JetStream prefix {self.prefix!r}: use 1-32 of [A-Za-z0-9_-]")

    @property
    def catalog_bucket(self) -> str:
        return f"{self.prefix}_catalog"

    @property
    def catalog_stream(self) -> str:
        return f"KV_{self.catalog_bucket}"

    @property
    def catalog_subjects(self) -> str:
        return f"$KV.{self.catalog_bucket}."

    @property
    def log_stream(self) -> str:
        return f"{self.prefix}_log"

    def log_subject(self, bus: str) -> str:
        """The subject of ``bus``'s events stored when they were ingested; the others
        are in its off-clock buckets (:func:`.timeindex.off_subject`)."""
        return f"{self.prefix}.log.{encode_token(bus)}"

    def bus_of(self, subject: str) -> str:
        """The bus of a log subject."""
        return decode_token(subject[len(self.prefix) + 5 :].split(".", 1)[0])

    @property
    def archive_stream(self) -> str:
        return f"{self.prefix}_archive"

    def archive_subject(self, archive: str, hour: int | str, on_clock: bool | None) -> str:
        """``<prefix>.arc.<archive>.<event-hour>.<n|o>`` (``*`` for a wildcard)."""
        clock = "*" if on_clock is None else ("n" if on_clock else "o")
        return f"{self.prefix}.arc.{archive_token(archive)}.{hour}.{clock}"

    def archive_all(self, archive: str) -> str:
        return f"{self.prefix}.arc.{archive_token(archive)}.>"

    def archive_ledger(self, archive: str) -> str:
        """The subject of an archive's count and size deltas (:mod:`.archives`)."""
        return f"{self.prefix}.arcstat.{archive_token(archive)}"

    @property
    def trace_stream(self) -> str:
        return f"{self.prefix}_trace"

    def trace_subject(self, bucket: int | str) -> str:
        return f"{self.prefix}.trace.{bucket}"

    @property
    def deliveries_stream(self) -> str:
        return f"{self.prefix}_deliveries"

    @property
    def deliveries_all(self) -> str:
        return f"{self.prefix}.dlv.>"

    def delivery_subject(self, target: str) -> str:
        return f"{self.prefix}.dlv.{encode_token(target)}"

    def target_of(self, subject: str) -> str:
        return decode_token(subject[len(self.prefix) + 5 :])

    @property
    def state_stream(self) -> str:
        return f"{self.prefix}_dstate"

    def state_subject(self, seq: int) -> str:
        return f"{self.prefix}.dstate.{seq}"

    @property
    def journal_stream(self) -> str:
        return f"{self.prefix}_journal"

    def journal_subject(self, writer: str) -> str:
        return f"{self.prefix}.journal.{writer}"

    @property
    def wake_deliveries(self) -> str:
        return f"{self.prefix}.wake.deliveries"

    @property
    def wake_queues(self) -> str:
        return f"{self.prefix}.wake.queues"
