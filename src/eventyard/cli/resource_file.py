"""The resources file of ``eventyard apply``: its format, and reading it with line numbers.

A resources file declares queues, buses and rules (with their targets); :data:`EXAMPLE`
shows every key. :func:`parse` checks everything that can be checked without a server
(the shape, names, ARNs, queue attribute values, five targets at most per rule, and every
event pattern, with the same code as the server) and keeps, for every node of the YAML
document, the line it starts on: every error names ``file:line`` and the place in the
document, e.g. ``resources.yaml:21: rules[0].targets[1]: give exactly one of arn, queue
and url``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson
import yaml

from eventyard.cli.output import check_pattern
from eventyard.envelope import BUS_ARN_RE, DEFAULT_BUS
from eventyard.errors import ConfigurationError, InvalidEventPattern

__all__ = [
    "EXAMPLE",
    "MAX_TARGETS",
    "BusSpec",
    "Origin",
    "Path",
    "QueueSpec",
    "Resources",
    "RuleSpec",
    "TargetSpec",
    "bus_name",
    "load",
    "parse",
    "queue_name_of_arn",
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

# EventBridge allows five targets per rule (PutTargets answers LimitExceededException)
MAX_TARGETS = 5

# the names AWS documents for each resource
_RULE_NAME = re.compile(r"[\.\-_A-Za-z0-9]{1,64}")
_TARGET_ID = re.compile(r"[\.\-_A-Za-z0-9]{1,64}")
_BUS_NAME = re.compile(r"[\.\-_A-Za-z0-9]{1,256}")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_\-]{1,80}")
_ARN = re.compile(r"arn:[\w-]+:[\w-]+:[\w-]*:[0-9]*:\S+")
_QUEUE_ARN = re.compile(
    r"arn:[\w-]+:sqs:[\w-]+:[0-9]{12}:([A-Za-z0-9_\-]{1,80}|[A-Za-z0-9_\-]{1,75}\.fifo)"
)
_MAX_ARN = 1600
# the SQS queue attributes a file may set, and the range of the numeric ones
_INTEGER_ATTRIBUTES = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 1048576),
    "MessageRetentionPeriod": (60, 1209600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43200),
    "KmsDataKeyReusePeriodSeconds": (60, 86400),
}
_OTHER_ATTRIBUTES = frozenset(
    {
        "Policy",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "KmsMasterKeyId",
        "SqsManagedSseEnabled",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    }
)

Path = tuple[str | int, ...]
"""Where a node is in the document: ``("rules", 0, "targets", 1, "id")``."""


@dataclass(slots=True, frozen=True)
class Origin:
    """A resources file's name and the line each node of it starts on."""

    name: str
    lines: Mapping[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor in the file (1 for the top)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def where(self, path: Path) -> str:
        """``file:line: rules[0].targets[1]`` (``file:line`` for the top)."""
        place = f"{self.name}:{self.line(path)}"
        return f"{place}: {_dotted(path)}" if path else place

    def error(self, path: Path, message: str) -> ConfigurationError:
        """A file error at ``path``: ``file:line: place: message``."""
        return ConfigurationError(f"{self.where(path)}: {message}")


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(slots=True, frozen=True)
class QueueSpec:
    """A declared queue; ``dead_letter`` is (queue name, max receive count)."""

    name: str
    path: Path
    attributes: dict[str, str] = field(default_factory=dict)
    dead_letter: tuple[str, int] | None = None


@dataclass(slots=True, frozen=True)
class BusSpec:
    """A declared event bus."""

    name: str
    path: Path
    description: str | None = None


@dataclass(slots=True, frozen=True)
class TargetSpec:
    """A declared target: ``arn`` or ``queue``; ``fields`` are the other PutTargets fields.

    ``dead_letter_queue`` names a queue whose ARN becomes ``DeadLetterConfig.Arn``.
    """

    id: str
    path: Path
    arn: str | None
    queue: str | None
    fields: dict[str, Any]
    dead_letter_queue: str | None = None


@dataclass(slots=True, frozen=True)
class RuleSpec:
    """A declared rule; ``targets`` None leaves the rule's targets as they are."""

    name: str
    path: Path
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
    """Everything a resources file declares, and where."""

    origin: Origin = field(default_factory=lambda: Origin("resources"))
    queues: tuple[QueueSpec, ...] = ()
    buses: tuple[BusSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()


def bus_name(bus: str) -> str:
    """The name of a bus given by name or ARN."""
    match = BUS_ARN_RE.match(bus)
    return match.group(3) if match else bus


def queue_name_of_arn(arn: str) -> str | None:
    """The queue name of an SQS queue ARN, None for any other ARN."""
    match = _QUEUE_ARN.fullmatch(arn)
    return match.group(1) if match else None


# -- reading ---------------------------------------------------------------------------------
def load(path: str) -> Resources:
    """Read and check a resources file.

    Raises:
        ConfigurationError: the file cannot be read, is not YAML, or not valid.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    return parse(text, source=path)


def parse(text: str, *, source: str = "resources") -> Resources:
    """Check the text of a resources file and return what it declares.

    Raises:
        ConfigurationError: not YAML, or not a valid resources file (``file:line: …``).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "not valid"
        raise ConfigurationError(f"{source}{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    if node is not None:
        _mark(node, (), lines, Origin(source, lines))
    origin = Origin(source, lines)
    if data is None:
        return Resources(origin)
    return _Checker(origin).resources(data)


def _mark(node: yaml.Node, path: Path, lines: dict[Path, int], origin: Origin) -> None:
    """Record the line of every node under ``node``; refuse a key given twice."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key == "<<":  # a merge key: its entries are merged by the constructor
                continue
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            if key in seen:
                raise origin.error(child, f"key {key!r} is given twice")
            seen.add(key)
            _mark(value_node, child, lines, origin)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _mark(item, (*path, index), lines, origin)


class _Checker:
    """Shape and value checks whose errors name ``file:line`` and the place."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin

    def error(self, path: Path, message: str) -> NoReturn:
        raise self.origin.error(path, message)

    # -- values ----------------------------------------------------------------------------
    def mapping(self, value: Any, path: Path, allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.error((*path, str(key)), f"unknown key {key!r} (expected one of: {expected})")
        return value

    def items(self, parent: Mapping[str, Any], key: str, path: Path) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error((*path, key), f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, path: Path) -> str:
        if not isinstance(value, str) or not value:
            self.error(path, "expected a non-empty string")
        return value

    def optional_text(self, value: Any, path: Path) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(path, f"expected a string, got {_kind(value)}")
        return value

    def name(self, value: Any, path: Path, rule: re.Pattern[str], what: str) -> str:
        text = self.text(value, path)
        if not rule.fullmatch(text):
            self.error(path, f"{text!r} is not a valid {what} (allowed: {_allowed(rule)})")
        return text

    def arn(self, value: Any, path: Path) -> str:
        text = self.text(value, path)
        if len(text) > _MAX_ARN or not _ARN.fullmatch(text):
            self.error(path, f"{text!r} is not an ARN (arn:partition:service:region:account:…)")
        return text

    def url(self, value: Any, path: Path) -> str:
        text = self.text(value, path)
        if len(text) > _MAX_ARN or not text.startswith(("http://", "https://")):
            self.error(path, f"{text!r} is not a webhook URL (http:// or https://)")
        return text

    def integer(self, value: Any, path: Path, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(path, f"expected an integer from {low} to {high}")
        return value

    def unique(self, names: Sequence[tuple[str, Path]], kind: str) -> None:
        seen: set[str] = set()
        for name, path in names:
            if name in seen:
                self.error(path, f"{kind} {name} is declared twice")
            seen.add(name)

    # -- resources -------------------------------------------------------------------------
    def resources(self, data: Any) -> Resources:
        top = self.mapping(data, (), {"queues", "buses", "rules"})
        queues = tuple(
            self.queue(item, ("queues", i)) for i, item in enumerate(self.items(top, "queues", ()))
        )
        buses = tuple(
            self.bus(item, ("buses", i)) for i, item in enumerate(self.items(top, "buses", ()))
        )
        rules = tuple(
            self.rule(item, ("rules", i)) for i, item in enumerate(self.items(top, "rules", ()))
        )
        self.unique([(q.name, q.path) for q in queues], "queue")
        self.unique([(b.name, b.path) for b in buses], "bus")
        self.unique([(r.key, r.path) for r in rules], "rule")
        for queue in queues:
            if queue.dead_letter is not None and queue.dead_letter[0] == queue.name:
                self.error((*queue.path, "dead-letter"), "a queue cannot be its own dead-letter")
        self._check_no_cycle(queues)
        return Resources(self.origin, queues, buses, rules)

    def _check_no_cycle(self, queues: Sequence[QueueSpec]) -> None:
        by_name = {q.name: q for q in queues}
        for start in queues:
            seen = {start.name}
            current = start
            while current.dead_letter is not None and current.dead_letter[0] in by_name:
                current = by_name[current.dead_letter[0]]
                if current.name in seen:
                    self.error((*start.path, "dead-letter"), "dead-letter queues form a cycle")
                seen.add(current.name)

    def queue(self, value: Any, path: Path) -> QueueSpec:
        item = self.mapping(value, path, {"name", "attributes", "dead-letter"})
        name = self.name(item.get("name"), (*path, "name"), _QUEUE_NAME, "queue name")
        raw = self.mapping(item.get("attributes") or {}, (*path, "attributes"), None)
        attributes = {
            str(key): self.attribute(str(key), val, (*path, "attributes", str(key)))
            for key, val in raw.items()
        }
        dead_letter = None
        if item.get("dead-letter") is not None:
            spot = (*path, "dead-letter")
            letter = self.mapping(item["dead-letter"], spot, {"queue", "max-receive-count"})
            queue = self.name(letter.get("queue"), (*spot, "queue"), _QUEUE_NAME, "queue name")
            count = self.integer(
                letter.get("max-receive-count", 10), (*spot, "max-receive-count"), 1, 1000
            )
            if "RedrivePolicy" in attributes:
                self.error(spot, "give dead-letter or attributes.RedrivePolicy, not both")
            dead_letter = (queue, count or 10)
        return QueueSpec(name, path, attributes, dead_letter)

    def attribute(self, key: str, value: Any, path: Path) -> str:
        if key not in _INTEGER_ATTRIBUTES and key not in _OTHER_ATTRIBUTES:
            known = ", ".join(sorted({*_INTEGER_ATTRIBUTES, *_OTHER_ATTRIBUTES}))
            self.error(path, f"unknown queue attribute {key!r} (expected one of: {known})")
        if key in _INTEGER_ATTRIBUTES:
            low, high = _INTEGER_ATTRIBUTES[key]
            number = value
            if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,12}", value):
                number = int(value)
            self.integer(number, path, low, high)
            return str(number)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict | list):
            return orjson.dumps(value).decode()
        self.error(path, f"expected a string, number or mapping, got {_kind(value)}")

    def bus(self, value: Any, path: Path) -> BusSpec:
        item = self.mapping(value, path, {"name", "description"})
        name = self.name(item.get("name"), (*path, "name"), _BUS_NAME, "bus name")
        description = self.optional_text(item.get("description"), (*path, "description"))
        return BusSpec(name, path, description)

    def rule(self, value: Any, path: Path) -> RuleSpec:
        keys = {"name", "bus", "description", "enabled", "pattern", "targets"}
        item = self.mapping(value, path, keys)
        name = self.name(item.get("name"), (*path, "name"), _RULE_NAME, "rule name")
        bus = self.text(item.get("bus", DEFAULT_BUS), (*path, "bus"))
        if not BUS_ARN_RE.match(bus) and not _BUS_NAME.fullmatch(bus):
            self.error((*path, "bus"), f"{bus!r} is neither a bus name nor a bus ARN")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error((*path, "enabled"), "expected true or false")
        pattern = self.pattern(item.get("pattern"), (*path, "pattern"))
        targets = None
        if "targets" in item:
            targets = tuple(
                self.target(t, (*path, "targets", i))
                for i, t in enumerate(self.items(item, "targets", path))
            )
            self.unique([(t.id, t.path) for t in targets], "target")
            if len(targets) > MAX_TARGETS:
                self.error(
                    (*path, "targets", MAX_TARGETS),
                    f"a rule has at most {MAX_TARGETS} targets, this one declares {len(targets)}",
                )
        description = self.optional_text(item.get("description"), (*path, "description"))
        return RuleSpec(name, path, bus, pattern, description, enabled, targets)

    def pattern(self, value: Any, path: Path) -> str:
        if value is None:
            self.error(path, "a rule needs an event pattern")
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                self.error(path, f"not valid JSON: {exc}")
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping or a JSON object, got {_kind(value)}")
        text = orjson.dumps(value).decode()
        try:
            check_pattern(text)
        except InvalidEventPattern as exc:
            self.error(path, exc.message)
        return text

    def target(self, value: Any, path: Path) -> TargetSpec:
        keys = {
            "id", "arn", "queue", "url", "input", "input-path", "input-transformer",
            "http-parameters", "dead-letter", "max-retries", "max-event-age",
        }  # fmt: skip
        item = self.mapping(value, path, keys)
        target_id = self.name(item.get("id"), (*path, "id"), _TARGET_ID, "target id")
        if sum(key in item for key in ("arn", "queue", "url")) != 1:
            self.error(path, "give exactly one of arn, queue and url")
        arn = self.arn(item["arn"], (*path, "arn")) if "arn" in item else None
        if "url" in item:
            arn = self.url(item["url"], (*path, "url"))
        queue = None
        if "queue" in item:
            queue = self.name(item["queue"], (*path, "queue"), _QUEUE_NAME, "queue name")
        fields: dict[str, Any] = {}
        inputs = [k for k in ("input", "input-path", "input-transformer") if k in item]
        if len(inputs) > 1:
            self.error(path, "give at most one of input, input-path and input-transformer")
        if "input" in item:
            constant = item["input"]
            if isinstance(constant, str):
                try:
                    orjson.loads(constant)
                except orjson.JSONDecodeError as exc:
                    self.error((*path, "input"), f"not valid JSON: {exc}")
            fields["Input"] = (
                constant if isinstance(constant, str) else orjson.dumps(constant).decode()
            )
        if "input-path" in item:
            fields["InputPath"] = self.json_path(item["input-path"], (*path, "input-path"))
        if "input-transformer" in item:
            fields["InputTransformer"] = self.transformer(
                item["input-transformer"], (*path, "input-transformer")
            )
        if item.get("http-parameters") is not None:
            fields["HttpParameters"] = self.http_parameters(
                item["http-parameters"], (*path, "http-parameters")
            )
        dead_letter_queue = None
        if item.get("dead-letter") is not None:
            spot = (*path, "dead-letter")
            letter = self.mapping(item["dead-letter"], spot, {"queue", "arn"})
            if ("queue" in letter) == ("arn" in letter):
                self.error(spot, "give exactly one of queue and arn")
            if "arn" in letter:
                dlq_arn = self.arn(letter["arn"], (*spot, "arn"))
                if queue_name_of_arn(dlq_arn) is None:
                    self.error((*spot, "arn"), f"{dlq_arn!r} is not an SQS queue ARN")
                fields["DeadLetterConfig"] = {"Arn": dlq_arn}
            else:
                dead_letter_queue = self.name(
                    letter["queue"], (*spot, "queue"), _QUEUE_NAME, "queue name"
                )
        retry: dict[str, int] = {}
        retries = self.integer(item.get("max-retries"), (*path, "max-retries"), 0, 185)
        if retries is not None:
            retry["MaximumRetryAttempts"] = retries
        age = self.integer(item.get("max-event-age"), (*path, "max-event-age"), 60, 86400)
        if age is not None:
            retry["MaximumEventAgeInSeconds"] = age
        if retry:
            fields["RetryPolicy"] = retry
        return TargetSpec(target_id, path, arn, queue, fields, dead_letter_queue)

    def json_path(self, value: Any, path: Path) -> str:
        text = self.text(value, path)
        if not text.startswith("$"):
            self.error(path, f"{text!r} is not a JSON path (it starts with $)")
        return text

    def http_parameters(self, value: Any, path: Path) -> dict[str, Any]:
        """``path`` (a list), ``headers`` and ``query`` (mappings) as ``HttpParameters``;
        values are text (a number is written as its digits), or JSON paths."""
        raw = self.mapping(value, path, {"path", "headers", "query"})
        found: dict[str, Any] = {}
        if raw.get("path") is not None:
            values = raw["path"]
            if not isinstance(values, list):
                self.error((*path, "path"), f"expected a list, got {_kind(values)}")
            found["PathParameterValues"] = [
                self.parameter(v, (*path, "path", i)) for i, v in enumerate(values)
            ]
        for key, member in (("headers", "HeaderParameters"), ("query", "QueryStringParameters")):
            if raw.get(key) is not None:
                mapping = self.mapping(raw[key], (*path, key), None)
                found[member] = {
                    str(k): self.parameter(v, (*path, key, str(k))) for k, v in mapping.items()
                }
        return found

    def parameter(self, value: Any, path: Path) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return self.text(value, path)

    def transformer(self, value: Any, path: Path) -> dict[str, Any]:
        raw = self.mapping(value, path, {"paths", "template"})
        template = self.text(raw.get("template"), (*path, "template"))
        transformer: dict[str, Any] = {"InputTemplate": template}
        if raw.get("paths") is not None:
            paths = self.mapping(raw["paths"], (*path, "paths"), None)
            transformer["InputPathsMap"] = {
                str(k): self.json_path(v, (*path, "paths", str(k))) for k, v in paths.items()
            }
        return transformer


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _allowed(rule: re.Pattern[str]) -> str:
    """A readable form of a name rule: ``[A-Za-z0-9_\\-]{1,80}`` → ``1 to 80 of A-Za-z0-9_-``."""
    match = re.fullmatch(r"\[(.*)\]\{(\d+),(\d+)\}", rule.pattern)
    if match is None:
        return rule.pattern
    chars = match.group(1).replace("\\", "")
    return f"1 to {match.group(3)} of {chars}"
