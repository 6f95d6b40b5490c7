"""Archives and replays: the EventBridge operations, with AWS's shapes.

:class:`ArchivesApi` serves CreateArchive, DescribeArchive, ListArchives, UpdateArchive,
DeleteArchive, StartReplay, DescribeReplay, ListReplays and CancelReplay for
:class:`~eventyard.server.api.aws.EventsApi`, in the caller's account (another account's
archive or replay answers as if it did not exist). Documents are typed in
:mod:`eventyard.server.catalog` (kinds ``archive`` and ``replay``).

An archive takes effect before CreateArchive returns: the router matches its pattern from
the next event on (:mod:`eventyard.server.router`) and the store keeps a copy of each
event it matches. ``EventCount`` and ``SizeBytes`` are the store's exact counts
(AWS's are eventually consistent). StartReplay only records the replay, ``STARTING``;
a replayer (:mod:`eventyard.server.replay`) of some process takes it up. CancelReplay
answers ``CANCELLING``; the replayer ends it ``CANCELLED``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from eventyard.errors import (
    ConcurrentModification,
    IllegalStatus,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
    ValidationError,
)
from eventyard.patterns import CompiledPattern
from eventyard.server.accounts import AccountScope, parse_bus_arn, parse_rule_arn
from eventyard.server.api.validation import (
    NAME_PATTERN,
    Violations,
    decode_token,
    encode_token,
)
from eventyard.server.catalog import (
    ARCHIVE,
    ARCHIVE_STORE,
    INTERNAL_BUS,
    REPLAY,
    ArchiveDoc,
    ReplayDestinationDoc,
    ReplayDoc,
    archive_store,
    new_archive_store,
    read_modify_write,
    rule_key,
)
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "ACTIVE_REPLAY_STATES",
    "ARCHIVE_STATES",
    "MAX_ACTIVE_REPLAYS",
    "REPLAY_STATES",
    "ArchivesApi",
    "ReplayHooks",
]

#: AWS's quota: replays STARTING or RUNNING at once, per account and region
MAX_ACTIVE_REPLAYS: Final = 10
ARCHIVE_STATES: Final = (
    "ENABLED",
    "DISABLED",
    "CREATING",
    "UPDATING",
    "CREATE_FAILED",
    "UPDATE_FAILED",
)
REPLAY_STATES: Final = ("STARTING", "RUNNING", "CANCELLING", "COMPLETED", "CANCELLED", "FAILED")
#: the states a replay can be cancelled in, which the quota counts
ACTIVE_REPLAY_STATES: Final = ("STARTING", "RUNNING")
ARCHIVE_ARN_PATTERN: Final = r"^arn:aws([a-z]|\-)*:events:([a-z]|\d|\-)*:([0-9]{12})?:.+\/.+$"
_PAGE: Final = 100
_RETRIES: Final = 8
# the epoch seconds of 1970-01-01 and 2200-01-01: the timestamps a replay accepts
_FIRST_DATE: Final = 0.0
_LAST_DATE: Final = 7258118400.0
_ARCHIVE_OUT: Final = (
    "ArchiveArn",
    "ArchiveName",
    "EventSourceArn",
    "Description",
    "EventPattern",
    "State",
    "StateReason",
    "RetentionDays",
    "SizeBytes",
    "EventCount",
    "CreationTime",
)
_ARCHIVE_LIST: Final = (
    "ArchiveName",
    "EventSourceArn",
    "State",
    "StateReason",
    "RetentionDays",
    "SizeBytes",
    "EventCount",
    "CreationTime",
)
_REPLAY_OUT: Final = (
    "ReplayName",
    "ReplayArn",
    "Description",
    "State",
    "StateReason",
    "EventSourceArn",
    "Destination",
    "EventStartTime",
    "EventEndTime",
    "EventLastReplayedTime",
    "ReplayStartTime",
    "ReplayEndTime",
)
_REPLAY_LIST: Final = (
    "ReplayName",
    "EventSourceArn",
    "State",
    "StateReason",
    "EventStartTime",
    "EventEndTime",
    "EventLastReplayedTime",
    "ReplayStartTime",
    "ReplayEndTime",
)


class ReplayHooks(Protocol):
    """What the archive operations need from the router."""

    async def sync_catalog(self) -> None:
        """Apply every catalog change committed so far (an archive's pattern included)."""
        ...


_Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]


def _pick(doc: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: doc[k] for k in keys if doc.get(k) is not None}


def _archive_missing(name: str) -> ResourceNotFound:
    return ResourceNotFound(f"Archive {name} does not exist.")


def _replay_missing(name: str) -> ResourceNotFound:
    return ResourceNotFound(f"Replay {name} does not exist.")


def _refuse_kms(params: Mapping[str, Any]) -> None:
    if params.get("KmsKeyIdentifier"):
        raise ValidationError(
            "KmsKeyIdentifier is not supported by eventyard: events are stored unencrypted."
        )


def _timestamp(v: Violations, key: str, path: str) -> float | None:
    """A timestamp member (epoch seconds, as botocore sends them, or ISO 8601 text)."""
    value = v.params.get(key)
    if value is None:
        v.add(None, path, "must not be null")
        return None
    when: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if when is None or math.isnan(when):
        raise ValidationError(f"Invalid type for parameter {key}: expected a timestamp.")
    if not _FIRST_DATE <= when < _LAST_DATE:
        raise ValidationError(
            f"Parameter {key} is not valid. Reason: it must be between 1970 and 2199."
        )
    return when


def _page(
    items: list[CatalogEntry], name_key: str, scope: str, token: str | None, limit: int | None
) -> tuple[list[CatalogEntry], dict[str, str]]:
    after = decode_token(token, scope)
    if after is not None:
        items = [item for item in items if str(item.doc.get(name_key)) > after]
    size = limit or _PAGE
    page = items[:size]
    if len(items) > size:
        return page, {"NextToken": encode_token(scope, str(page[-1].doc.get(name_key)))}
    return page, {}


class ArchivesApi:
    """The archive and replay operations, in the caller's account.

    Args:
        store: the store whose catalog keeps archives and replays, and whose archive
            part counts and drops archived events.
        router: applies an archive's changes before the call returns.
        check_pattern: validates an event pattern as PutRule does (AWS's messages).
    """

    def __init__(
        self,
        store: Store,
        router: ReplayHooks,
        check_pattern: Callable[[str], CompiledPattern],
    ) -> None:
        self.store = store
        self.router = router
        self.check_pattern = check_pattern

    @property
    def operations(self) -> dict[str, _Handler]:
        """The operations served, by name."""
        return {
            "CreateArchive": self.create_archive,
            "DescribeArchive": self.describe_archive,
            "ListArchives": self.list_archives,
            "UpdateArchive": self.update_archive,
            "DeleteArchive": self.delete_archive,
            "StartReplay": self.start_replay,
            "DescribeReplay": self.describe_replay,
            "ListReplays": self.list_replays,
            "CancelReplay": self.cancel_replay,
        }

    # -- shared ----------------------------------------------------------------------------
    async def _owned(self, kind: str, scope: AccountScope, prefix: str = "") -> list[CatalogEntry]:
        listed = await self.store.catalog_list(kind, scope.prefix(prefix))
        return [e for e in listed if scope.owns(e.key)]

    @staticmethod
    def _archive_name(v: Violations) -> str | None:
        return v.string(
            "ArchiveName", "archiveName", required=True, min_len=1, max_len=48, pattern=NAME_PATTERN
        )

    @staticmethod
    def _replay_name(v: Violations) -> str | None:
        return v.string(
            "ReplayName", "replayName", required=True, min_len=1, max_len=64, pattern=NAME_PATTERN
        )

    async def _bus_of_arn(self, arn: str, scope: AccountScope, label: str) -> str:
        """The internal name of the caller's bus that ``arn`` names.

        Raises:
            ValidationError: ``arn`` is no event-bus ARN.
            ResourceNotFound: no such bus in the caller's account.
        """
        parsed = parse_bus_arn(arn)
        if parsed is None:
            raise ValidationError(
                f"Parameter {label} is not valid. Reason: {arn} is not an event bus ARN."
            )
        key = scope.bus_key(arn)
        if key is None or await self.store.catalog_get("bus", key) is None:
            raise ResourceNotFound(f"Event bus {parsed.name} does not exist.")
        return key

    async def _stats(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        count, size = await self.store.archive_stats(archive_store(key, doc))
        return {**doc, "EventCount": count, "SizeBytes": size}

    # -- archives --------------------------------------------------------------------------
    async def create_archive(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CreateArchive: an archive of a bus's events (those its pattern matches).

        Raises:
            ResourceAlreadyExists: an archive of that name exists.
            ResourceNotFound: the bus does not exist.
            InvalidEventPattern: the pattern is not valid.
        """
        v = Violations(params)
        name = self._archive_name(v)
        source = v.string(
            "EventSourceArn", "eventSourceArn", required=True, min_len=1, max_len=1600
        )
        description = v.string("Description", "description", max_len=512)
        pattern = v.string("EventPattern", "eventPattern", max_len=4096)
        retention = v.integer("RetentionDays", "retentionDays", low=0)
        v.check()
        assert name is not None and source is not None
        _refuse_kms(params)
        bus = await self._bus_of_arn(source, scope, "EventSourceArn")
        if pattern:
            self.check_pattern(pattern)
        now = time.time()
        doc: ArchiveDoc = {
            "ArchiveName": name,
            "ArchiveArn": _arn(scope, "archive", name),
            "EventSourceArn": scope.bus_arn(scope.name(bus)),
            "State": "ENABLED",
            "RetentionDays": retention or 0,
            "CreationTime": now,
            INTERNAL_BUS: bus,
            ARCHIVE_STORE: new_archive_store(scope.key(name)),
        }
        if description is not None:
            doc["Description"] = description
        if pattern:
            doc["EventPattern"] = pattern
        try:
            await self.store.catalog_put(ARCHIVE, scope.key(name), dict(doc), expect_revision=0)
        except ConcurrentModification:
            raise ResourceAlreadyExists(f"Archive {name} already exists.") from None
        await self.router.sync_catalog()
        return {"ArchiveArn": doc["ArchiveArn"], "State": "ENABLED", "CreationTime": now}

    async def _archive(self, name: str, scope: AccountScope) -> CatalogEntry:
        entry = await self.store.catalog_get(ARCHIVE, scope.key(name))
        if entry is None:
            raise _archive_missing(name)
        return entry

    async def describe_archive(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DescribeArchive: the archive with its event count and size."""
        v = Violations(params)
        name = self._archive_name(v)
        v.check()
        assert name is not None
        entry = await self._archive(name, scope)
        return _pick(await self._stats(entry.doc, entry.key), _ARCHIVE_OUT)

    async def list_archives(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListArchives: the account's archives by name, filtered by one of name prefix,
        source bus or state.

        Raises:
            ResourceNotFound: ``EventSourceArn`` names no bus of the caller's.
        """
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=48, pattern=NAME_PATTERN)
        source = v.string("EventSourceArn", "eventSourceArn", min_len=1, max_len=1600)
        state = v.enum("State", "state", ARCHIVE_STATES)
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        if sum(x is not None for x in (prefix, source, state)) > 1:
            raise ValidationError(
                "At most one filter is allowed for ListArchives. Use either : State, "
                "EventSourceArn, or NamePrefix."
            )
        entries = await self._owned(ARCHIVE, scope, prefix or "")
        if source is not None:
            bus = await self._bus_of_arn(source, scope, "EventSourceArn")
            entries = [e for e in entries if e.doc.get(INTERNAL_BUS) == bus]
        if state is not None:
            entries = [e for e in entries if e.doc.get("State") == state]
        entries.sort(key=lambda e: str(e.doc.get("ArchiveName")))
        page, more = _page(entries, "ArchiveName", f"archives:{scope.account}", token, limit)
        items = [_pick(await self._stats(e.doc, e.key), _ARCHIVE_LIST) for e in page]
        return {"Archives": items, **more}

    async def update_archive(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UpdateArchive: a new description, pattern or retention ("" removes the
        pattern: the archive then keeps every event of its bus).

        Raises:
            ValidationError: none of the three is given.
            ResourceNotFound: no such archive.
        """
        v = Violations(params)
        name = self._archive_name(v)
        description = v.string("Description", "description", max_len=512)
        pattern = v.string("EventPattern", "eventPattern", max_len=4096)
        retention = v.integer("RetentionDays", "retentionDays", low=0)
        v.check()
        assert name is not None
        if description is None and pattern is None and retention is None:
            raise ValidationError(
                "At least one of EventPattern, RetentionDays or Description must be provided."
            )
        _refuse_kms(params)
        if pattern:
            self.check_pattern(pattern)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            if description is not None:
                doc["Description"] = description
            if pattern is not None:
                if pattern:
                    doc["EventPattern"] = pattern
                else:
                    doc.pop("EventPattern", None)
            if retention is not None:
                doc["RetentionDays"] = retention
            return doc

        doc = await read_modify_write(
            self.store,
            ARCHIVE,
            scope.key(name),
            change,
            lambda: _archive_missing(name),
            retries=_RETRIES,
        )
        await self.router.sync_catalog()
        return _pick(doc, ("ArchiveArn", "State", "StateReason", "CreationTime"))

    async def delete_archive(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteArchive: the archive and every event it kept.

        Raises:
            ResourceNotFound: no such archive.
        """
        v = Violations(params)
        name = self._archive_name(v)
        v.check()
        assert name is not None
        key = scope.key(name)
        entry = await self.store.catalog_get(ARCHIVE, key)
        if entry is None or not await self.store.catalog_delete(ARCHIVE, key):
            raise _archive_missing(name)
        await self.router.sync_catalog()
        # the events are this incarnation's: an archive created again under the name has
        # its own store key, so a failed drop leaves no events to it
        await self.store.drop_archive(archive_store(key, entry.doc))
        return {}

    # -- replays ---------------------------------------------------------------------------
    async def start_replay(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """StartReplay: record a replay, ``STARTING``; a replayer takes it up.

        Raises:
            ValidationError: the window is empty, the archive does not exist, or the
                destination is not the archive's bus.
            ResourceNotFound: the destination bus does not exist.
            ResourceAlreadyExists: a replay of that name exists.
            LimitExceeded: the account has :data:`MAX_ACTIVE_REPLAYS` active replays.
        """
        v = Violations(params)
        name = self._replay_name(v)
        description = v.string("Description", "description", max_len=512)
        source = v.string(
            "EventSourceArn",
            "eventSourceArn",
            required=True,
            min_len=1,
            max_len=1600,
            pattern=ARCHIVE_ARN_PATTERN,
        )
        start = _timestamp(v, "EventStartTime", "eventStartTime")
        end = _timestamp(v, "EventEndTime", "eventEndTime")
        destination = v.structure("Destination")
        if destination is None:
            v.add(None, "destination", "must not be null")
        dest_arn = None
        filters = None
        if destination is not None:
            dest_arn = v.string(
                "Arn",
                "destination.arn",
                source=destination,
                label="Destination.Arn",
                required=True,
                min_len=1,
                max_len=1600,
            )
            filters = destination.get("FilterArns")
            if filters is not None and (
                not isinstance(filters, list) or not all(isinstance(f, str) for f in filters)
            ):
                raise ValidationError(
                    "Invalid type for parameter Destination.FilterArns: expected a list of strings."
                )
        v.check()
        assert name is not None and source is not None and dest_arn is not None
        assert start is not None and end is not None
        if start >= end:
            raise ValidationError(
                "Parameter EventEndTime is not valid. Reason: EventStartTime must be before "
                "EventEndTime."
            )
        archive_name = source.rpartition("/")[2]
        archive = (
            await self.store.catalog_get(ARCHIVE, scope.key(archive_name))
            if source == _arn(scope, "archive", archive_name)
            else None
        )
        if archive is None:
            raise ValidationError(
                f"Parameter EventSourceArn is not valid. Reason: Archive {archive_name} does "
                "not exist."
            )
        bus = await self._bus_of_arn(dest_arn, scope, "Destination.Arn")
        if bus != archive.doc.get(INTERNAL_BUS):
            raise ValidationError(
                "Parameter Destination.Arn is not valid. Reason: Cross event bus replay is not "
                "permitted."
            )
        rules = [self._filter_rule(arn, bus, scope) for arn in filters or ()]
        now = time.time()
        dest: ReplayDestinationDoc = {"Arn": dest_arn}
        if filters:
            dest["FilterArns"] = list(filters)
        doc: ReplayDoc = {
            "ReplayName": name,
            "ReplayArn": _arn(scope, "replay", name),
            "State": "STARTING",
            "EventSourceArn": source,
            "Destination": dest,
            "EventStartTime": start,
            "EventEndTime": end,
            "ReplayStartTime": now,
            "eventyard:Bus": bus,
            "eventyard:Archive": archive.key,
            "eventyard:ArchiveStore": archive_store(archive.key, archive.doc),
        }
        if description is not None:
            doc["Description"] = description
        if filters:
            doc["eventyard:Rules"] = rules
        key = scope.key(name)
        if await self.store.catalog_get(REPLAY, key) is not None:
            raise ResourceAlreadyExists(f"Replay {name} already exists.")
        active = [
            e
            for e in await self._owned(REPLAY, scope)
            if e.doc.get("State") in ACTIVE_REPLAY_STATES
        ]
        if len(active) >= MAX_ACTIVE_REPLAYS:
            raise LimitExceeded("The requested resource exceeds the maximum number allowed.")
        try:
            await self.store.catalog_put(REPLAY, key, dict(doc), expect_revision=0)
        except ConcurrentModification:
            raise ResourceAlreadyExists(f"Replay {name} already exists.") from None
        return {"ReplayArn": doc["ReplayArn"], "State": "STARTING", "ReplayStartTime": now}

    @staticmethod
    def _filter_rule(arn: str, bus: str, scope: AccountScope) -> str:
        """The rule key of a ``FilterArns`` member, which must name a rule of ``bus``."""
        parsed = parse_rule_arn(arn)
        if parsed is not None and parsed.account == scope.account:
            bus_name, slash, rule = parsed.name.rpartition("/")
            key = rule_key(scope.key(bus_name if slash else "default"), rule)
            if key.rpartition("/")[0] == bus:
                return key
        raise ValidationError(
            f"Parameter Destination.FilterArns is not valid. Reason: {arn} is not a rule of "
            "the destination event bus."
        )

    async def describe_replay(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DescribeReplay: the replay, its state and progress."""
        v = Violations(params)
        name = self._replay_name(v)
        v.check()
        assert name is not None
        entry = await self.store.catalog_get(REPLAY, scope.key(name))
        if entry is None:
            raise _replay_missing(name)
        return _pick(entry.doc, _REPLAY_OUT)

    async def list_replays(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListReplays: the account's replays by name, filtered by name prefix, state
        or archive."""
        v = Violations(params)
        prefix = v.string("NamePrefix", "namePrefix", min_len=1, max_len=64, pattern=NAME_PATTERN)
        state = v.enum("State", "state", REPLAY_STATES)
        source = v.string(
            "EventSourceArn",
            "eventSourceArn",
            min_len=1,
            max_len=1600,
            pattern=ARCHIVE_ARN_PATTERN,
        )
        token = v.string("NextToken", "nextToken", min_len=1, max_len=2048)
        limit = v.integer("Limit", "limit", low=1, high=100)
        v.check()
        entries = await self._owned(REPLAY, scope, prefix or "")
        if state is not None:
            entries = [e for e in entries if e.doc.get("State") == state]
        if source is not None:
            entries = [e for e in entries if e.doc.get("EventSourceArn") == source]
        entries.sort(key=lambda e: str(e.doc.get("ReplayName")))
        page, more = _page(entries, "ReplayName", f"replays:{scope.account}", token, limit)
        return {"Replays": [_pick(e.doc, _REPLAY_LIST) for e in page], **more}

    async def cancel_replay(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CancelReplay: ask the replay to stop (``CANCELLING``; ``CANCELLED`` once its
        replayer stops).

        Raises:
            ResourceNotFound: no such replay.
            IllegalStatus: the replay is not ``STARTING`` or ``RUNNING``.
        """
        v = Violations(params)
        name = self._replay_name(v)
        v.check()
        assert name is not None

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            state = doc.get("State")
            if state not in ACTIVE_REPLAY_STATES:
                raise IllegalStatus(
                    f"Replay {name} is {state}: only a STARTING or RUNNING replay can be cancelled."
                )
            doc["State"] = "CANCELLING"
            return doc

        doc = await read_modify_write(
            self.store,
            REPLAY,
            scope.key(name),
            change,
            lambda: _replay_missing(name),
            retries=_RETRIES,
        )
        return _pick(doc, ("ReplayArn", "State", "StateReason"))


def _arn(scope: AccountScope, kind: str, name: str) -> str:
    """The ARN of the caller's archive or replay ``name``."""
    return f"arn:aws:events:{scope.region}:{scope.account}:{kind}/{name}"
