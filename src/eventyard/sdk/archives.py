"""Archives and replays from Python: the methods :class:`~eventyard.Client` and
:class:`~eventyard.AsyncClient` get from :class:`ArchivesMixin` and its twin.

::

    with Client() as client:
        client.create_archive("orders-archive", bus="orders", pattern={"source": ["shop"]})
        ...
        replay = client.start_replay(
            "fix-1", archive="orders-archive", start=t0, end=t1, rules=["billing"]
        )
        while not client.describe_replay("fix-1").done:
            time.sleep(1)

The flows (requests and answers) are written once, as generators driven by either twin
(:mod:`eventyard.sdk._core`); the results are typed: :class:`Archive`, :class:`Replay`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import orjson

from eventyard.errors import ValidationError
from eventyard.sdk._core import EVENTS, Call, Core, Flow

__all__ = ["Archive", "ArchivesMixin", "AsyncArchivesMixin", "Replay"]

_T = TypeVar("_T")
_FINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


@dataclass(slots=True, frozen=True)
class Archive:
    """An archive, as DescribeArchive (or ListArchives) tells it.

    Attributes:
        name: its name.
        arn: its ARN ("" in a list, which AWS answers without it).
        bus_arn: the ARN of the bus whose events it keeps.
        state: ``ENABLED`` (eventyard's archives are enabled from creation).
        retention_days: days it keeps events; 0 forever.
        event_count: events it holds.
        size_bytes: the size of those events.
        created: when it was created (epoch seconds).
        pattern: its event pattern (JSON text), None when it keeps every event.
        description: its description, if any.
    """

    name: str
    arn: str
    bus_arn: str
    state: str
    retention_days: int
    event_count: int
    size_bytes: int
    created: float
    pattern: str | None = None
    description: str | None = None

    @classmethod
    def from_aws(cls, raw: Mapping[str, Any]) -> Archive:
        """The archive of a DescribeArchive answer or a ListArchives item."""
        return cls(
            name=str(raw["ArchiveName"]),
            arn=str(raw.get("ArchiveArn") or ""),
            bus_arn=str(raw.get("EventSourceArn") or ""),
            state=str(raw.get("State") or ""),
            retention_days=int(raw.get("RetentionDays") or 0),
            event_count=int(raw.get("EventCount") or 0),
            size_bytes=int(raw.get("SizeBytes") or 0),
            created=_epoch(raw.get("CreationTime")) or 0.0,
            pattern=raw.get("EventPattern"),
            description=raw.get("Description"),
        )


@dataclass(slots=True, frozen=True)
class Replay:
    """A replay, as DescribeReplay (or ListReplays) tells it. Times are epoch seconds.

    Attributes:
        name: its name.
        state: ``STARTING``, ``RUNNING``, ``CANCELLING``, ``COMPLETED``, ``CANCELLED``
            or ``FAILED``.
        archive_arn: the archive it replays.
        start: the start of its window of event time (inclusive).
        end: the end of its window (exclusive).
        last_replayed: how far it got (event time), None before it replayed anything.
        started: when it was started.
        ended: when it ended, None while it runs.
        reason: why it is in its state (``FAILED``), if told.
        arn: its ARN ("" in a list).
        bus_arn: the bus it replays to ("" in a list).
        rules: the rule ARNs it replays to (empty: every rule of the bus).
    """

    name: str
    state: str
    archive_arn: str
    start: float
    end: float
    last_replayed: float | None
    started: float
    ended: float | None
    reason: str | None = None
    arn: str = ""
    bus_arn: str = ""
    rules: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """Whether it ended: ``COMPLETED``, ``CANCELLED`` or ``FAILED``."""
        return self.state in _FINAL

    @property
    def progress(self) -> float:
        """How far it got through its window, from 0 to 1."""
        if self.state == "COMPLETED":
            return 1.0
        if self.last_replayed is None or self.end <= self.start:
            return 0.0
        return max(0.0, min(1.0, (self.last_replayed - self.start) / (self.end - self.start)))

    @classmethod
    def from_aws(cls, raw: Mapping[str, Any]) -> Replay:
        """The replay of a DescribeReplay answer or a ListReplays item."""
        destination = raw.get("Destination") or {}
        return cls(
            name=str(raw["ReplayName"]),
            state=str(raw.get("State") or ""),
            archive_arn=str(raw.get("EventSourceArn") or ""),
            start=_epoch(raw.get("EventStartTime")) or 0.0,
            end=_epoch(raw.get("EventEndTime")) or 0.0,
            last_replayed=_epoch(raw.get("EventLastReplayedTime")),
            started=_epoch(raw.get("ReplayStartTime")) or 0.0,
            ended=_epoch(raw.get("ReplayEndTime")),
            reason=raw.get("StateReason"),
            arn=str(raw.get("ReplayArn") or ""),
            bus_arn=str(destination.get("Arn") or ""),
            rules=tuple(destination.get("FilterArns") or ()),
        )


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _when(value: float | datetime, label: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(f"{label} must be an aware datetime (with a time zone)")
        return value.timestamp()
    return float(value)


def _rule_arn(bus_arn: str, rule: str) -> str:
    """The ARN of rule ``rule`` (a name, or already an ARN) on the bus ``bus_arn``."""
    if rule.startswith("arn:"):
        return rule
    prefix, _, bus = bus_arn.partition(":event-bus/")
    return f"{prefix}:rule/{rule}" if bus == "default" else f"{prefix}:rule/{bus}/{rule}"


# -- the flows, driven by either twin ------------------------------------------------------


def _call(op: str, **params: Any) -> Call:
    return Call(EVENTS, op, {k: v for k, v in params.items() if v is not None})


def create_archive_flow(
    core: Core,
    name: str,
    *,
    bus: str,
    pattern: Mapping[str, Any] | str | None,
    retention_days: int,
    description: str | None,
) -> Flow[str]:
    """CreateArchive (the bus named by name or ARN); returns the archive's ARN."""
    bus_arn = bus
    if not bus.startswith("arn:"):
        described = yield from core.exchange(_call("DescribeEventBus", Name=bus))
        bus_arn = str(described["Arn"])
    text = pattern if isinstance(pattern, str) or pattern is None else orjson.dumps(pattern)
    result = yield from core.exchange(
        _call(
            "CreateArchive",
            ArchiveName=name,
            EventSourceArn=bus_arn,
            EventPattern=text.decode() if isinstance(text, bytes) else text,
            RetentionDays=retention_days,
            Description=description,
        )
    )
    return str(result["ArchiveArn"])


def describe_archive_flow(core: Core, name: str) -> Flow[Archive]:
    """DescribeArchive."""
    result = yield from core.exchange(_call("DescribeArchive", ArchiveName=name))
    return Archive.from_aws(result)


def list_archives_flow(core: Core, prefix: str | None) -> Flow[list[Archive]]:
    """ListArchives, every page."""
    items: list[Archive] = []
    token: str | None = None
    while True:
        result = yield from core.exchange(
            _call("ListArchives", NamePrefix=prefix or None, NextToken=token)
        )
        items.extend(Archive.from_aws(raw) for raw in result.get("Archives") or ())
        token = result.get("NextToken")
        if not token:
            return items


def delete_archive_flow(core: Core, name: str) -> Flow[None]:
    """DeleteArchive."""
    yield from core.exchange(_call("DeleteArchive", ArchiveName=name))


def start_replay_flow(
    core: Core,
    name: str,
    *,
    archive: str,
    start: float | datetime,
    end: float | datetime,
    rules: Sequence[str] | None,
    description: str | None,
) -> Flow[Replay]:
    """StartReplay of ``archive`` to its own bus (only to ``rules`` when given)."""
    described = yield from core.exchange(_call("DescribeArchive", ArchiveName=archive))
    bus_arn = str(described["EventSourceArn"])
    destination: dict[str, Any] = {"Arn": bus_arn}
    if rules:
        destination["FilterArns"] = [_rule_arn(bus_arn, rule) for rule in rules]
    yield from core.exchange(
        _call(
            "StartReplay",
            ReplayName=name,
            EventSourceArn=described["ArchiveArn"],
            EventStartTime=_when(start, "start"),
            EventEndTime=_when(end, "end"),
            Destination=destination,
            Description=description,
        )
    )
    return (yield from describe_replay_flow(core, name))


def describe_replay_flow(core: Core, name: str) -> Flow[Replay]:
    """DescribeReplay."""
    result = yield from core.exchange(_call("DescribeReplay", ReplayName=name))
    return Replay.from_aws(result)


def list_replays_flow(core: Core, prefix: str | None) -> Flow[list[Replay]]:
    """ListReplays, every page."""
    items: list[Replay] = []
    token: str | None = None
    while True:
        result = yield from core.exchange(
            _call("ListReplays", NamePrefix=prefix or None, NextToken=token)
        )
        items.extend(Replay.from_aws(raw) for raw in result.get("Replays") or ())
        token = result.get("NextToken")
        if not token:
            return items


def cancel_replay_flow(core: Core, name: str) -> Flow[str]:
    """CancelReplay; returns the state it answers (``CANCELLING``)."""
    result = yield from core.exchange(_call("CancelReplay", ReplayName=name))
    return str(result.get("State") or "")


# -- the twins -----------------------------------------------------------------------------


class _Sync(Protocol):
    _core: Core

    def _run(self, flow: Flow[_T]) -> _T: ...


class _Async(Protocol):
    _core: Core

    async def _run(self, flow: Flow[_T]) -> _T: ...


class ArchivesMixin:
    """The archive and replay methods of :class:`~eventyard.Client`."""

    def create_archive(
        self: _Sync,
        name: str,
        *,
        bus: str = "default",
        pattern: Mapping[str, Any] | str | None = None,
        retention_days: int = 0,
        description: str | None = None,
    ) -> str:
        """Create an archive of a bus's events (those ``pattern`` matches, or all).

        Args:
            name: the archive name.
            bus: the bus name or ARN.
            pattern: an event pattern (a dict or JSON text); None keeps every event.
            retention_days: days to keep events; 0 keeps them forever.
            description: an optional description.

        Returns:
            The archive's ARN.

        Raises:
            ResourceAlreadyExists: an archive of that name exists.
            ResourceNotFound: no such bus.
        """
        return self._run(
            create_archive_flow(
                self._core,
                name,
                bus=bus,
                pattern=pattern,
                retention_days=retention_days,
                description=description,
            )
        )

    def describe_archive(self: _Sync, name: str) -> Archive:
        """Describe an archive (with its event count and size).

        Args:
            name: the archive name.

        Returns:
            The archive.

        Raises:
            ResourceNotFound: no such archive.
        """
        return self._run(describe_archive_flow(self._core, name))

    def list_archives(self: _Sync, prefix: str | None = None) -> list[Archive]:
        """List the archives, by name.

        Args:
            prefix: only archives whose name starts with it.

        Returns:
            The archives (without their ARN, as AWS lists them).
        """
        return self._run(list_archives_flow(self._core, prefix))

    def delete_archive(self: _Sync, name: str) -> None:
        """Delete an archive and the events it kept.

        Args:
            name: the archive name.

        Raises:
            ResourceNotFound: no such archive.
        """
        return self._run(delete_archive_flow(self._core, name))

    def start_replay(
        self: _Sync,
        name: str,
        *,
        archive: str,
        start: float | datetime,
        end: float | datetime,
        rules: Sequence[str] | None = None,
        description: str | None = None,
    ) -> Replay:
        """Replay an archive's events of ``[start, end)`` (event time) to its bus.

        Args:
            name: the replay name.
            archive: the archive name.
            start: the window's start (epoch seconds or an aware datetime).
            end: the window's end, exclusive.
            rules: only these rules (names on the archive's bus, or ARNs); None: every
                rule of the bus.
            description: an optional description.

        Returns:
            The replay, as just started.

        Raises:
            ValidationError: an empty window, or an unknown archive.
            ResourceAlreadyExists: a replay of that name exists.
            LimitExceeded: 10 replays are active.
        """
        return self._run(
            start_replay_flow(
                self._core,
                name,
                archive=archive,
                start=start,
                end=end,
                rules=rules,
                description=description,
            )
        )

    def describe_replay(self: _Sync, name: str) -> Replay:
        """Describe a replay: its state and progress.

        Args:
            name: the replay name.

        Returns:
            The replay.

        Raises:
            ResourceNotFound: no such replay.
        """
        return self._run(describe_replay_flow(self._core, name))

    def list_replays(self: _Sync, prefix: str | None = None) -> list[Replay]:
        """List the replays, by name.

        Args:
            prefix: only replays whose name starts with it.

        Returns:
            The replays (without their ARN and destination, as AWS lists them).
        """
        return self._run(list_replays_flow(self._core, prefix))

    def cancel_replay(self: _Sync, name: str) -> str:
        """Cancel a replay.

        Args:
            name: the replay name.

        Returns:
            Its state: ``CANCELLING`` (``CANCELLED`` once it stops).

        Raises:
            ResourceNotFound: no such replay.
            IllegalStatus: it is not ``STARTING`` or ``RUNNING``.
        """
        return self._run(cancel_replay_flow(self._core, name))


class AsyncArchivesMixin:
    """The archive and replay methods of :class:`~eventyard.AsyncClient`."""

    async def create_archive(
        self: _Async,
        name: str,
        *,
        bus: str = "default",
        pattern: Mapping[str, Any] | str | None = None,
        retention_days: int = 0,
        description: str | None = None,
    ) -> str:
        """Create an archive of a bus's events (those ``pattern`` matches, or all).

        Args:
            name: the archive name.
            bus: the bus name or ARN.
            pattern: an event pattern (a dict or JSON text); None keeps every event.
            retention_days: days to keep events; 0 keeps them forever.
            description: an optional description.

        Returns:
            The archive's ARN.

        Raises:
            ResourceAlreadyExists: an archive of that name exists.
            ResourceNotFound: no such bus.
        """
        return await self._run(
            create_archive_flow(
                self._core,
                name,
                bus=bus,
                pattern=pattern,
                retention_days=retention_days,
                description=description,
            )
        )

    async def describe_archive(self: _Async, name: str) -> Archive:
        """Describe an archive (with its event count and size).

        Args:
            name: the archive name.

        Returns:
            The archive.

        Raises:
            ResourceNotFound: no such archive.
        """
        return await self._run(describe_archive_flow(self._core, name))

    async def list_archives(self: _Async, prefix: str | None = None) -> list[Archive]:
        """List the archives, by name.

        Args:
            prefix: only archives whose name starts with it.

        Returns:
            The archives (without their ARN, as AWS lists them).
        """
        return await self._run(list_archives_flow(self._core, prefix))

    async def delete_archive(self: _Async, name: str) -> None:
        """Delete an archive and the events it kept.

        Args:
            name: the archive name.

        Raises:
            ResourceNotFound: no such archive.
        """
        return await self._run(delete_archive_flow(self._core, name))

    async def start_replay(
        self: _Async,
        name: str,
        *,
        archive: str,
        start: float | datetime,
        end: float | datetime,
        rules: Sequence[str] | None = None,
        description: str | None = None,
    ) -> Replay:
        """Replay an archive's events of ``[start, end)`` (event time) to its bus.

        Args:
            name: the replay name.
            archive: the archive name.
            start: the window's start (epoch seconds or an aware datetime).
            end: the window's end, exclusive.
            rules: only these rules (names on the archive's bus, or ARNs); None: every
                rule of the bus.
            description: an optional description.

        Returns:
            The replay, as just started.

        Raises:
            ValidationError: an empty window, or an unknown archive.
            ResourceAlreadyExists: a replay of that name exists.
            LimitExceeded: 10 replays are active.
        """
        return await self._run(
            start_replay_flow(
                self._core,
                name,
                archive=archive,
                start=start,
                end=end,
                rules=rules,
                description=description,
            )
        )

    async def describe_replay(self: _Async, name: str) -> Replay:
        """Describe a replay: its state and progress.

        Args:
            name: the replay name.

        Returns:
            The replay.

        Raises:
            ResourceNotFound: no such replay.
        """
        return await self._run(describe_replay_flow(self._core, name))

    async def list_replays(self: _Async, prefix: str | None = None) -> list[Replay]:
        """List the replays, by name.

        Args:
            prefix: only replays whose name starts with it.

        Returns:
            The replays (without their ARN and destination, as AWS lists them).
        """
        return await self._run(list_replays_flow(self._core, prefix))

    async def cancel_replay(self: _Async, name: str) -> str:
        """Cancel a replay.

        Args:
            name: the replay name.

        Returns:
            Its state: ``CANCELLING`` (``CANCELLED`` once it stops).

        Raises:
            ResourceNotFound: no such replay.
            IllegalStatus: it is not ``STARTING`` or ``RUNNING``.
        """
        return await self._run(cancel_replay_flow(self._core, name))
