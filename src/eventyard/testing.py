"""Helpers for tests: a real server on a free port, and an in-memory router for consumers.

:class:`ServerProcess` starts ``eventyard serve`` as a subprocess on 127.0.0.1 with port
0, reads the URL it prints, and waits until ``/readyz`` answers 200. It is what
eventyard's own end-to-end tests and benchmarks use, and users can use it in theirs::

    with ServerProcess(data_dir=tmp_path) as server:
        events = boto3.client("events", endpoint_url=server.url, ...)

:class:`TestRouter` runs a :class:`~eventyard.Consumer`'s handlers with no server at
all: a published event is matched against the handlers' patterns by the same
:class:`~eventyard.patterns.Matcher` the server uses, and each matching handler is
called and settled with the worker's rules (``Retry``, ``Drop``, exceptions and
``max_attempts``, invalid details), without waiting out retry delays::

    router = TestRouter(consumer)
    await router.publish(Event(source="shop", detail_type="OrderPlaced", detail={...}))
    assert router.delivered(reserve_stock) == [...]
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from eventyard.envelope import Envelope, make_envelope
from eventyard.errors import EventyardError, PutEventsFailed
from eventyard.patterns import Matcher
from eventyard.sdk.consumer import Consumer
from eventyard.sdk.event import Event
from eventyard.sdk.handler import Handler, Outcome
from eventyard.sdk.settle import settle

__all__ = ["Delivery", "ServerProcess", "TestRouter"]

# The verdicts of eventyard.sdk.settle that end a delivery, as Delivery.outcome says them.
_OUTCOMES: dict[str, Literal["acked", "dropped", "dead-lettered"]] = {
    "ack": "acked",
    "drop": "dropped",
    "dead-letter": "dead-lettered",
}


class ServerProcess:
    """A real eventyard server in a subprocess.

    Args:
        data_dir: the store directory (kept between restarts of the same object).
        env: extra ``EVENTYARD_*`` variables, e.g. ``{"EVENTYARD_RETRY_BASE_DELAY": "0.05"}``.
            ``EVENTYARD_OUTBOUND_ALLOW`` defaults to loopback, so that webhooks a test
            runs on this machine receive deliveries.
        args: extra ``eventyard serve`` arguments.
        startup_timeout: seconds to wait for ``/readyz``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = dict(env or {})
        self.args = list(args or [])
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        """Start the server and wait until it is ready."""
        # a test's webhooks listen on this machine: let deliveries reach loopback
        env = {
            "EVENTYARD_OUTBOUND_ALLOW": "127.0.0.0/8,::1,localhost",
            **os.environ,
            **self.env,
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, "-m", "eventyard", "serve", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--data-dir", str(self.data_dir), *self.args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # stderr goes to a file: an unread pipe would block a chatty server
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("eventyard listening on "):
            self.process.wait(timeout=10)
            raise EventyardError(f"server did not start: {line!r} {self.stderr()[-2000:]}")
        self.url = line.removeprefix("eventyard listening on ")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EventyardError(f"server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise EventyardError(f"server at {self.url} not ready after {self.startup_timeout} s")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._close_pipes()
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipes()

    @property
    def log_path(self) -> Path:
        """The file that collects the server's stderr."""
        return self.data_dir / "server.log"

    def stderr(self) -> str:
        """What the server has written to stderr so far."""
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def _close_pipes(self) -> None:
        if self.process is None:
            return
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(slots=True, frozen=True)
class Delivery:
    """What happened to one event at one handler of a :class:`TestRouter`.

    Attributes:
        handler: the handler's name.
        event: the event as the handler received it.
        outcome: ``acked`` (the handler returned), ``dropped`` (it raised ``Drop``) or
            ``dead-lettered`` (invalid detail, or ``max_attempts`` attempts failed).
        attempts: how each attempt ended, in order (the last one settled the event).
    """

    handler: str
    event: Event
    outcome: Literal["acked", "dropped", "dead-lettered"]
    attempts: tuple[Outcome, ...]

    @property
    def reason(self) -> str:
        """Why the last attempt ended as it did ("" for an acknowledged event)."""
        return self.attempts[-1].reason


class TestRouter:
    """An in-memory bus that runs a consumer's handlers inside a test, with no server.

    Events published on the consumer's bus are matched like the server matches them;
    each matching handler (in registration order) is attempted until it settles: a
    return acknowledges, ``Drop`` drops, an exception or ``Retry`` retries at once (the
    delay is recorded, not waited), and after the handler's ``max_attempts`` the event is
    dead-lettered. A detail that does not fit the handler's pydantic model is
    dead-lettered at once. Events on another bus reach no handler.

    Args:
        consumer: the consumer whose handlers run.
        account: the account written into envelopes.
        region: the region written into envelopes.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self, consumer: Consumer, *, account: str = "000000000000", region: str = "us-east-1"
    ) -> None:
        self.consumer = consumer
        self.account = account
        self.region = region
        self.deliveries: list[Delivery] = []
        self._matcher = Matcher()
        self._handlers: dict[str, Handler] = {}
        for handler in consumer.handlers:
            self._matcher.add(handler.name, handler.pattern)
            self._handlers[handler.name] = handler

    async def publish(self, *events: Event | Mapping[str, Any]) -> list[Delivery]:
        """Publish events and run the handlers they match until each has settled.

        Args:
            events: :class:`~eventyard.Event` objects or PutEvents entries
                (``{"Source": …, "DetailType": …, "Detail": "<json>"}``).

        Returns:
            This call's deliveries (also appended to :attr:`deliveries`).

        Raises:
            PutEventsFailed: an entry is not valid (as PutEvents would reject it).
        """
        envelopes = [self._envelope(i, item) for i, item in enumerate(events)]
        settled: list[Delivery] = []
        for envelope in envelopes:
            if envelope.bus != self.consumer.bus:
                continue
            event = Event.from_envelope(envelope.event, bus=envelope.bus)
            for rule_id in self._matcher.match(envelope.event):
                settled.append(await self._deliver(self._handlers[rule_id], event))
        self.deliveries.extend(settled)
        return settled

    def publish_sync(self, *events: Event | Mapping[str, Any]) -> list[Delivery]:
        """:meth:`publish` for synchronous tests (it runs its own event loop).

        Raises:
            RuntimeError: called while an event loop runs (``await publish`` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.publish(*events))
        raise RuntimeError("an event loop is running: use `await router.publish(...)`")

    def delivered(self, handler: str | Callable[..., Any]) -> list[Event]:
        """The events ``handler`` (a function or name) acknowledged by returning."""
        return [d.event for d in self._of(handler) if d.outcome == "acked"]

    def dropped(self, handler: str | Callable[..., Any]) -> list[Event]:
        """The events ``handler`` dropped with ``Drop``."""
        return [d.event for d in self._of(handler) if d.outcome == "dropped"]

    def dead_lettered(self, handler: str | Callable[..., Any]) -> list[tuple[Event, str]]:
        """The events that went to ``handler``'s dead-letter queue, with the reasons."""
        return [(d.event, d.reason) for d in self._of(handler) if d.outcome == "dead-lettered"]

    def clear(self) -> None:
        """Forget all deliveries."""
        self.deliveries.clear()

    def _of(self, which: str | Callable[..., Any]) -> list[Delivery]:
        name = self.consumer.handler(which).name
        return [d for d in self.deliveries if d.handler == name]

    def _envelope(self, index: int, item: Event | Mapping[str, Any]) -> Envelope:
        entry = item.to_entry() if isinstance(item, Event) else dict(item)
        entry.setdefault("EventBusName", self.consumer.bus)
        built = make_envelope(entry, account=self.account, region=self.region)
        if not isinstance(built, Envelope):
            raise PutEventsFailed([(index, built.code, built.message)])
        return built

    async def _deliver(self, handler: Handler, event: Event) -> Delivery:
        attempts: list[Outcome] = []
        while True:
            outcome = await handler.attempt(event)
            attempts.append(outcome)
            verdict = settle(
                outcome,
                attempt=len(attempts),
                max_attempts=handler.max_attempts,
                backoff=self.consumer.backoff,
            )
            if verdict.action != "retry":  # a retry's delay is not waited for
                return Delivery(handler.name, event, _OUTCOMES[verdict.action], tuple(attempts))
