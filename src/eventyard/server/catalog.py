"""The catalog's documents, typed: what the control plane stores and the router reads.

The store keeps each catalog document as JSON (:class:`~eventyard.server.store.CatalogEntry`
``doc``); this module says what each kind holds, so that the AWS operations that write
them (:mod:`eventyard.server.api.aws`, :mod:`eventyard.server.api.sqs`) and the code that
reads them agree in one place. The shapes are AWS's, as the operations return them:

* kind ``bus`` (:class:`BusDoc`), key = internal bus name;
* kind ``rule`` (:class:`RuleDoc`), key = ``<internal bus>/<rule>`` (:func:`rule_key`),
  with its targets (:class:`TargetDoc`) embedded exactly as PutTargets received them,
  plus, on a signed webhook target, the member :data:`SIGNING` (its sealed secrets:
  :mod:`eventyard.server.delivery.signing`), which no operation returns;
* kind ``tags`` (:class:`TagsDoc`), key = the resource's ARN;
* kind ``queue`` (:class:`QueueDoc`), key = internal queue name;
* kind ``schedule``, key = a scheduled rule's key: where its schedule stands, written
  only by the scheduler (:mod:`eventyard.server.schedules.ticker`);
* kind ``connection`` (:class:`ConnectionDoc`), key = internal connection name: the
  authorization of API destinations, its secrets sealed by the master key;
* kind ``api-destination`` (:class:`ApiDestinationDoc`), key = internal destination name;
* kind ``archive`` (:class:`ArchiveDoc`), key = internal archive name (also the archive's
  key in the store's archive part);
* kind ``replay`` (:class:`ReplayDoc`), key = internal replay name: the replay and where
  it stands, written by the API (start, cancel) and by the replayer that owns it
  (:mod:`eventyard.server.replay`).

Internal names are the names an account knows, with the account in front for every
account but the server's home account (:mod:`eventyard.server.accounts`); the documents
hold the names and ARNs the account sees.

The router does not read AWS dicts: it takes a :class:`Rule` (with its :class:`Target`
objects), built once from the document by :meth:`Rule.from_doc`.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Required, TypedDict, cast

from eventyard.errors import ConcurrentModification
from eventyard.server.store import CatalogEntry, Store

__all__ = [
    "API_DESTINATION",
    "ARCHIVE",
    "ARCHIVE_STORE",
    "BUS",
    "CONNECTION",
    "INTERNAL_BUS",
    "QUEUE",
    "REPLAY",
    "RULE",
    "SIGNING",
    "TAGS",
    "ApiDestinationDoc",
    "ArchiveDoc",
    "BusDoc",
    "ConnectionDoc",
    "DeadLetterConfigDoc",
    "InputTransformerDoc",
    "QueueDoc",
    "ReplayDestinationDoc",
    "ReplayDoc",
    "RetryPolicyDoc",
    "Rule",
    "RuleDoc",
    "SqsParametersDoc",
    "TagDoc",
    "TagsDoc",
    "Target",
    "TargetDoc",
    "archive_doc",
    "archive_store",
    "bus_doc",
    "new_archive_store",
    "queue_doc",
    "read_modify_write",
    "replay_doc",
    "rule_doc",
    "rule_key",
    "tags_doc",
]

#: The catalog kinds.
BUS: Final = "bus"
RULE: Final = "rule"
TAGS: Final = "tags"
QUEUE: Final = "queue"
#: The member of a stored target that holds its sealed signing secrets
#: (``{"Secrets": [{"Sealed": {...}, "CreationTime": t}, ...]}``, newest first). A name
#: no AWS member has and PutTargets refuses, and one that ListTargetsByRule leaves out.
SIGNING: Final = "eventyard:Signing"
CONNECTION: Final = "connection"
API_DESTINATION: Final = "api-destination"
ARCHIVE: Final = "archive"
REPLAY: Final = "replay"
#: The members of archive and replay documents that only eventyard reads (no operation
#: returns them): the internal name of the bus (archives, replays), the archive and the
#: rules a replay sends to, and the replayer's ownership and progress.
INTERNAL_BUS: Final = "eventyard:Bus"
#: an archive's key in the store (its catalog key and a random incarnation id): an
#: archive deleted and created again under its name never sees the old one's events
ARCHIVE_STORE: Final = "eventyard:Store"


class DeadLetterConfigDoc(TypedDict, total=False):
    """``DeadLetterConfig`` of a bus or a target."""

    Arn: str


class RetryPolicyDoc(TypedDict, total=False):
    """A target's ``RetryPolicy``."""

    MaximumRetryAttempts: int
    MaximumEventAgeInSeconds: int


class InputTransformerDoc(TypedDict, total=False):
    """A target's ``InputTransformer``."""

    InputPathsMap: dict[str, str]
    InputTemplate: Required[str]


class SqsParametersDoc(TypedDict, total=False):
    """``SqsParameters``: the message group of a FIFO queue target."""

    MessageGroupId: str


class TargetDoc(TypedDict, total=False):
    """One AWS ``Target`` as PutTargets received it (members eventyard does not use, such
    as ``KinesisParameters``, are kept as sent and returned by ListTargetsByRule)."""

    Id: Required[str]
    Arn: Required[str]
    RoleArn: str
    Input: str
    InputPath: str
    InputTransformer: InputTransformerDoc
    RetryPolicy: RetryPolicyDoc
    DeadLetterConfig: DeadLetterConfigDoc
    SqsParameters: SqsParametersDoc
    HttpParameters: dict[str, Any]


class BusDoc(TypedDict, total=False):
    """An event bus. Times are epoch seconds; ``Policy`` is the resource policy as JSON
    text, absent when the bus has none."""

    Name: Required[str]
    Arn: Required[str]
    Description: str
    KmsKeyIdentifier: str
    DeadLetterConfig: DeadLetterConfigDoc
    LogConfig: dict[str, Any]
    Policy: str
    CreationTime: Required[float]
    LastModifiedTime: Required[float]


class RuleDoc(TypedDict, total=False):
    """A rule with its targets (in insertion order). ``EventPattern`` is the text as sent."""

    Name: Required[str]
    Arn: Required[str]
    EventBusName: Required[str]
    EventPattern: str
    ScheduleExpression: str
    State: Required[str]
    Description: str
    RoleArn: str
    ManagedBy: str
    CreatedBy: str
    Targets: Required[list[TargetDoc]]


class ConnectionDoc(TypedDict, total=False):
    """A connection (times in epoch seconds).

    ``AuthParameters`` is what DescribeConnection shows: the parameters as sent without
    their secrets (``Password``, ``ApiKeyValue``, ``ClientSecret`` and the values of
    parameters with ``IsValueSecret``). ``Secret`` is the whole ``AuthParameters`` as
    sent, sealed by the master key for the connection's ARN
    (:mod:`eventyard.server.delivery.destinations`); absent once deauthorized.
    """

    Name: Required[str]
    ConnectionArn: Required[str]
    SecretArn: Required[str]
    Description: str
    AuthorizationType: Required[str]
    AuthParameters: Required[dict[str, Any]]
    Secret: dict[str, Any]
    ConnectionState: Required[str]
    StateReason: str
    CreationTime: Required[float]
    LastModifiedTime: Required[float]
    LastAuthorizedTime: float


class ApiDestinationDoc(TypedDict, total=False):
    """An API destination (times in epoch seconds); its state is its connection's."""

    Name: Required[str]
    ApiDestinationArn: Required[str]
    Description: str
    ConnectionArn: Required[str]
    InvocationEndpoint: Required[str]
    HttpMethod: Required[str]
    InvocationRateLimitPerSecond: Required[int]
    CreationTime: Required[float]
    LastModifiedTime: Required[float]


ArchiveDoc = TypedDict(
    "ArchiveDoc",
    {
        "ArchiveName": Required[str],
        "ArchiveArn": Required[str],
        "EventSourceArn": Required[str],
        "Description": str,
        "EventPattern": str,
        "State": Required[str],
        "StateReason": str,
        "RetentionDays": Required[int],
        "CreationTime": Required[float],
        "eventyard:Bus": Required[str],
        "eventyard:Store": str,
    },
    total=False,
)
"""An archive (times in epoch seconds). ``EventPattern`` is the text as sent, absent
when the archive keeps every event of its bus; ``RetentionDays`` 0 keeps events forever;
``eventyard:Bus`` is the internal name of its bus, ``eventyard:Store`` its key in the
store (:func:`archive_store`). ``EventCount`` and ``SizeBytes`` are
not stored: the store counts them (:meth:`~eventyard.server.store.Store.archive_stats`)."""


class ReplayDestinationDoc(TypedDict, total=False):
    """A replay's ``Destination``: the bus ARN and, optionally, the rules (ARNs) only."""

    Arn: Required[str]
    FilterArns: list[str]


ReplayDoc = TypedDict(
    "ReplayDoc",
    {
        "ReplayName": Required[str],
        "ReplayArn": Required[str],
        "Description": str,
        "State": Required[str],
        "StateReason": str,
        "EventSourceArn": Required[str],
        "Destination": Required[ReplayDestinationDoc],
        "EventStartTime": Required[float],
        "EventEndTime": Required[float],
        "EventLastReplayedTime": float,
        "ReplayStartTime": Required[float],
        "ReplayEndTime": float,
        "eventyard:Bus": Required[str],
        "eventyard:Archive": Required[str],
        "eventyard:ArchiveStore": str,
        "eventyard:Rules": list[str],
        "eventyard:Owner": str,
        "eventyard:Heartbeat": float,
        "eventyard:Cursor": list[float],
        "eventyard:Replayed": int,
    },
    total=False,
)
"""A replay (times in epoch seconds), with what only eventyard reads:
``eventyard:Bus`` and ``eventyard:Archive`` the internal names of its bus and archive,
``eventyard:Rules`` the rule keys of ``Destination.FilterArns`` (absent: every rule of
the bus), ``eventyard:Owner`` the process that replays it and ``eventyard:Heartbeat``
when it last said so (the store's clock), ``eventyard:Cursor`` ``[slice start, last
archive seq replayed in it]`` and ``eventyard:Replayed`` the events replayed so far."""


class TagDoc(TypedDict):
    """One tag."""

    Key: str
    Value: str


class TagsDoc(TypedDict):
    """The tags of one resource."""

    Tags: list[TagDoc]


class QueueDoc(TypedDict):
    """A queue: its attributes (SQS names, string values), times in epoch seconds, tags."""

    Name: str
    Arn: str
    Attributes: dict[str, str]
    CreatedTimestamp: int
    LastModifiedTimestamp: int
    Tags: dict[str, str]


def rule_key(bus: str, name: str) -> str:
    """The catalog key of rule ``name`` on ``bus``: ``<bus>/<rule>``."""
    return f"{bus}/{name}"


# The store returns JSON that these operations wrote; reading it as its kind is a cast,
# not a validation (the control plane validated it on the way in).
def bus_doc(entry: CatalogEntry) -> BusDoc:
    """The bus document of a ``bus`` entry."""
    return cast(BusDoc, entry.doc)


def rule_doc(entry: CatalogEntry) -> RuleDoc:
    """The rule document of a ``rule`` entry."""
    return cast(RuleDoc, entry.doc)


def tags_doc(entry: CatalogEntry) -> TagsDoc:
    """The tags document of a ``tags`` entry."""
    return cast(TagsDoc, entry.doc)


def queue_doc(entry: CatalogEntry) -> QueueDoc:
    """The queue document of a ``queue`` entry."""
    return cast(QueueDoc, entry.doc)


def archive_doc(entry: CatalogEntry) -> ArchiveDoc:
    """The archive document of an ``archive`` entry."""
    return cast(ArchiveDoc, entry.doc)


def archive_store(key: str, doc: Mapping[str, Any]) -> str:
    """The key in the store of the events of archive ``key`` (document ``doc``): its
    incarnation's (``eventyard:Store``), or its catalog key for an archive made before
    archives had incarnations."""
    store = doc.get(ARCHIVE_STORE)
    return store if isinstance(store, str) and store else key


def new_archive_store(key: str) -> str:
    """A new incarnation's store key for archive ``key``."""
    return f"{key}#{secrets.token_hex(8)}"


def replay_doc(entry: CatalogEntry) -> ReplayDoc:
    """The replay document of a ``replay`` entry."""
    return cast(ReplayDoc, entry.doc)


_INPUT_MEMBERS: Final = ("Input", "InputPath", "InputTransformer")


@dataclass(slots=True, frozen=True)
class Target:
    """A rule's target as the router and the delivery engine need it.

    Attributes:
        id: the target's ``Id``, unique within its rule.
        arn: where it delivers (a webhook URL, a queue ARN or an event-bus ARN).
        max_attempts: ``RetryPolicy.MaximumRetryAttempts``, None for the default.
        max_age: ``RetryPolicy.MaximumEventAgeInSeconds``, None for the default.
        dlq_arn: ``DeadLetterConfig.Arn``, None without a dead-letter queue.
        input: the input setting (``Input``, ``InputPath`` or ``InputTransformer``) as
            stored, with the ``Id``: what :func:`eventyard.server.transform.compile_input`
            compiles.
        message_group_id: ``SqsParameters.MessageGroupId``, the group of the messages
            it puts on a FIFO queue.
        http_parameters: ``HttpParameters`` as stored, None without.
        signing: the sealed signing secrets (newest first), empty when the target does
            not sign its deliveries.
    """

    id: str
    arn: str
    max_attempts: int | None = None
    max_age: float | None = None
    dlq_arn: str | None = None
    input: TargetDoc | None = None
    message_group_id: str | None = None
    http_parameters: dict[str, Any] | None = None
    signing: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_doc(cls, doc: TargetDoc) -> Target:
        """The target a stored (or PutTargets) ``Target`` document describes.

        Raises:
            KeyError: the document has no ``Arn``.
        """
        retry = doc.get("RetryPolicy") or {}
        attempts = retry.get("MaximumRetryAttempts")
        age = retry.get("MaximumEventAgeInSeconds")
        dlq_arn = (doc.get("DeadLetterConfig") or {}).get("Arn")
        group = (doc.get("SqsParameters") or {}).get("MessageGroupId")
        input_doc: dict[str, Any] = {k: doc[k] for k in _INPUT_MEMBERS if k in doc}
        http = doc.get("HttpParameters")
        signing = cast(dict[str, Any], doc).get(SIGNING) or {}
        return cls(
            id=str(doc.get("Id")),
            arn=str(doc["Arn"]),
            max_attempts=None if attempts is None else int(attempts),
            max_age=None if age is None else float(age),
            dlq_arn=str(dlq_arn) if dlq_arn else None,
            input=cast(TargetDoc, {"Id": doc.get("Id"), **input_doc}) if input_doc else None,
            message_group_id=str(group) if group else None,
            http_parameters=http if isinstance(http, dict) and http else None,
            signing=tuple(signing.get("Secrets") or ()),
        )


@dataclass(slots=True, frozen=True)
class Rule:
    """A rule as the router matches it.

    Attributes:
        key: its catalog key ``<bus>/<rule>``.
        name: its name.
        arn: its ARN.
        bus: the internal name of its bus (:mod:`eventyard.server.accounts`).
        pattern: its event pattern text, None for a rule without one (schedule only).
        schedule: its ``ScheduleExpression``, None for a rule without one.
        enabled: False when the rule is ``DISABLED``.
        targets: its targets, in insertion order.
    """

    key: str
    name: str
    arn: str
    bus: str
    pattern: str | None
    enabled: bool
    targets: tuple[Target, ...]
    schedule: str | None = None

    @property
    def matches_events(self) -> bool:
        """Whether events can match it: enabled, with a pattern."""
        return self.enabled and bool(self.pattern)

    @property
    def fires_on_schedule(self) -> bool:
        """Whether the scheduler fires it: enabled, with a schedule expression."""
        return self.enabled and bool(self.schedule)

    @classmethod
    def from_doc(cls, key: str, doc: RuleDoc, *, default_bus: str = "default") -> Rule:
        """The rule a stored ``rule`` document describes.

        Its bus is the one its key names (``<bus>/<rule>``): the internal name, which
        carries the account (:mod:`eventyard.server.accounts`), where the document's
        ``EventBusName`` is the name its account knows.
        """
        bus, slash, _ = key.rpartition("/")
        return cls(
            key=key,
            name=str(doc["Name"]),
            arn=str(doc["Arn"]),
            bus=bus if slash else str(doc.get("EventBusName") or default_bus),
            pattern=doc.get("EventPattern") or None,
            enabled=doc.get("State", "ENABLED") != "DISABLED",
            targets=tuple(Target.from_doc(t) for t in doc.get("Targets") or ()),
            schedule=doc.get("ScheduleExpression") or None,
        )


async def read_modify_write(
    store: Store,
    kind: str,
    key: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    missing: Callable[[], Exception],
    *,
    retries: int = 8,
) -> dict[str, Any]:
    """Read-modify-write one catalog document, retrying when another writer got there
    first; returns the document written.

    ``change`` gets a copy of the stored document and returns the new one.

    Raises:
        Exception: ``missing()`` when the document does not exist.
        ConcurrentModification: still losing to other writers after ``retries`` tries.
    """
    for _ in range(retries):
        entry = await store.catalog_get(kind, key)
        if entry is None:
            raise missing()
        doc = change(copy.deepcopy(entry.doc))
        try:
            await store.catalog_put(kind, key, doc, expect_revision=entry.revision)
        except ConcurrentModification:
            continue
        return doc
    raise ConcurrentModification(f"Too many concurrent changes to {key}; try again.")
