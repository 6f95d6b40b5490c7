"""Queues behind an SQS-compatible API: what boto3's ``sqs`` client speaks, unchanged.

botocore (≥ 1.31) talks to SQS in AWS JSON 1.0: ``POST /`` with ``X-Amz-Target:
AmazonSQS.<Operation>`` and the operation's members as a JSON object. :class:`QueuesApi`
serves the standard-queue operations on the store's durable queues; queue definitions
live in the catalog (kind ``queue``, key = internal name). Every operation acts in the
caller's account (:class:`~eventyard.server.accounts.AccountScope`): queue names,
URLs, ARNs and quotas are the account's own, and another account's queue answers
``NonExistentQueue``, even through its URL. Errors are
:class:`~eventyard.server.api.sqs_requests.SqsError`, in SQS's query-compatible JSON form;
request checks live in :mod:`eventyard.server.api.sqs_requests`, queue attributes in
:mod:`eventyard.server.api.sqs_attributes`, and message attributes, checksums and receipt
handles in :mod:`eventyard.server.api.sqs_messages`.

Long polls wait on :class:`~eventyard.server.signals.QueueSignals`, which the router feeds
from the store's notifications (every write that puts messages on a queue, whichever
process made it, wakes that queue's polls), and also wake when the next hidden or
delayed message becomes visible. Queue definitions reach the router through the
catalog's change feed; an operation that changes one returns once the router has it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import orjson

from eventyard.errors import ConcurrentModification
from eventyard.server.accounts import Accounts, AccountScope
from eventyard.server.api.sqs_attributes import (
    COUNT_ATTRIBUTES,
    DEFAULTS,
    FIFO_DEFAULTS,
    GETTABLE,
    KIND,
    MAX_DELAY_SECONDS,
    MAX_MESSAGE_SIZE,
    MAX_VISIBILITY_TIMEOUT,
    MAX_WAIT_SECONDS,
    QueueDefinition,
    check_attributes,
    check_fifo_combination,
)
from eventyard.server.api.sqs_fifo import fifo_fields
from eventyard.server.api.sqs_messages import (
    KEPT_SYSTEM_ATTRIBUTES,
    SYSTEM_ATTRIBUTES,
    OutgoingMessage,
    check_chars,
    check_message_attributes,
    check_system_attributes,
    decode_receipt,
    encode_receipt,
    md5_hex,
    message_attributes_md5,
    request_size,
    select_attributes,
)
from eventyard.server.api.sqs_permissions import add_permission, remove_permission
from eventyard.server.api.sqs_requests import (
    MAX_BATCH,
    QUEUE_NAME_RE,
    SqsError,
    batch_failure,
    check_batch,
    decode_token,
    encode_token,
    int_param,
    invalid,
    missing,
    no_queue,
    queue_account_from_url,
    queue_name_from_url,
    str_list,
    str_map,
    unknown_attribute,
)
from eventyard.server.auth.keys import Principal
from eventyard.server.catalog import QueueDoc
from eventyard.server.config import Settings
from eventyard.server.journal import TraceJournal
from eventyard.server.queue_messages import kept_system, stored_system
from eventyard.server.quotas import KeyedLocks, kept_within
from eventyard.server.signals import QueueSignals
from eventyard.server.store import CatalogEntry, NewMessage, QueueMessage, Store
from eventyard.server.system_events import forget_queue

__all__ = ["QueueHooks", "QueuesApi"]

# A long poll re-checks at least this long after the store said a message is due, so
# clock skew between "due" and "receivable" can never turn into a busy loop.
_MIN_RECHECK = 0.01


class QueueHooks(Protocol):
    """What the queues need from the router: long-poll wake-ups and catalog news."""

    @property
    def signals(self) -> QueueSignals:
        """The wake-ups long polls wait on (the store's notifications feed them)."""
        ...

    async def sync_catalog(self) -> None:
        """Apply every catalog change committed so far (queues included); returns once
        they apply."""
        ...

    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        """Tell a resource's change on the account's system bus (never raises)."""
        ...


_Handler = Callable[[dict[str, Any], AccountScope], Awaitable[dict[str, Any]]]


class QueuesApi:
    """The SQS-compatible operations, dispatched by name from ``AmazonSQS.<Op>``.

    Args:
        store: the durable store holding queue definitions and messages.
        settings: host, port, home account and region for queue URLs and ARNs; quotas.
        hooks: the router: long-poll signals and queue catalog notifications.
        journal: the trace journal that records receives and deletes, if any.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        hooks: QueueHooks,
        journal: TraceJournal | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.hooks = hooks
        # receives and deletes are traced (keyed by message id) while tracing is on
        self._journal = journal if journal is not None and journal.enabled else None
        self.accounts = Accounts(settings)
        self._quota_locks = KeyedLocks()
        self._operations: dict[str, _Handler] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "ListQueues": self.list_queues,
            "DeleteQueue": self.delete_queue,
            "PurgeQueue": self.purge_queue,
            "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes,
            "ListDeadLetterSourceQueues": self.list_dead_letter_source_queues,
            "TagQueue": self.tag_queue,
            "UntagQueue": self.untag_queue,
            "ListQueueTags": self.list_queue_tags,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "AddPermission": self.add_permission,
            "RemovePermission": self.remove_permission,
        }

    async def call(
        self, op: str, params: dict[str, Any], caller: Principal | None = None
    ) -> dict[str, Any]:
        """Run operation ``op`` in the account of ``caller`` (None: the home account).

        Raises:
            SqsError: the operation failed; ``UnsupportedOperation`` for an unknown one.
        """
        handler = self._operations.get(op)
        if handler is None:
            raise SqsError(
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                f"The operation {op} is not supported by eventyard. Supported operations: "
                f"{', '.join(sorted(self._operations))}.",
            )
        return await handler(params, self.accounts.scope(caller))

    # -- naming -----------------------------------------------------------------------
    def _url(self, scope: AccountScope, key: str) -> str:
        """The URL of the queue of internal name ``key``."""
        return scope.queue_url(scope.name(key))

    def _owned(self, scope: AccountScope, entries: Iterable[CatalogEntry]) -> list[CatalogEntry]:
        return [entry for entry in entries if scope.owns(entry.key)]

    async def _queue(self, params: Mapping[str, Any], scope: AccountScope) -> QueueDefinition:
        url = params.get("QueueUrl")
        if not isinstance(url, str) or not url:
            raise missing("QueueUrl")
        name = queue_name_from_url(url)
        account = queue_account_from_url(url)
        if account is not None and account != scope.account:
            raise no_queue()  # another account's queue: as if it did not exist
        entry = await self.store.catalog_get(KIND, scope.key(name))
        if entry is None:
            raise no_queue()
        return QueueDefinition.of(entry)

    async def _update(
        self,
        params: Mapping[str, Any],
        scope: AccountScope,
        change: Callable[[dict[str, Any]], None],
    ) -> None:
        """Apply ``change`` to a queue's document with optimistic concurrency."""
        for _ in range(10):
            queue = await self._queue(params, scope)
            doc = orjson.loads(orjson.dumps(queue.doc))
            change(doc)
            doc["LastModifiedTimestamp"] = int(time.time())
            try:
                await self.store.catalog_put(KIND, queue.name, doc, expect_revision=queue.revision)
            except ConcurrentModification:
                continue
            await self.hooks.sync_catalog()
            self.hooks.resource_changed(
                scope.account, "queue", scope.name(queue.name), str(doc.get("Arn")), "UPDATED"
            )
            return
        raise SqsError(
            "RequestThrottled",
            "RequestThrottled",
            "The queue is being changed concurrently; try again.",
        )

    # -- queue attributes -------------------------------------------------------------

    async def _all_attributes(
        self, queue: QueueDefinition, scope: AccountScope, counts: bool
    ) -> dict[str, str]:
        attributes = {k: v for k, v in queue.attributes.items() if v != ""}
        arn = queue.doc.get("Arn") or scope.queue_arn(scope.name(queue.name))
        attributes["QueueArn"] = str(arn)
        attributes["CreatedTimestamp"] = str(queue.doc.get("CreatedTimestamp", 0))
        attributes["LastModifiedTimestamp"] = str(queue.doc.get("LastModifiedTimestamp", 0))
        if counts:
            visible, in_flight, delayed = await self.store.queue_counts(queue.name, time.time())
            attributes["ApproximateNumberOfMessages"] = str(visible)
            attributes["ApproximateNumberOfMessagesNotVisible"] = str(in_flight)
            attributes["ApproximateNumberOfMessagesDelayed"] = str(delayed)
        return attributes

    # -- queue operations -------------------------------------------------------------
    async def create_queue(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """CreateQueue: idempotent when the attributes equal the existing queue's."""
        name = params.get("QueueName")
        if not isinstance(name, str) or not name:
            raise missing("QueueName")
        raw_attributes = str_map(params, "Attributes")
        fifo = raw_attributes.get("FifoQueue", "").lower() == "true"
        if not QUEUE_NAME_RE.match(name) or name.endswith(".fifo") != fifo:
            if fifo or name.endswith(".fifo"):
                raise invalid(
                    "The name of a FIFO queue can only include alphanumeric characters, "
                    "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in "
                    "length."
                )
            raise invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. "
                "1 to 80 in length"
            )
        key = scope.key(name)
        attributes = await check_attributes(self.store, raw_attributes, key, scope, creating=True)
        defaults = {**DEFAULTS, **FIFO_DEFAULTS} if fifo else DEFAULTS
        wanted = {**defaults, **{k: v for k, v in attributes.items() if v != ""}}
        check_fifo_combination(wanted)
        tags = str_map(params, "tags")
        if len(tags) > self.settings.max_tags:
            raise invalid(f"Too many tags: at most {self.settings.max_tags} per queue.")

        async def count() -> int:
            return len(self._owned(scope, await self.store.catalog_list(KIND, scope.prefix())))

        async with self._quota_locks(f"queue:{scope.account}"):  # see eventyard.server.quotas
            for _ in range(10):
                entry = await self.store.catalog_get(KIND, key)
                if entry is not None:
                    existing = QueueDefinition.of(entry).attributes
                    for key in sorted(set(existing) | set(wanted)):
                        if existing.get(key) != wanted.get(key):
                            raise SqsError(
                                "QueueNameExists",
                                "QueueAlreadyExists",
                                "A queue already exists with the same name and a different "
                                f"value for attribute {key}",
                            )
                    return {"QueueUrl": scope.queue_url(name)}
                owned = self._owned(scope, await self.store.catalog_list(KIND, scope.prefix()))
                if len(owned) >= self.settings.max_queues:
                    raise self._over_limit()
                now = int(time.time())
                doc: QueueDoc = {
                    "Name": name,
                    "Arn": scope.queue_arn(name),
                    "Attributes": wanted,
                    "CreatedTimestamp": now,
                    "LastModifiedTimestamp": now,
                    "Tags": tags,
                }
                try:
                    await self.store.catalog_put(KIND, key, dict(doc), expect_revision=0)
                except ConcurrentModification:
                    continue  # created concurrently: compare with the winner
                if not await kept_within(self.store, KIND, key, count, self.settings.max_queues):
                    raise self._over_limit()
                await self.hooks.sync_catalog()
                self.hooks.resource_changed(scope.account, "queue", name, doc["Arn"], "CREATED")
                return {"QueueUrl": scope.queue_url(name)}
            raise SqsError(
                "RequestThrottled", "RequestThrottled", "The queue is being changed concurrently."
            )

    def _over_limit(self) -> SqsError:
        return SqsError(
            "OverLimit",
            "OverLimit",
            f"The maximum number of queues ({self.settings.max_queues}) has been "
            "reached: eventyard's quota, settable.",
        )

    async def get_queue_url(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """GetQueueUrl (``QueueOwnerAWSAccountId`` of another account: no such queue)."""
        name = params.get("QueueName")
        if not isinstance(name, str) or not name:
            raise missing("QueueName")
        owner = params.get("QueueOwnerAWSAccountId")
        if owner is not None and owner != scope.account:
            raise no_queue()
        if not QUEUE_NAME_RE.match(name):
            raise no_queue()
        if await self.store.catalog_get(KIND, scope.key(name)) is None:
            raise no_queue()
        return {"QueueUrl": scope.queue_url(name)}

    async def list_queues(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListQueues with QueueNamePrefix and MaxResults / NextToken paging."""
        prefix = params.get("QueueNamePrefix") or ""
        if not isinstance(prefix, str):
            raise invalid("Value for parameter QueueNamePrefix is invalid.")
        limit = int_param(
            params,
            "MaxResults",
            1000,
            (1, 1000),
            "MaxResults must be an integer between 1 and 1000.",
        )
        entries = self._owned(scope, await self.store.catalog_list(KIND, scope.prefix(prefix)))
        token = params.get("NextToken")
        if token:
            after = decode_token(token)
            entries = [e for e in entries if scope.name(e.key) > after]
        page = entries[:limit]
        result: dict[str, Any] = {}
        if page:
            result["QueueUrls"] = [self._url(scope, e.key) for e in page]
        if params.get("MaxResults") is not None and len(entries) > limit:
            result["NextToken"] = encode_token(scope.name(page[-1].key))
        return result

    async def delete_queue(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteQueue: the definition and every message."""
        queue = await self._queue(params, scope)
        await self.store.queue_purge(queue.name)
        await self.store.catalog_delete(KIND, queue.name)
        # a send that raced the delete may have landed between purge and delete
        await self.store.queue_purge(queue.name)
        await forget_queue(self.store, queue.name)
        await self.hooks.sync_catalog()
        name = scope.name(queue.name)
        self.hooks.resource_changed(scope.account, "queue", name, scope.queue_arn(name), "DELETED")
        return {}

    async def purge_queue(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """PurgeQueue."""
        queue = await self._queue(params, scope)
        await self.store.queue_purge(queue.name)
        return {}

    async def get_queue_attributes(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """GetQueueAttributes: ``All`` or named attributes, values as strings."""
        queue = await self._queue(params, scope)
        names = str_list(params, "AttributeNames")
        for name in names:
            if name != "All" and name not in GETTABLE:
                raise unknown_attribute(name)
        if not names:
            return {}
        everything = "All" in names
        counts = everything or any(n in COUNT_ATTRIBUTES for n in names)
        attributes = await self._all_attributes(queue, scope, counts)
        if not everything:
            attributes = {k: v for k, v in attributes.items() if k in names}
        return {"Attributes": attributes} if attributes else {}

    async def set_queue_attributes(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """SetQueueAttributes; RedrivePolicy "" removes the policy."""
        queue = await self._queue(params, scope)
        changes = await check_attributes(
            self.store, str_map(params, "Attributes"), queue.name, scope
        )

        def apply(doc: dict[str, Any]) -> None:
            attributes = doc.setdefault("Attributes", {})
            for key, value in changes.items():
                if value == "":
                    attributes.pop(key, None)
                else:
                    attributes[key] = value
            check_fifo_combination(attributes)

        await self._update(params, scope, apply)
        return {}

    async def add_permission(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """AddPermission: a statement labelled ``Label`` in the queue's Policy."""
        await self._edit_policy(params, scope, add_permission)
        return {}

    async def remove_permission(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """RemovePermission: drop the statement labelled ``Label`` (and an empty policy)."""
        await self._edit_policy(params, scope, remove_permission)
        return {}

    async def _edit_policy(
        self,
        params: dict[str, Any],
        scope: AccountScope,
        edit: Callable[[dict[str, Any], str | None, str], str],
    ) -> None:
        def apply(doc: dict[str, Any]) -> None:
            attributes = doc.setdefault("Attributes", {})
            arn = str(doc.get("Arn") or scope.queue_arn(str(doc.get("Name") or "")))
            policy = edit(params, attributes.get("Policy"), arn)
            if policy:
                attributes["Policy"] = policy
            else:
                attributes.pop("Policy", None)

        await self._update(params, scope, apply)

    async def list_dead_letter_source_queues(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ListDeadLetterSourceQueues: queues whose RedrivePolicy targets this queue."""
        queue = await self._queue(params, scope)
        limit = int_param(
            params,
            "MaxResults",
            1000,
            (1, 1000),
            "MaxResults must be an integer between 1 and 1000.",
        )
        home = self.settings.account_id
        sources = [
            entry
            for entry in self._owned(scope, await self.store.catalog_list(KIND, scope.prefix()))
            if (redrive := QueueDefinition.of(entry).redrive(home)) is not None
            and redrive[0] == queue.name
        ]
        token = params.get("NextToken")
        if token:
            after = decode_token(token)
            sources = [e for e in sources if scope.name(e.key) > after]
        page = sources[:limit]
        result: dict[str, Any] = {"queueUrls": [self._url(scope, e.key) for e in page]}
        if params.get("MaxResults") is not None and len(sources) > limit:
            result["NextToken"] = encode_token(scope.name(page[-1].key))
        return result

    async def tag_queue(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """TagQueue."""
        tags = str_map(params, "Tags")
        if not tags:
            raise missing("Tags")
        limit = self.settings.max_tags

        def add(doc: dict[str, Any]) -> None:
            merged = {**doc.get("Tags", {}), **tags}
            if len(merged) > limit:
                raise invalid(f"Too many tags: at most {limit} per queue.")
            doc["Tags"] = merged

        await self._update(params, scope, add)
        return {}

    async def untag_queue(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """UntagQueue."""
        keys = str_list(params, "TagKeys")
        if not keys:
            raise missing("TagKeys")

        def remove(doc: dict[str, Any]) -> None:
            for key in keys:
                doc.setdefault("Tags", {}).pop(key, None)

        await self._update(params, scope, remove)
        return {}

    async def list_queue_tags(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ListQueueTags."""
        queue = await self._queue(params, scope)
        tags = queue.doc.get("Tags") or {}
        return {"Tags": tags} if tags else {}

    # -- sending ----------------------------------------------------------------------
    def _outgoing(self, queue: QueueDefinition, entry: Mapping[str, Any]) -> OutgoingMessage:
        body = entry.get("MessageBody")
        if not isinstance(body, str) or not body:
            raise missing("MessageBody")
        check_chars(body, "the message body")
        fields = fifo_fields(entry, body, queue.attributes) if queue.fifo else None
        if fields is None and (
            entry.get("MessageGroupId") is not None or entry.get("MessageDeduplicationId")
        ):
            raise invalid(
                "The request include parameter that is not valid for this queue type. "
                "(MessageGroupId and MessageDeduplicationId are for FIFO queues.)"
            )
        delay = int_param(
            entry,
            "DelaySeconds",
            queue.number("DelaySeconds"),
            (0, MAX_DELAY_SECONDS),
            "DelaySeconds must be >= 0 and <= 900.",
        )
        attributes, attributes_size = check_message_attributes(entry.get("MessageAttributes"))
        system, system_size = check_system_attributes(entry.get("MessageSystemAttributes"))
        size = len(body.encode()) + attributes_size + system_size
        limit = queue.number("MaximumMessageSize")
        if size > limit:
            raise invalid(
                f"One or more parameters are invalid. Reason: Message must be shorter than "
                f"{limit} bytes."
            )
        kept = {name: value["StringValue"] for name, value in system.items()}
        if fields is not None:
            kept["MessageDeduplicationId"] = fields.dedup_id
            kept["SequenceNumber"] = fields.sequence
        message = NewMessage(
            queue.name,
            body,
            {**attributes, **stored_system(kept)},
            float(delay),
            group_id=None if fields is None else fields.group_id,
            dedup_id=None if fields is None else fields.dedup_key,
        )
        return OutgoingMessage(
            message,
            size,
            md5_hex(body.encode()),
            message_attributes_md5(attributes) if attributes else None,
            message_attributes_md5(system) if system else None,
            sequence=None if fields is None else fields.sequence,
        )

    async def send_message(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """SendMessage: returns MessageId and the MD5s botocore users may check."""
        queue = await self._queue(params, scope)
        outgoing = self._outgoing(queue, params)
        [message_id] = await self.store.queue_send([outgoing.message])
        return outgoing.result(message_id)

    async def send_message_batch(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """SendMessageBatch: up to 10 entries, each succeeding or failing on its own."""
        queue = await self._queue(params, scope)
        entries = check_batch(params.get("Entries"), "SendMessageBatchRequestEntry")
        total = sum(request_size(entry) for entry in entries)
        if total > MAX_MESSAGE_SIZE:
            raise SqsError(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                f"Batch requests cannot be longer than {MAX_MESSAGE_SIZE} bytes. "
                f"You have sent {total} bytes.",
            )
        failed: list[dict[str, Any]] = []
        accepted: list[tuple[str, OutgoingMessage]] = []
        for entry in entries:
            try:
                accepted.append((entry["Id"], self._outgoing(queue, entry)))
            except SqsError as exc:
                failed.append(batch_failure(entry["Id"], exc))
        successful: list[dict[str, Any]] = []
        if accepted:
            ids = await self.store.queue_send([outgoing.message for _, outgoing in accepted])
            for (entry_id, outgoing), message_id in zip(accepted, ids, strict=True):
                successful.append({"Id": entry_id, **outgoing.result(message_id)})
        return {"Successful": successful, "Failed": failed}

    # -- receiving --------------------------------------------------------------------
    async def receive_message(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """ReceiveMessage with long polling (WaitTimeSeconds up to 20)."""
        queue = await self._queue(params, scope)
        max_messages = int_param(
            params,
            "MaxNumberOfMessages",
            1,
            (1, MAX_BATCH),
            "Must be between 1 and 10, if provided.",
        )
        visibility = int_param(
            params,
            "VisibilityTimeout",
            queue.number("VisibilityTimeout"),
            (0, MAX_VISIBILITY_TIMEOUT),
            "Must be >= 0 and <= 43200, if provided.",
        )
        wait = int_param(
            params,
            "WaitTimeSeconds",
            queue.number("ReceiveMessageWaitTimeSeconds"),
            (0, MAX_WAIT_SECONDS),
            "Must be >= 0 and <= 20, if provided.",
        )
        system = {
            *str_list(params, "AttributeNames"),
            *str_list(params, "MessageSystemAttributeNames"),
        }
        wanted_system = (
            SYSTEM_ATTRIBUTES if "All" in system else [n for n in SYSTEM_ATTRIBUTES if n in system]
        )
        kept = {"All"} if "All" in system else system & KEPT_SYSTEM_ATTRIBUTES
        wanted_attributes = str_list(params, "MessageAttributeNames")
        redrive = queue.redrive(self.settings.account_id)
        if redrive is not None and await self.store.catalog_get(KIND, redrive[0]) is None:
            redrive = None  # SQS keeps messages whose dead-letter queue is gone
        messages = await self._poll(queue.name, max_messages, visibility, wait, redrive)
        if not messages:
            return {}
        if self._journal is not None:
            for m in messages:
                self._journal.queue_receive(m.message_id, queue.name, m.receive_count)
        return {
            "Messages": [
                self._render(queue.name, scope, m, wanted_system, wanted_attributes, kept=kept)
                for m in messages
            ]
        }

    async def _poll(
        self,
        queue: str,
        max_messages: int,
        visibility: int,
        wait: int,
        redrive: tuple[str, int] | None,
    ) -> list[QueueMessage]:
        """Receive, waiting up to ``wait`` seconds for a message to become available."""
        signals = self.hooks.signals
        deadline = time.monotonic() + wait
        waiter: asyncio.Task[bool] | None = None
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining > 0 and waiter is None:
                    # register before looking, so a send during the look still wakes us
                    waiter = asyncio.create_task(signals.wait(queue, remaining))
                    await asyncio.sleep(0)
                now = time.time()
                # (messages it moves to the dead-letter queue wake that queue's polls:
                # the store tells of the move)
                got = await self.store.queue_receive(
                    queue, max_messages, float(visibility), now, redrive
                )
                if got:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0 or waiter is None or signals.closed:
                    return []  # signals close at shutdown: long polls answer at once
                timeout = remaining
                due = await self.store.queue_next_visible(queue, now)
                if due is not None:
                    timeout = min(timeout, max(due - time.time(), _MIN_RECHECK))
                await asyncio.wait({waiter}, timeout=timeout)
                if waiter.done():
                    waiter = None
        finally:
            if waiter is not None:
                waiter.cancel()
                await asyncio.wait({waiter})

    def _render(
        self,
        queue: str,
        scope: AccountScope,
        message: QueueMessage,
        system: Iterable[str],
        wanted_attributes: list[str],
        *,
        kept: set[str],
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": encode_receipt(queue, message.receipt, message.message_id),
            "MD5OfBody": md5_hex(message.body.encode()),
            "Body": message.body,
        }
        values = {
            "SenderId": scope.account,
            "SentTimestamp": str(int(message.sent * 1000)),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int(message.first_receive * 1000)),
        }
        chosen = {name: values[name] for name in system}
        if kept:
            for name, value in kept_system(message.attributes).items():
                if "All" in kept or name in kept:
                    chosen[name] = value
            if message.group_id is not None and ("All" in kept or "MessageGroupId" in kept):
                chosen["MessageGroupId"] = message.group_id
        if chosen:
            rendered["Attributes"] = chosen
        attributes = select_attributes(message.attributes, wanted_attributes)
        if attributes:
            rendered["MessageAttributes"] = attributes
            rendered["MD5OfMessageAttributes"] = message_attributes_md5(attributes)
        return rendered

    # -- settling ---------------------------------------------------------------------
    async def delete_message(self, params: dict[str, Any], scope: AccountScope) -> dict[str, Any]:
        """DeleteMessage; a well-formed but stale receipt handle is accepted, as in SQS."""
        queue = await self._queue(params, scope)
        receipt, message_id = decode_receipt(queue.name, params.get("ReceiptHandle"))
        deleted = await self.store.queue_delete(queue.name, receipt)
        if deleted and message_id is not None and self._journal is not None:
            self._journal.queue_delete(message_id, queue.name)
        return {}

    async def delete_message_batch(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """DeleteMessageBatch."""
        queue = await self._queue(params, scope)
        entries = check_batch(params.get("Entries"), "DeleteMessageBatchRequestEntry")
        accepted: list[tuple[str, tuple[str, str | None]]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                accepted.append(
                    (entry["Id"], decode_receipt(queue.name, entry.get("ReceiptHandle")))
                )
            except SqsError as exc:
                failed.append(batch_failure(entry["Id"], exc))
        # issued together, the deletes share one group commit instead of one each
        deleted = await asyncio.gather(
            *(self.store.queue_delete(queue.name, r) for _, (r, _) in accepted)
        )
        if self._journal is not None:
            for (_, (_, message_id)), done in zip(accepted, deleted, strict=True):
                if done and message_id is not None:
                    self._journal.queue_delete(message_id, queue.name)
        return {"Successful": [{"Id": i} for i, _ in accepted], "Failed": failed}

    async def _change_visibility(self, queue: str, entry: Mapping[str, Any]) -> None:
        receipt, _ = decode_receipt(queue, entry.get("ReceiptHandle"))
        if entry.get("VisibilityTimeout") is None:
            raise missing("VisibilityTimeout")
        timeout = int_param(
            entry,
            "VisibilityTimeout",
            0,
            (0, MAX_VISIBILITY_TIMEOUT),
            "Must be between 0 and 43200, if provided.",
        )
        if not await self.store.queue_change_visibility(queue, receipt, timeout, time.time()):
            raise invalid(
                f"Value {entry.get('ReceiptHandle')} for parameter ReceiptHandle is invalid. "
                "Reason: Message does not exist or is not available for visibility timeout "
                "change."
            )

    async def change_message_visibility(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ChangeMessageVisibility (0 to 43200 seconds from now)."""
        queue = await self._queue(params, scope)
        await self._change_visibility(queue.name, params)
        return {}

    async def change_message_visibility_batch(
        self, params: dict[str, Any], scope: AccountScope
    ) -> dict[str, Any]:
        """ChangeMessageVisibilityBatch."""
        queue = await self._queue(params, scope)
        entries = check_batch(params.get("Entries"), "ChangeMessageVisibilityBatchRequestEntry")
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                await self._change_visibility(queue.name, entry)
            except SqsError as exc:
                failed.append(batch_failure(entry["Id"], exc))
                continue
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}
