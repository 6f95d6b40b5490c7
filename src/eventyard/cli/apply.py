"""``eventyard apply -f resources.yaml``: check a whole resources file, then apply it.

Applying goes in three phases, and nothing changes on the server before the third:

1. **read** (:mod:`eventyard.cli.resource_file`): the file's shape, names, ARNs, queue
   attributes and event patterns are checked without a server;
2. **prepare** (:func:`prepare`, read-only requests): every pattern is checked again by
   the server (``TestEventPattern``), every bus a rule is on and every queue or bus a
   target or dead-letter names must exist or be declared in the same file, and each
   declared resource is compared with the server's, giving the :class:`Step` list;
3. **apply** (:func:`execute`): the steps in order (queues, a dead-letter queue before
   the queues using it, then buses, then each rule and its targets), each change reported
   as it is made.

Every error names ``file:line``, including the server's errors (mapped back to the line
of the resource concerned). An error in phases 1 and 2 is the file's fault (exit 2) unless
the server failed; if the server fails in phase 3 (it went away), the changes made so far
stay made and the ones not made are listed as ``not applied: …``. Applying the same file
twice changes nothing the second time. What the file does not mention is left alone; a
declared rule's ``targets`` list is complete (other targets of that rule are removed); a
bus's description is only set when the bus is created (a different one is ``differs``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import orjson
import typer

from eventyard.cli.failures import describe, fail
from eventyard.cli.output import (
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    emit_json,
    open_client,
)
from eventyard.cli.resource_file import (
    EXAMPLE,
    BusSpec,
    Origin,
    Path,
    QueueSpec,
    Resources,
    RuleSpec,
    TargetSpec,
    bus_name,
    load,
    queue_name_of_arn,
)
from eventyard.errors import (
    EventyardError,
    QueueError,
    ResourceNotFound,
    ServiceError,
)
from eventyard.sdk.client import Client

__all__ = ["HELP", "Action", "Change", "Step", "apply_command", "execute", "prepare"]

Action = Literal["created", "updated", "removed", "unchanged", "differs"]
_VERB = {"created": "create", "updated": "update", "removed": "remove"}

# the legacy code (what the SDK reports) and the modeled shape of a missing queue
_NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# an event for TestEventPattern: the server checks the pattern, the answer is unused
_PROBE_EVENT = {
    "id": "00000000-0000-0000-0000-000000000000",
    "detail-type": "eventyard apply",
    "source": "eventyard.apply",
    "account": "000000000000",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


@dataclass(slots=True, frozen=True)
class Change:
    """What applying does to one resource (``differs``: it differs and cannot be changed).

    ``applied`` is False for a change planned but not made (a dry run, or after a failure).
    """

    action: Action
    kind: Literal["queue", "bus", "rule", "target"]
    name: str
    detail: str = ""
    applied: bool = True

    def __str__(self) -> str:
        if self.applied or self.action not in _VERB:
            text = f"{self.action} {self.kind} {self.name}"
        else:
            text = f"{_VERB[self.action]} {self.kind} {self.name}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def planned(self) -> Change:
        """The same change, not made."""
        return dataclasses.replace(self, applied=False)

    def to_dict(self) -> dict[str, Any]:
        """The change as JSON-ready data."""
        data: dict[str, Any] = {"action": self.action, "kind": self.kind, "name": self.name}
        if self.detail:
            data["detail"] = self.detail
        data["applied"] = self.applied
        return data


@dataclass(slots=True, frozen=True)
class Step:
    """Changes made by one action on the server; ``run`` None: nothing to do.

    ``where`` names the resource in the file, e.g. ``r.yaml:12: rules[0]: rule orders/placed``.
    """

    where: str
    changes: tuple[Change, ...]
    run: Callable[[], None] | None = None


# -- phase 2: check against the server and plan -----------------------------------------------
def prepare(client: Client, resources: Resources) -> list[Step]:
    """Check the file against the server and plan the changes, changing nothing.

    Returns:
        The steps, in the order they must be made.

    Raises:
        ConfigurationError: the file names something the server lacks or refuses
            (``file:line: …``).
        ServiceError: the server failed (HTTP 5xx).
        TransportError: the server could not be reached.
    """
    return _Planner(client, resources).plan()


def execute(
    steps: Sequence[Step], report: Callable[[Change], None]
) -> tuple[int, EventyardError] | None:
    """Make the steps in order, reporting each change once made.

    Returns:
        None when every step was made; else the index of the step that failed and why
        (the steps before it are made, it and those after are not).
    """
    for index, step in enumerate(steps):
        if step.run is not None:
            try:
                step.run()
            except EventyardError as exc:
                return index, exc
        for change in step.changes:
            report(change)
    return None


class _Planner:
    """Reads the server's state (never writes) and plans each declared resource."""

    def __init__(self, client: Client, resources: Resources) -> None:
        self.client = client
        self.resources = resources
        self.origin: Origin = resources.origin
        self.declared_queues = {q.name for q in resources.queues}
        self.declared_buses = {b.name for b in resources.buses}
        self._queue_arns: dict[str, str | None] = {}
        self._buses: dict[str, bool] = {}

    def plan(self) -> list[Step]:
        steps: list[Step] = []
        for queue in _dead_letters_first(self.resources.queues):
            with self._refusals(queue.path):
                steps.append(self.queue(queue))
        for bus in self.resources.buses:
            with self._refusals(bus.path):
                steps.append(self.bus(bus))
        for rule in self.resources.rules:
            with self._refusals(rule.path):
                steps.extend(self.rule(rule))
        return steps

    @contextmanager
    def _refusals(self, path: Path) -> Iterator[None]:
        """The server's refusals (4xx) while planning become file errors at ``path``."""
        try:
            yield
        except ServiceError as exc:
            if exc.status >= 500:
                raise
            raise self.origin.error(path, describe(exc)[0]) from None

    def where(self, path: Path, kind: str, name: str) -> str:
        return f"{self.origin.where(path)}: {kind} {name}"

    # -- what exists ---------------------------------------------------------------------
    def queue_arn(self, name: str) -> str | None:
        """The ARN of an existing queue; None if it does not exist (yet)."""
        if name not in self._queue_arns:
            try:
                self._queue_arns[name] = self.client.queue_arn(name)
            except QueueError as exc:
                if exc.code not in _NO_SUCH_QUEUE:
                    raise
                self._queue_arns[name] = None
        return self._queue_arns[name]

    def arn_now(self, name: str) -> str:
        """The ARN of a queue while applying: it exists by then (created before)."""
        arn = self._queue_arns.get(name)
        if arn is None:
            arn = self._queue_arns[name] = self.client.queue_arn(name)
        return arn

    def need_queue(self, name: str, path: Path) -> None:
        if self.queue_arn(name) is None and name not in self.declared_queues:
            raise self.origin.error(path, f"queue {name} does not exist (declare it under queues)")

    def need_queue_arn(self, arn: str, path: Path) -> None:
        """An SQS ARN must be a queue of this server, or one the file declares."""
        name = queue_name_of_arn(arn)
        if name is None:
            return
        existing = self.queue_arn(name)
        if existing is None and name not in self.declared_queues:
            raise self.origin.error(path, f"queue {name} does not exist (declare it under queues)")
        if existing is not None and existing != arn:
            raise self.origin.error(
                path, f"{arn} is not a queue of this server (its queue {name} is {existing})"
            )

    def bus_exists(self, name: str) -> bool:
        if name not in self._buses:
            try:
                self.client.describe_bus(name)
                self._buses[name] = True
            except ResourceNotFound:
                self._buses[name] = False
        return self._buses[name]

    def need_bus(self, bus: str, path: Path) -> None:
        name = bus_name(bus)
        if name not in self.declared_buses and not self.bus_exists(name):
            raise self.origin.error(path, f"bus {name} does not exist (declare it under buses)")

    # -- queues --------------------------------------------------------------------------
    def queue(self, queue: QueueSpec) -> Step:
        where = self.where(queue.path, "queue", queue.name)
        if queue.dead_letter is not None:
            self.need_queue(queue.dead_letter[0], (*queue.path, "dead-letter", "queue"))

        def desired(arn_of: Callable[[str], str | None]) -> dict[str, str | None]:
            attributes: dict[str, str | None] = dict(queue.attributes)
            if queue.dead_letter is not None:
                dlq, count = queue.dead_letter
                arn = arn_of(dlq)
                attributes["RedrivePolicy"] = None
                if arn is not None:
                    policy = {"deadLetterTargetArn": arn, "maxReceiveCount": count}
                    attributes["RedrivePolicy"] = orjson.dumps(policy).decode()
            return attributes

        def now() -> dict[str, str]:
            return {k: v for k, v in desired(self.arn_now).items() if v is not None}

        try:
            current = self.client.get_queue_attributes(queue.name)
        except QueueError as exc:
            if exc.code not in _NO_SUCH_QUEUE:
                raise
            change = Change("created", "queue", queue.name)
            return Step(
                where,
                (change,),
                lambda: self._create_queue(queue.name, now()),
            )
        changed = sorted(
            key
            for key, value in desired(self.queue_arn).items()
            if value is None or key not in current or _normal(current[key]) != _normal(value)
        )
        if not changed:
            return Step(where, (Change("unchanged", "queue", queue.name),))
        change = Change("updated", "queue", queue.name, ", ".join(changed))
        return Step(
            where,
            (change,),
            lambda: self.client.set_queue_attributes(
                queue.name, {k: v for k, v in now().items() if k in changed}
            ),
        )

    def _create_queue(self, name: str, attributes: Mapping[str, str]) -> None:
        self.client.create_queue(name, attributes=attributes or None)

    # -- buses ---------------------------------------------------------------------------
    def bus(self, bus: BusSpec) -> Step:
        where = self.where(bus.path, "bus", bus.name)
        try:
            current = self.client.describe_bus(bus.name)
        except ResourceNotFound:
            change = Change("created", "bus", bus.name)
            return Step(
                where,
                (change,),
                lambda: self._create_bus(bus),
            )
        if bus.description is not None and current.get("Description") != bus.description:
            return Step(
                where, (Change("differs", "bus", bus.name, "description cannot be changed"),)
            )
        return Step(where, (Change("unchanged", "bus", bus.name),))

    def _create_bus(self, bus: BusSpec) -> None:
        self.client.create_bus(bus.name, description=bus.description)

    # -- rules and targets ---------------------------------------------------------------
    def rule(self, rule: RuleSpec) -> list[Step]:
        where = self.where(rule.path, "rule", rule.key)
        self.need_bus(rule.bus, (*rule.path, "bus"))
        with self._refusals((*rule.path, "pattern")):
            self.client.test_pattern(rule.pattern, _PROBE_EVENT)
        current: dict[str, Any] | None = None
        if self.bus_exists(bus_name(rule.bus)):
            try:
                current = self.client.describe_rule(rule.name, bus=rule.bus)
            except ResourceNotFound:
                current = None
        steps: list[Step] = []
        if current is not None and _same_rule(current, rule):
            steps.append(Step(where, (Change("unchanged", "rule", rule.key),)))
        else:
            action: Action = "created" if current is None else "updated"
            steps.append(Step(where, (Change(action, "rule", rule.key),), lambda: self._put(rule)))
        if rule.targets is not None:
            existing = [] if current is None else self.client.list_targets(rule.name, bus=rule.bus)
            steps.append(self.targets(rule, rule.targets, existing))
        return steps

    def _put(self, rule: RuleSpec) -> None:
        self.client.put_rule(
            rule.name,
            rule.pattern,
            bus=rule.bus,
            description=rule.description,
            enabled=rule.enabled,
        )

    def target_fields(
        self, target: TargetSpec, arn_of: Callable[[str], str | None]
    ) -> dict[str, Any]:
        desired: dict[str, Any] = {"Id": target.id}
        desired["Arn"] = target.arn if target.arn is not None else arn_of(str(target.queue))
        desired.update(target.fields)
        if target.dead_letter_queue is not None:
            desired["DeadLetterConfig"] = {"Arn": arn_of(target.dead_letter_queue)}
        return desired

    def targets(
        self, rule: RuleSpec, targets: Sequence[TargetSpec], existing: Sequence[Mapping[str, Any]]
    ) -> Step:
        for target in targets:
            if target.queue is not None:
                self.need_queue(target.queue, (*target.path, "queue"))
            if target.arn is not None:
                self.need_queue_arn(target.arn, (*target.path, "arn"))
                bus_target = bus_name(target.arn)
                if bus_target != target.arn:
                    self.need_bus(bus_target, (*target.path, "arn"))
            if target.dead_letter_queue is not None:
                self.need_queue(target.dead_letter_queue, (*target.path, "dead-letter", "queue"))
            dead_letter = target.fields.get("DeadLetterConfig")
            if dead_letter is not None:
                self.need_queue_arn(dead_letter["Arn"], (*target.path, "dead-letter", "arn"))
        current = {str(t.get("Id")): t for t in existing}
        changes: list[Change] = []
        changed: list[TargetSpec] = []
        for target in targets:
            name = f"{rule.key}/{target.id}"
            desired = self.target_fields(target, self.queue_arn)
            found = current.get(target.id)
            if found == desired:
                changes.append(Change("unchanged", "target", name))
                continue
            changed.append(target)
            changes.append(Change("created" if found is None else "updated", "target", name))
        declared = {t.id for t in targets}
        stale = [target_id for target_id in current if target_id not in declared]
        changes.extend(Change("removed", "target", f"{rule.key}/{i}") for i in stale)

        def run() -> None:
            # stale targets go first: the rule never holds more than five
            if stale:
                self.client.remove_targets(rule.name, stale, bus=rule.bus)
            if changed:
                put = [self.target_fields(t, self.arn_now) for t in changed]
                self.client.put_targets(rule.name, put, bus=rule.bus)

        where = f"{self.origin.where((*rule.path, 'targets'))}: targets of rule {rule.key}"
        return Step(where, tuple(changes), run if stale or changed else None)


def _same_rule(current: Mapping[str, Any], rule: RuleSpec) -> bool:
    same_pattern = _json_equal(current.get("EventPattern"), rule.pattern)
    same_state = (current.get("State") == "ENABLED") == rule.enabled
    same_text = (current.get("Description") or None) == (rule.description or None)
    return same_pattern and same_state and same_text


def _dead_letters_first(queues: Sequence[QueueSpec]) -> list[QueueSpec]:
    """The queues ordered so that a declared dead-letter queue comes before its users."""
    by_name = {q.name: q for q in queues}
    ordered: list[QueueSpec] = []
    placed: set[str] = set()

    def place(queue: QueueSpec) -> None:
        if queue.name in placed:
            return
        placed.add(queue.name)
        if queue.dead_letter is not None and queue.dead_letter[0] in by_name:
            place(by_name[queue.dead_letter[0]])
        ordered.append(queue)

    for queue in queues:
        place(queue)
    return ordered


def _normal(value: str) -> Any:
    """An attribute value in a form where equal settings compare equal."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if isinstance(parsed, dict):
        return {k: str(v) for k, v in parsed.items()}
    return value


def _json_equal(text: Any, other: str) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return bool(orjson.loads(text) == orjson.loads(other))
    except orjson.JSONDecodeError:
        return False


# -- the command -------------------------------------------------------------------------------
HELP = f"""Make the server's resources what a YAML file declares.

Checks the whole file first (its shape, names, patterns, and that every bus and queue it
refers to exists or is declared in it), then creates or updates its queues, buses, rules
and targets, printing one line per resource: created, updated, removed (a target no
longer listed under its rule), unchanged, or differs (a bus description, which cannot be
changed). Errors name file:line. Applying the same file again changes nothing; nothing
the file does not mention is deleted. --dry-run checks and prints the plan only.

The file (every key shown; docs/cli.md explains each):

```yaml
{EXAMPLE}```
"""


def apply_command(
    file: Annotated[FilePath, typer.Option("--file", "-f", help="The resources file (YAML).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and print the plan; change nothing.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    resources = load(str(file))
    changes: list[Change] = []

    def report(change: Change) -> None:
        changes.append(change)
        if output is Output.table:
            typer.echo(str(change))

    with open_client(url, token) as client:
        steps = prepare(client, resources)
        try:
            if dry_run:
                for step in steps:
                    for change in step.changes:
                        report(change.planned())
                return
            failure = execute(steps, report)
            if failure is not None:
                index, exc = failure
                pending = [
                    change.planned()
                    for step in steps[index:]
                    for change in step.changes
                    if change.action in _VERB
                ]
                for change in pending:
                    changes.append(change)
                    if output is Output.table:
                        typer.echo(f"not applied: {change}")
                made = sum(1 for c in changes if c.applied and c.action in _VERB)
                fail(
                    f"{steps[index].where}: {describe(exc)[0]} ({made} changes made, "
                    f"{len(pending)} not applied: listed in the output)"
                )
        finally:
            if output is Output.json:
                emit_json([change.to_dict() for change in changes])
