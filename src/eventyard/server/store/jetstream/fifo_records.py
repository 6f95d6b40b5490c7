"""The records of the JetStream FIFO queues (:mod:`.fifo`): names, payloads, receipts.

A stored FIFO message is a JSON head (id, SQS attributes, sent time, group, dedup id,
visible time) and the body; a queue's state record maps each received, undeleted
message to ``[count, first receive, hidden until, group]`` and each deleted one still
in the stream to ``[deleted at, group]``; a receipt is ``f<sequence>.<count>``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import orjson
from nats.js.errors import Error as JetStreamError

from eventyard.errors import StoreError
from eventyard.server.store.protocol import NewMessage

__all__ = [
    "Head",
    "State",
    "decode",
    "encode",
    "is_fifo",
    "nats_errors",
    "parse_receipt",
    "queue_hash",
    "receipt",
]


def is_fifo(queue: str) -> bool:
    """Whether ``queue`` is a FIFO queue (its name ends with ``.fifo``)."""
    return queue.endswith(".fifo")


def queue_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@contextlib.contextmanager
def nats_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except (nats.errors.Error, JetStreamError, TimeoutError, OSError) as exc:
        raise StoreError(f"JetStream: cannot {doing}: {exc or type(exc).__name__}") from exc


@dataclass(slots=True, frozen=True)
class Head:
    """A stored FIFO message, decoded."""

    seq: int
    message_id: str
    attributes: dict[str, dict[str, str]]
    sent: float
    group: str
    dedup: str | None
    visible: float
    body: str


@dataclass(slots=True)
class State:
    """A queue's receive bookkeeping: ``taken[seq] = [count, first, until, group]``,
    ``gone[seq] = [when it was deleted, group]``; ``revision`` is its record's sequence."""

    revision: int = 0
    taken: dict[int, list[Any]] = field(default_factory=dict)
    gone: dict[int, list[Any]] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "m": {str(k): v for k, v in self.taken.items()},
                "x": {str(k): v for k, v in self.gone.items()},
            }
        )

    def busy(self, now: float) -> set[str]:
        return {str(e[3]) for e in self.taken.values() if e[2] > now}


def encode(message_id: str, message: NewMessage, sent: float) -> bytes:
    head = {
        "id": message_id,
        "a": message.attributes,
        "t": sent,
        "g": message.group_id or "",
        "d": message.dedup_id,
        "v": sent + max(message.delay, 0.0),
    }
    return orjson.dumps(head) + b"\n" + message.body.encode("utf-8", "surrogatepass")


def decode(seq: int, data: bytes) -> Head:
    raw, _, body = data.partition(b"\n")
    try:
        head = orjson.loads(raw)
        return Head(
            seq=seq,
            message_id=str(head["id"]),
            attributes=head["a"],
            sent=float(head["t"]),
            group=str(head["g"]),
            dedup=head.get("d"),
            visible=float(head["v"]),
            body=body.decode("utf-8", "surrogatepass"),
        )
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise StoreError(f"JetStream: unreadable FIFO queue message {seq}: {exc}") from exc


def receipt(seq: int, count: int) -> str:
    return base64.urlsafe_b64encode(f"f{seq}.{count}".encode()).decode()


def parse_receipt(receipt: str) -> tuple[int, int] | None:
    try:
        text = base64.urlsafe_b64decode(receipt.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    seq, dot, count = text[1:].partition(".")
    if not text.startswith("f") or not dot or not seq.isdigit() or not count.isdigit():
        return None
    return int(seq), int(count)
