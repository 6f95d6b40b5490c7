"""What the JetStream queues put on the wire: names, payloads, receipts, records.

* :class:`QueueNames`: the subjects and consumer names of one queue (``<prefix>.q.<queue>``
  for its messages, ``<prefix>.qd.<queue>.<id>`` for its scheduled ones,
  ``<prefix>.qr.<queue>.<seq>`` for its receive records), queue names encoded with the
  store's :func:`~eventyard.server.store.jetstream.codec.encode_token`.
* a message's payload: one JSON line (message id, SQS attributes, sent time), then the
  body as UTF-8 (:func:`encode_message`, :func:`decode_message`).
* a receipt handle: the delivery's ack subject in URL-safe base64; :func:`parse_receipt`
  takes only an ack subject of the given stream and consumer, all of whose numbers are
  numbers, so a client's receipt can never make the store publish anywhere else.
* a receive record: ``{"n": delivery count, "f": first receive time}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import re
from dataclasses import dataclass

import orjson

from eventyard.errors import StoreError
from eventyard.server.store.jetstream.codec import consumer_name, encode_token

__all__ = [
    "QueueNames",
    "Receipt",
    "decode_message",
    "encode_message",
    "make_receipt",
    "nak",
    "parse_receipt",
    "parse_record",
    "record",
    "schedule_at",
]

_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(slots=True, frozen=True)
class QueueNames:
    """The JetStream names of one queue of a store with ``prefix``."""

    name: str
    subject: str  # its visible messages
    delayed: str  # the subject filter of its scheduled (delayed) messages
    receipts: str  # the subject prefix of its receive records (``<receipts><seq>``)
    consumer: str  # the durable pull consumer every process shares
    counter: str  # the consumer that counts its scheduled messages

    @classmethod
    def of(cls, prefix: str, name: str) -> QueueNames:
        token = encode_token(name)
        return cls(
            name=name,
            subject=f"{prefix}.q.{token}",
            delayed=f"{prefix}.qd.{token}.*",
            receipts=f"{prefix}.qr.{token}.",
            consumer=consumer_name("queue", name),
            counter=consumer_name("delayed", name),
        )

    def schedule_subject(self, dedup_id: str) -> str:
        """The subject of one scheduled message (one schedule per subject)."""
        return self.delayed[:-1] + consumer_name("m", dedup_id)


@dataclass(slots=True, frozen=True)
class Receipt:
    """A parsed receipt: the ack subject of one delivery and what it names."""

    subject: str
    deliveries: int
    seq: int


def encode_message(
    message_id: str, attributes: dict[str, dict[str, str]], body: str, sent: float
) -> bytes:
    head = orjson.dumps({"id": message_id, "a": attributes, "t": sent})
    return head + b"\n" + body.encode("utf-8", "surrogatepass")


def decode_message(data: bytes) -> tuple[str, dict[str, dict[str, str]], float, str]:
    """``(message id, attributes, sent, body)`` of a payload.

    Raises:
        StoreError: not a queue message payload.
    """
    head, _, body = data.partition(b"\n")
    try:
        meta = orjson.loads(head)
        return (
            str(meta["id"]),
            meta["a"],
            float(meta["t"]),
            body.decode("utf-8", "surrogatepass"),
        )
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise StoreError(f"JetStream: unreadable queue message: {exc}") from exc


def make_receipt(reply: str) -> str:
    """The receipt handle of the delivery whose ack subject is ``reply``."""
    return base64.urlsafe_b64encode(reply.encode()).decode()


def parse_receipt(receipt: str, stream: str, consumer: str) -> Receipt | None:
    """The delivery a receipt names, if it is an ack subject of ``stream``/``consumer``."""
    try:
        subject = base64.urlsafe_b64decode(receipt.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    tokens = subject.split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<time>.<pending>, or the v2
    # form with a domain and an account hash after ACK and a random token at the end.
    if len(tokens) == 9:
        head, numbers = tokens[2:4], tokens[4:9]
    elif len(tokens) >= 11:
        head, numbers = tokens[4:6], tokens[6:11]
    else:
        return None
    if tokens[:2] != ["$JS", "ACK"] or head != [stream, consumer]:
        return None
    if not all(_DIGITS.fullmatch(n) for n in numbers):
        return None
    return Receipt(subject=subject, deliveries=int(numbers[0]), seq=int(numbers[1]))


def schedule_at(when: float) -> str:
    """A ``Nats-Schedule`` value: ``@at`` and RFC 3339 in UTC with microseconds, rounded
    up, so that the message never appears before ``when``."""
    moment = datetime.datetime.fromtimestamp(math.ceil(when * 1e6) / 1e6, datetime.UTC)
    return "@at " + moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def nak(delay: float) -> bytes:
    """The ``-NAK`` that redelivers after ``delay`` seconds (at once for 0)."""
    if delay <= 0:
        return b"-NAK"
    return b"-NAK " + orjson.dumps({"delay": int(delay * 1e9)})


def record(deliveries: int, first_receive: float) -> bytes:
    """A receive record's payload."""
    return orjson.dumps({"n": deliveries, "f": first_receive})


def parse_record(subject: str, data: bytes) -> tuple[int, float]:
    """A receive record's ``(delivery count, first receive time)``.

    Raises:
        StoreError: not a receive record.
    """
    try:
        parsed = orjson.loads(data)
        return int(parsed["n"]), float(parsed["f"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"JetStream: unreadable queue receive record {subject}") from exc
