"""Declarative resources: ``eventyard apply -f resources.yaml``.

A resources file declares queues, buses and rules (with their targets). :func:`load`
checks its shape and every event pattern before anything is changed; :func:`apply`
then compares each declared resource with the server's and creates or updates only what
differs, so applying the same file twice changes nothing the second time. Each resource
is reported as one :class:`Change`: ``created``, ``updated``, ``removed`` (a target no
longer declared on a declared rule) or ``unchanged``.

The file format is :data:`EXAMPLE` (``eventyard apply --help`` and ``docs/cli.md`` show it).
What a file does not mention is left alone: applying never deletes a queue, bus or rule,
and a queue attribute missing from the file keeps its current value. A declared rule's
``targets`` list is complete, though: targets of that rule not in it are removed. A bus's
description is only set when the bus is created: a different one is reported as
``differs`` and left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import orjson
import yaml

from eventyard.envelope import DEFAULT_BUS
from eventyard.errors import (
    InvalidEventPattern,
    QueueError,
    ResourceFileError,
    ResourceNotFound,
)
from eventyard.patterns import compile_pattern
from eventyard.sdk.client import Client

__all__ = [
    "EXAMPLE",
    "Action",
    "Change",
    "QueueSpec",
    "ResourceFileError",
    "Resources",
    "RuleSpec",
    "TargetSpec",
    "apply",
    "load",
    "parse",
]

EXAMPLE = """\
queues:
  - name: stock-dlq
  - name: stock
    attributes:               # SQS attributes (numbers, mappings allowed)
      VisibilityTimeout: 30
    dead-letter:              # sets the RedrivePolicy attribute
      queue: stock-dlq
      max-receive-count: 5
buses:
  - name: orders
    description: Orders from the web shop
rules:
  - name: placed
    bus: orders               # default: default
    description: New orders
    enabled: true             # default: true
    pattern:                  # a mapping, or a JSON string
      source: [shop]
      detail-type: [OrderPlaced]
    targets:                  # omitted: the rule's targets are left alone
      - id: stock
        queue: stock          # a queue by name, or arn: <target ARN>
        input-path: $.detail  # or input: <JSON>, or input-transformer
        dead-letter:
          queue: stock-dlq    # or arn: <SQS queue ARN>
        max-retries: 3
        max-event-age: 3600
      - id: large-orders
        queue: stock
        input-transformer:
          paths: {order: $.detail.id}
          template: '{"order": <order>}'
"""
"""A resources file with every key, each explained in a comment."""

# the legacy code (what the SDK reports) and the modeled shape of a missing queue
_NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})

Action = Literal["created", "updated", "removed", "unchanged", "differs"]


@dataclass(slots=True, frozen=True)
class Change:
    """What applying did to one resource (``differs``: it differs and cannot be changed)."""

    action: Action
    kind: Literal["queue", "bus", "rule", "target"]
    name: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.action} {self.kind} {self.name}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, str]:
        """The change as JSON-ready data."""
        data = {"action": self.action, "kind": self.kind, "name": self.name}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(slots=True, frozen=True)
class QueueSpec:
    """A declared queue; ``dead_letter`` is (queue name, max receive count)."""

    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    dead_letter: tuple[str, int] | None = None


@dataclass(slots=True, frozen=True)
class BusSpec:
    """A declared event bus."""

    name: str
    description: str | None = None


@dataclass(slots=True, frozen=True)
class TargetSpec:
    """A declared target: ``arn`` or ``queue``; ``fields`` are the other PutTargets fields.

    ``dead_letter_queue`` names a queue whose ARN becomes ``DeadLetterConfig.Arn``.
    """

    id: str
    arn: str | None
    queue: str | None
    fields: dict[str, Any]
    dead_letter_queue: str | None = None


@dataclass(slots=True, frozen=True)
class RuleSpec:
    """A declared rule; ``targets`` None leaves the rule's targets as they are."""

    name: str
    bus: str
    pattern: str
    description: str | None
    enabled: bool
    targets: tuple[TargetSpec, ...] | None

    @property
    def key(self) -> str:
        """``bus/name``, how changes name the rule."""
        return f"{self.bus}/{self.name}"


@dataclass(slots=True, frozen=True)
class Resources:
    """Everything a resources file declares."""

    queues: tuple[QueueSpec, ...] = ()
    buses: tuple[BusSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()


# -- reading and checking the file ---------------------------------------------------------
def load(path: str) -> Resources:
    """Read and check a resources file.

    Raises:
        ResourceFileError: the file cannot be read, is not YAML, or not a valid shape.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResourceFileError(f"cannot read {path}: {exc}") from None
    return parse(text, source=path)


def parse(text: str, *, source: str = "resources") -> Resources:
    """Check the text of a resources file and return what it declares.

    Raises:
        ResourceFileError: not YAML, or not the shape the module docstring describes.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ResourceFileError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return Resources()
    checker = _Checker(source)
    top = checker.mapping(data, "", {"queues", "buses", "rules"})
    queues = tuple(
        checker.queue(item, f"queues[{i}]") for i, item in enumerate(checker.items(top, "queues"))
    )
    buses = tuple(
        checker.bus(item, f"buses[{i}]") for i, item in enumerate(checker.items(top, "buses"))
    )
    rules = tuple(
        checker.rule(item, f"rules[{i}]") for i, item in enumerate(checker.items(top, "rules"))
    )
    checker.unique([q.name for q in queues], "queues", "queue")
    checker.unique([b.name for b in buses], "buses", "bus")
    checker.unique([r.key for r in rules], "rules", "rule")
    declared = {q.name for q in queues}
    for index, queue in enumerate(queues):
        if queue.dead_letter is not None and queue.dead_letter[0] == queue.name:
            checker.error(f"queues[{index}].dead-letter", "a queue cannot be its own dead-letter")
        if queue.dead_letter is not None and queue.dead_letter[0] in declared:
            _check_no_cycle(checker, queues, index)
    return Resources(queues, buses, rules)


def _check_no_cycle(checker: _Checker, queues: Sequence[QueueSpec], start: int) -> None:
    by_name = {q.name: q for q in queues}
    seen = {queues[start].name}
    current = queues[start]
    while current.dead_letter is not None and current.dead_letter[0] in by_name:
        current = by_name[current.dead_letter[0]]
        if current.name in seen:
            checker.error(f"queues[{start}].dead-letter", "dead-letter queues form a cycle")
        seen.add(current.name)


class _Checker:
    """Shape checks with errors that name the place, e.g. ``rules[0].targets[1].id``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, where: str, message: str) -> NoReturn:
        place = f"{self.source}: {where}: " if where else f"{self.source}: "
        raise ResourceFileError(place + message)

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.error(where, f"unknown key {key!r} (expected one of: {expected})")
        return value

    def items(self, parent: Mapping[str, Any], key: str, where: str = "") -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(f"{where}{key}", f"expected a list, got {_kind(value)}")
        return value

    def name(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.error(where, "expected a non-empty string")
        return value

    def text(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(where, f"expected a string, got {_kind(value)}")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(where, f"expected an integer from {low} to {high}")
        return value

    def unique(self, names: list[str], where: str, kind: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                self.error(where, f"{kind} {name} is declared twice")
            seen.add(name)

    # -- resources -------------------------------------------------------------------------
    def queue(self, value: Any, where: str) -> QueueSpec:
        item = self.mapping(value, where, {"name", "attributes", "dead-letter"})
        name = self.name(item.get("name"), f"{where}.name")
        raw = item.get("attributes") or {}
        attributes = {
            key: _attribute_text(self, val, f"{where}.attributes.{key}")
            for key, val in self.mapping(raw, f"{where}.attributes", set(raw)).items()
        }
        dead_letter = None
        if item.get("dead-letter") is not None:
            spot = f"{where}.dead-letter"
            letter = self.mapping(item["dead-letter"], spot, {"queue", "max-receive-count"})
            queue = self.name(letter.get("queue"), f"{spot}.queue")
            count = self.integer(
                letter.get("max-receive-count", 10), f"{spot}.max-receive-count", 1, 1000
            )
            if "RedrivePolicy" in attributes:
                self.error(where, "give dead-letter or attributes.RedrivePolicy, not both")
            dead_letter = (queue, count or 10)
        return QueueSpec(name, attributes, dead_letter)

    def bus(self, value: Any, where: str) -> BusSpec:
        item = self.mapping(value, where, {"name", "description"})
        name = self.name(item.get("name"), f"{where}.name")
        return BusSpec(name, self.text(item.get("description"), f"{where}.description"))

    def rule(self, value: Any, where: str) -> RuleSpec:
        keys = {"name", "bus", "description", "enabled", "pattern", "targets"}
        item = self.mapping(value, where, keys)
        name = self.name(item.get("name"), f"{where}.name")
        bus = self.name(item.get("bus", DEFAULT_BUS), f"{where}.bus")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error(f"{where}.enabled", "expected true or false")
        pattern = self.pattern(item.get("pattern"), f"{where}.pattern")
        targets = None
        if "targets" in item:
            targets = tuple(
                self.target(t, f"{where}.targets[{i}]")
                for i, t in enumerate(self.items(item, "targets", f"{where}."))
            )
            self.unique([t.id for t in targets], f"{where}.targets", "target")
        description = self.text(item.get("description"), f"{where}.description")
        return RuleSpec(name, bus, pattern, description, enabled, targets)

    def pattern(self, value: Any, where: str) -> str:
        if value is None:
            self.error(where, "a rule needs an event pattern")
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                self.error(where, f"not valid JSON: {exc}")
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping or a JSON object, got {_kind(value)}")
        text = orjson.dumps(value).decode()
        try:
            compile_pattern(text)
        except InvalidEventPattern as exc:
            self.error(where, exc.message)
        return text

    def target(self, value: Any, where: str) -> TargetSpec:
        keys = {
            "id", "arn", "queue", "input", "input-path", "input-transformer",
            "dead-letter", "max-retries", "max-event-age",
        }  # fmt: skip
        item = self.mapping(value, where, keys)
        target_id = self.name(item.get("id"), f"{where}.id")
        arn, queue = item.get("arn"), item.get("queue")
        if (arn is None) == (queue is None):
            self.error(where, "give exactly one of arn and queue")
        arn = self.text(arn, f"{where}.arn")
        queue = self.text(queue, f"{where}.queue")
        fields: dict[str, Any] = {}
        inputs = [k for k in ("input", "input-path", "input-transformer") if k in item]
        if len(inputs) > 1:
            self.error(where, "give at most one of input, input-path and input-transformer")
        if "input" in item:
            constant = item["input"]
            fields["Input"] = (
                constant if isinstance(constant, str) else orjson.dumps(constant).decode()
            )
        if "input-path" in item:
            fields["InputPath"] = self.name(item["input-path"], f"{where}.input-path")
        if "input-transformer" in item:
            spot = f"{where}.input-transformer"
            raw = self.mapping(item["input-transformer"], spot, {"paths", "template"})
            template = self.name(raw.get("template"), f"{spot}.template")
            transformer: dict[str, Any] = {"InputTemplate": template}
            if raw.get("paths") is not None:
                paths = self.mapping(raw["paths"], f"{spot}.paths", set(raw["paths"]))
                transformer["InputPathsMap"] = {
                    str(k): self.name(v, f"{spot}.paths.{k}") for k, v in paths.items()
                }
            fields["InputTransformer"] = transformer
        dead_letter_queue = None
        if item.get("dead-letter") is not None:
            spot = f"{where}.dead-letter"
            letter = self.mapping(item["dead-letter"], spot, {"queue", "arn"})
            if ("queue" in letter) == ("arn" in letter):
                self.error(spot, "give exactly one of queue and arn")
            if "arn" in letter:
                fields["DeadLetterConfig"] = {"Arn": self.name(letter["arn"], f"{spot}.arn")}
            else:
                dead_letter_queue = self.name(letter["queue"], f"{spot}.queue")
        retry: dict[str, int] = {}
        retries = self.integer(item.get("max-retries"), f"{where}.max-retries", 0, 185)
        if retries is not None:
            retry["MaximumRetryAttempts"] = retries
        age = self.integer(item.get("max-event-age"), f"{where}.max-event-age", 60, 86400)
        if age is not None:
            retry["MaximumEventAgeInSeconds"] = age
        if retry:
            fields["RetryPolicy"] = retry
        return TargetSpec(target_id, arn, queue, fields, dead_letter_queue)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _attribute_text(checker: _Checker, value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    checker.error(where, f"expected a string, number or mapping, got {_kind(value)}")


# -- applying ------------------------------------------------------------------------------
def apply(
    client: Client, resources: Resources, report: Callable[[Change], None] | None = None
) -> list[Change]:
    """Make the server's resources what ``resources`` declares.

    Queues come first (rules' targets may name them), then buses, then rules and their
    targets. Each change is passed to ``report`` as soon as it is made.

    Returns:
        Every change, in the order made (``unchanged`` ones included).

    Raises:
        ServiceError: the server refused a change (the changes before it stay made).
        TransportError: the server could not be reached.
        ResourceFileError: a target or dead-letter names a queue that does not exist.
    """
    changes: list[Change] = []

    def note(change: Change) -> None:
        changes.append(change)
        if report is not None:
            report(change)

    arns = _QueueArns(client)
    for queue in _dead_letters_first(resources.queues):
        note(_apply_queue(client, queue, arns))
    for bus in resources.buses:
        note(_apply_bus(client, bus))
    for rule in resources.rules:
        note(_apply_rule(client, rule))
        if rule.targets is not None:
            for change in _apply_targets(client, rule, rule.targets, arns):
                note(change)
    return changes


class _QueueArns:
    """Queue name → ARN, asked once per name."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._arns: dict[str, str] = {}

    def __call__(self, name: str, where: str) -> str:
        arn = self._arns.get(name)
        if arn is None:
            try:
                arn = self._arns[name] = self._client.queue_arn(name)
            except QueueError as exc:
                if exc.code not in _NO_SUCH_QUEUE:
                    raise
                raise ResourceFileError(
                    f"{where}: queue {name} does not exist (declare it under queues)"
                ) from None
        return arn


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


def _apply_queue(client: Client, queue: QueueSpec, arns: _QueueArns) -> Change:
    desired = dict(queue.attributes)
    if queue.dead_letter is not None:
        dlq, count = queue.dead_letter
        target_arn = arns(dlq, f"queue {queue.name}: dead-letter")
        desired["RedrivePolicy"] = orjson.dumps(
            {"deadLetterTargetArn": target_arn, "maxReceiveCount": count}
        ).decode()
    try:
        current = client.get_queue_attributes(queue.name)
    except QueueError as exc:
        if exc.code not in _NO_SUCH_QUEUE:
            raise
        client.create_queue(queue.name, attributes=desired or None)
        return Change("created", "queue", queue.name)
    changed = {
        key: value
        for key, value in desired.items()
        if key not in current or _normal(current[key]) != _normal(value)
    }
    if not changed:
        return Change("unchanged", "queue", queue.name)
    client.set_queue_attributes(queue.name, changed)
    return Change("updated", "queue", queue.name, ", ".join(sorted(changed)))


def _apply_bus(client: Client, bus: BusSpec) -> Change:
    try:
        current = client.describe_bus(bus.name)
    except ResourceNotFound:
        client.create_bus(bus.name, description=bus.description)
        return Change("created", "bus", bus.name)
    if bus.description is not None and current.get("Description") != bus.description:
        return Change("differs", "bus", bus.name, "description cannot be changed")
    return Change("unchanged", "bus", bus.name)


def _apply_rule(client: Client, rule: RuleSpec) -> Change:
    try:
        current = client.describe_rule(rule.name, bus=rule.bus)
    except ResourceNotFound as exc:
        if "Event bus" in exc.message:
            raise
        current = None
    if current is not None:
        same_pattern = _json_equal(current.get("EventPattern"), rule.pattern)
        same_state = (current.get("State") == "ENABLED") == rule.enabled
        same_text = (current.get("Description") or None) == (rule.description or None)
        if same_pattern and same_state and same_text:
            return Change("unchanged", "rule", rule.key)
    client.put_rule(
        rule.name, rule.pattern, bus=rule.bus, description=rule.description, enabled=rule.enabled
    )
    return Change("created" if current is None else "updated", "rule", rule.key)


def _json_equal(text: Any, other: str) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return bool(orjson.loads(text) == orjson.loads(other))
    except orjson.JSONDecodeError:
        return False


def _apply_targets(
    client: Client, rule: RuleSpec, targets: Sequence[TargetSpec], arns: _QueueArns
) -> list[Change]:
    current = {str(t.get("Id")): t for t in client.list_targets(rule.name, bus=rule.bus)}
    changes: list[Change] = []
    to_put: list[dict[str, Any]] = []
    for target in targets:
        where = f"rule {rule.key} target {target.id}"
        desired: dict[str, Any] = {"Id": target.id}
        desired["Arn"] = target.arn if target.arn is not None else arns(str(target.queue), where)
        desired.update(target.fields)
        if target.dead_letter_queue is not None:
            dlq_arn = arns(target.dead_letter_queue, f"{where}: dead-letter")
            desired["DeadLetterConfig"] = {"Arn": dlq_arn}
        name = f"{rule.key}/{target.id}"
        existing = current.get(target.id)
        if existing == desired:
            changes.append(Change("unchanged", "target", name))
            continue
        to_put.append(desired)
        changes.append(Change("created" if existing is None else "updated", "target", name))
    stale = [target_id for target_id in current if target_id not in {t.id for t in targets}]
    if stale:
        client.remove_targets(rule.name, stale, bus=rule.bus)
        changes.extend(Change("removed", "target", f"{rule.key}/{i}") for i in stale)
    if to_put:
        client.put_targets(rule.name, to_put, bus=rule.bus)
    return changes
