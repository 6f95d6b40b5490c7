"""Target input: what a target receives for an event (Input, InputPath, InputTransformer).

A PutTargets target carries at most one input setting. :func:`validate_target_input` checks
it with AWS's messages; :func:`compile_input` turns it into an :class:`InputRenderer`, built
once per target and reused for every event, whose ``render`` returns the exact bytes the
target receives. With no setting the envelope is delivered as serialised; ``Input`` is
constant text; ``InputPath`` selects part of the event (a string keeps its JSON quotes).

``InputTransformer`` templates come in two kinds, decided by the template's first
non-blank character. A template opening with ``{`` or ``[`` is a *JSON template*: a
placeholder outside quotes becomes the JSON encoding of its value (a missing value becomes
``""``), a placeholder inside a quoted string is spliced in as raw text, and output that is
not valid JSON (an object or array spliced into a string, a value with a quote) is never
delivered. Any other template (typically a quoted string, possibly several lines of them)
is a *text template*: every value goes in as raw text, objects and arrays lose their quotes
(``{k:v}``, ``[A,B]``), a missing value is empty, and the result is not checked.

The JSONPath subset (``$``, ``.name``, ``[0]``, ``['key']``) is :class:`JsonPath`.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from eventyard.errors import DeliveryError, ValidationError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_INPUT_LENGTH",
    "MAX_PATHS",
    "MAX_PATH_LENGTH",
    "MAX_QUEUE_INPUT_BYTES",
    "MAX_TEMPLATE_LENGTH",
    "MISSING",
    "PREDEFINED_VARIABLES",
    "InputRenderer",
    "JsonPath",
    "compile_input",
    "parse_json_path",
    "validate_target_input",
]

MAX_INPUT_LENGTH: Final = 8192
MAX_TEMPLATE_LENGTH: Final = 8192
MAX_PATH_LENGTH: Final = 256
MAX_PATHS: Final = 100
#: the most bytes a rendered input may have: the PutEvents limit (targets other than
#: queues, whose limit is SQS's 256 KiB: :data:`MAX_QUEUE_INPUT_BYTES`)
MAX_INPUT_BYTES: Final = 1024 * 1024
MAX_QUEUE_INPUT_BYTES: Final = 256 * 1024
_MAX_KEY_LENGTH: Final = 256

_RULE_ARN: Final = "aws.events.rule-arn"
_RULE_NAME: Final = "aws.events.rule-name"
_INGESTION_TIME: Final = "aws.events.event.ingestion-time"
_EVENT: Final = "aws.events.event"
_EVENT_JSON: Final = "aws.events.event.json"
PREDEFINED_VARIABLES: Final = frozenset(
    {_RULE_ARN, _RULE_NAME, _INGESTION_TIME, _EVENT, _EVENT_JSON}
)

_KEY_PATTERN_TEXT: Final = r"[A-Za-z0-9\_\-]+"
_KEY_RE: Final = re.compile(r"[A-Za-z0-9_\-]+")
# Names of map keys plus the dotted predefined names; any other ``<...>`` is literal text.
_PLACEHOLDER_RE: Final = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_INDEX_RE: Final = re.compile(r"-?[0-9]+")


class _Missing:
    """The type of :data:`MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""What :meth:`JsonPath.find` returns when the path selects nothing."""


# --------------------------------------------------------------------------- JSONPath


@dataclass(slots=True, frozen=True)
class JsonPath:
    """A parsed JSONPath of the subset EventBridge accepts in InputPath and InputPathsMap.

    Attributes:
        text: the path as written, e.g. ``$.detail['user-id']``.
        steps: object keys (``str``) and array indexes (``int``, negative counts from the end).
    """

    text: str
    steps: tuple[str | int, ...]

    def find(self, document: Any) -> Any:
        """The value the path selects in ``document``, or :data:`MISSING`."""
        current = document
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(current, dict):
                    return MISSING
                current = current.get(step, MISSING)
                if current is MISSING:
                    return MISSING
            else:
                if not isinstance(current, list):
                    return MISSING
                if not -len(current) <= step < len(current):
                    return MISSING
                current = current[step]
        return current


def parse_json_path(text: str) -> JsonPath:
    """Parse ``$``, ``$.a.b``, ``$.list[0]``, ``$['a-b']`` and their combinations.

    Args:
        text: the path.

    Returns:
        The parsed path.

    Raises:
        ValueError: the text is not a path of the supported subset (wildcards, filters,
            slices and recursive descent are not supported); the message says why.
    """
    if not text.startswith("$"):
        raise ValueError("a JSON path must start with '$'")
    steps: list[str | int] = []
    i, n = 1, len(text)
    while i < n:
        char = text[i]
        if char == ".":
            j = i + 1
            while j < n and text[j] not in ".[]":
                j += 1
            name = text[i + 1 : j]
            if not name:
                raise ValueError(f"empty property name at offset {i + 1}")
            if name == "*":
                raise ValueError("wildcards are not supported")
            steps.append(name)
            i = j
        elif char == "[":
            i = _parse_bracket(text, i + 1, steps)
        else:
            raise ValueError(f"unexpected character {char!r} at offset {i}")
    return JsonPath(text, tuple(steps))


def _parse_bracket(text: str, i: int, steps: list[str | int]) -> int:
    """Parse what follows ``[``; append the step and return the offset after ``]``."""
    n = len(text)
    if i < n and text[i] in "'\"":
        quote = text[i]
        chars: list[str] = []
        i += 1
        while i < n and text[i] != quote:
            if text[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(text[i])
            i += 1
        if i + 1 >= n or text[i + 1] != "]":
            raise ValueError("unterminated quoted key")
        steps.append("".join(chars))
        return i + 2
    end = text.find("]", i)
    if end < 0:
        raise ValueError("missing ']'")
    inner = text[i:end].strip()
    if not _INDEX_RE.fullmatch(inner):
        raise ValueError(f"unsupported bracket expression [{inner}]")
    steps.append(int(inner))
    return end + 1


# --------------------------------------------------------------------------- validation


def _java_map(mapping: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in mapping.items()) + "}"


def _constraint_error(violations: list[str]) -> ValidationError:
    count = len(violations)
    plural = "s" if count > 1 else ""
    return ValidationError(f"{count} validation error{plural} detected: " + "; ".join(violations))


def _length_violation(value: str, where: str, low: int, high: int) -> str | None:
    if len(value) > high:
        constraint = f"Member must have length less than or equal to {high}"
    elif len(value) < low:
        constraint = f"Member must have length greater than or equal to {low}"
    else:
        return None
    return f"Value '{value}' at '{where}' failed to satisfy constraint: {constraint}"


def _require_str(value: Any, what: str, target_id: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} for target {target_id} must be a string.")
    return value


def _paths_map_violations(paths: Mapping[str, Any], where: str) -> list[str]:
    violations: list[str] = []
    if len(paths) > MAX_PATHS:
        violations.append(
            f"Value '{_java_map(paths)}' at '{where}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_PATHS}"
        )
    key_problems: list[str] = []
    value_problems: list[str] = []
    for key, path in paths.items():
        if len(key) > _MAX_KEY_LENGTH:
            key_problems.append(f"Member must have length less than or equal to {_MAX_KEY_LENGTH}")
        elif not key:
            key_problems.append("Member must have length greater than or equal to 1")
        elif not _KEY_RE.fullmatch(key):
            key_problems.append(
                f"Member must satisfy regular expression pattern: {_KEY_PATTERN_TEXT}"
            )
        if isinstance(path, str) and len(path) > MAX_PATH_LENGTH:
            value_problems.append(
                f"Member must have length less than or equal to {MAX_PATH_LENGTH}"
            )
    for label, problems in (("Map keys", key_problems), ("Map value", value_problems)):
        if problems:
            unique = ", ".join(dict.fromkeys(problems))
            violations.append(
                f"Value '{_java_map(paths)}' at '{where}' failed to satisfy constraint: "
                f"{label} must satisfy constraint: [{unique}]"
            )
    return violations


def validate_target_input(target: Mapping[str, Any], *, index: int = 1) -> None:
    """Check the input settings of one PutTargets target the way AWS does.

    Model constraints come first, all reported together in AWS's ``N validation error(s)
    detected: …`` form; then the target-level rules, each with AWS's text.

    Args:
        target: the target as sent (``Id``, ``Arn``, ``Input``, ``InputPath``,
            ``InputTransformer{InputPathsMap, InputTemplate}``, other members ignored).
        index: the 1-based position of the target in the request, used in the
            ``targets.<index>.member…`` location of constraint messages.

    Raises:
        ValidationError: a setting is invalid; ``message`` is what AWS answers, e.g.
            ``Only one of Input, InputPath, or InputTransformer must be provided for
            target t1.`` or ``InputTemplate for target t1 contains invalid placeholder x.``
    """
    target_id = target.get("Id")
    where = f"targets.{index}.member"
    input_text = target.get("Input")
    input_path = target.get("InputPath")
    transformer = target.get("InputTransformer")

    violations: list[str] = []
    if input_text is not None:
        input_text = _require_str(input_text, "Input", target_id)
        problem = _length_violation(input_text, f"{where}.input", 0, MAX_INPUT_LENGTH)
        if problem:
            violations.append(problem)
    if input_path is not None:
        input_path = _require_str(input_path, "InputPath", target_id)
        problem = _length_violation(input_path, f"{where}.inputPath", 0, MAX_PATH_LENGTH)
        if problem:
            violations.append(problem)
    template: str | None = None
    paths: Mapping[str, Any] = {}
    if transformer is not None:
        if not isinstance(transformer, Mapping):
            raise ValidationError(f"InputTransformer for target {target_id} must be an object.")
        raw_template = transformer.get("InputTemplate")
        if raw_template is None:
            violations.append(
                f"Value null at '{where}.inputTransformer.inputTemplate' failed to satisfy "
                "constraint: Member must not be null"
            )
        else:
            template = _require_str(raw_template, "InputTemplate", target_id)
            problem = _length_violation(
                template, f"{where}.inputTransformer.inputTemplate", 1, MAX_TEMPLATE_LENGTH
            )
            if problem:
                violations.append(problem)
        raw_paths = transformer.get("InputPathsMap")
        if raw_paths is not None:
            if not isinstance(raw_paths, Mapping):
                raise ValidationError(f"InputPathsMap for target {target_id} must be an object.")
            paths = raw_paths
            for key, value in paths.items():
                _require_str(value, f"InputPathsMap value {key}", target_id)
            violations.extend(
                _paths_map_violations(paths, f"{where}.inputTransformer.inputPathsMap")
            )
    if violations:
        raise _constraint_error(violations)

    if sum(setting is not None for setting in (input_text, input_path, transformer)) > 1:
        raise ValidationError(
            "Only one of Input, InputPath, or InputTransformer must be provided "
            f"for target {target_id}."
        )
    if input_text is not None:
        try:
            orjson.loads(input_text)
        except orjson.JSONDecodeError:
            raise ValidationError(
                f"Input for target {target_id} is not a valid JSON text."
            ) from None
    if input_path is not None:
        try:
            parse_json_path(input_path)
        except ValueError as exc:
            raise ValidationError(
                f"InputPath for target {target_id} is not a valid JSON path: {exc}."
            ) from None
    for key, path in paths.items():
        try:
            parse_json_path(path)
        except ValueError as exc:
            raise ValidationError(
                f"InputPathsMap for target {target_id} contains invalid JSON path {path} "
                f"for key {key}: {exc}."
            ) from None
    if template is not None:
        for match in _PLACEHOLDER_RE.finditer(template):
            name = match.group(1)
            if name not in paths and name not in PREDEFINED_VARIABLES:
                raise ValidationError(
                    f"InputTemplate for target {target_id} contains invalid placeholder {name}."
                )


# --------------------------------------------------------------------------- renderers


class InputRenderer(ABC):
    """Renders the input one target receives; compiled once, reused for every event."""

    __slots__ = ()

    @abstractmethod
    def render(
        self,
        event: dict[str, Any],
        event_json: bytes,
        *,
        rule_arn: str,
        rule_name: str,
        ingestion_time: str,
        limit: int = MAX_INPUT_BYTES,
    ) -> bytes:
        """The exact bytes the target receives for ``event``.

        Args:
            event: the envelope (``version, id, detail-type, … detail``).
            event_json: the envelope as serialised; whole-event input is these bytes.
            rule_arn: the ARN of the matching rule (``<aws.events.rule-arn>``).
            rule_name: its name (``<aws.events.rule-name>``).
            ingestion_time: when EventBridge received the event, RFC 3339
                (``<aws.events.event.ingestion-time>``).
            limit: the most bytes the target takes (SQS's 256 KiB for a queue, the
                PutEvents 1 MiB otherwise). A rendering that would be longer is refused
                before its bytes are joined, so a template repeating a large value cannot
                make a huge message first.

        Raises:
            DeliveryError: (``retryable=False``) the input cannot be built:
                ``INVALID_INPUT`` when, e.g., a JSON template rendered invalid JSON,
                ``INPUT_TOO_LARGE`` past ``limit``; nothing is delivered to this target.
        """


class _WholeEvent(InputRenderer):
    __slots__ = ()

    def render(
        self,
        event: dict[str, Any],
        event_json: bytes,
        *,
        rule_arn: str,
        rule_name: str,
        ingestion_time: str,
        limit: int = MAX_INPUT_BYTES,
    ) -> bytes:
        return _within(event_json, limit, "the event")


class _Constant(InputRenderer):
    __slots__ = ("_body",)

    def __init__(self, text: str) -> None:
        self._body = text.encode()

    def render(
        self,
        event: dict[str, Any],
        event_json: bytes,
        *,
        rule_arn: str,
        rule_name: str,
        ingestion_time: str,
        limit: int = MAX_INPUT_BYTES,
    ) -> bytes:
        return _within(self._body, limit, "Input")


class _Selected(InputRenderer):
    __slots__ = ("_path", "_target_id")

    def __init__(self, path: JsonPath, target_id: str) -> None:
        self._path = path
        self._target_id = target_id

    def render(
        self,
        event: dict[str, Any],
        event_json: bytes,
        *,
        rule_arn: str,
        rule_name: str,
        ingestion_time: str,
        limit: int = MAX_INPUT_BYTES,
    ) -> bytes:
        value = self._path.find(event)
        if value is MISSING:
            raise _invalid_input(
                f"InputPath {self._path.text} of target {self._target_id} selects nothing "
                "in the event"
            )
        return _within(_json_bytes(value, event, event_json), limit, f"InputPath {self._path.text}")


def _invalid_input(message: str) -> DeliveryError:
    return DeliveryError(message, retryable=False, error_code="INVALID_INPUT")


def _too_large(what: str, size: int, limit: int) -> DeliveryError:
    return DeliveryError(
        f"{what} renders {size} bytes, over this target's limit of {limit} bytes; "
        "the event was not delivered to it",
        retryable=False,
        error_code="INPUT_TOO_LARGE",
    )


def _within(body: bytes, limit: int, what: str) -> bytes:
    if len(body) > limit:
        raise _too_large(what, len(body), limit)
    return body


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers; the stdlib encoder has no such limit.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _json_bytes(value: Any, event: dict[str, Any], event_json: bytes) -> bytes:
    """The JSON encoding of a value; the envelope itself keeps its serialised bytes."""
    if value is event:
        return event_json
    return _dumps(value)


def _text_bytes(value: Any) -> bytes:
    """A value as raw text: strings unquoted, containers with every quote removed."""
    if type(value) is str:
        return value.encode()
    if value is MISSING:
        return b""
    if isinstance(value, dict | list):
        return _dumps(value).replace(b'"', b"")
    return _dumps(value)


# A placeholder's mode: raw text (text template), JSON encoding (JSON template, outside
# quotes) or spliced into a quoted string of a JSON template.
_TEXT: Final = 0
_JSON: Final = 1
_SPLICE: Final = 2


def _event_variable(event: dict[str, Any], ingestion_time: str) -> dict[str, Any]:
    """``<aws.events.event>``: the envelope without ``detail``, in the order AWS shows it."""
    shown: dict[str, Any] = {}
    for key, name in (
        ("id", "id"),
        ("account", "account"),
        ("detail-type", "detailType"),
        ("time", "time"),
        ("source", "source"),
        ("region", "region"),
        ("resources", "resources"),
        ("version", "version"),
    ):
        if key == "time":
            shown[name] = ingestion_time
        elif key in event:
            shown[name] = event[key]
    return shown


def _quoted_flags(template: str) -> list[bool]:
    """For each offset of ``template``, whether it lies inside a JSON string literal."""
    flags: list[bool] = []
    in_string = escaped = False
    for char in template:
        flags.append(in_string)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
    return flags


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class _Template(InputRenderer):
    """A compiled InputTransformer: literal byte runs between placeholder renditions.

    ``_sources`` holds one entry per distinct placeholder (a :class:`JsonPath` or a
    predefined name), ``_renditions`` one ``(source, mode)`` pair per distinct way a
    placeholder is written, and the output is ``literals[0] + r0 + literals[1] + r1 …``.
    """

    __slots__ = ("_check_always", "_is_json", "_literals", "_renditions", "_sources", "_target_id")

    def __init__(self, template: str, paths: Mapping[str, str], target_id: str) -> None:
        self._target_id = target_id
        self._is_json = template.lstrip()[:1] in ("{", "[")
        quoted = _quoted_flags(template) if self._is_json else []
        sources: list[JsonPath | str] = []
        source_of: dict[str, int] = {}
        renditions: list[tuple[int, int]] = []
        rendition_of: dict[tuple[int, int], int] = {}
        literals: list[bytes] = []
        order: list[int] = []
        start = 0
        for match in _PLACEHOLDER_RE.finditer(template):
            name = match.group(1)
            if name not in source_of:
                source_of[name] = len(sources)
                sources.append(parse_json_path(paths[name]) if name in paths else name)
            if not self._is_json:
                mode = _TEXT
            else:
                mode = _SPLICE if quoted[match.start()] else _JSON
            key = (source_of[name], mode)
            if key not in rendition_of:
                rendition_of[key] = len(renditions)
                renditions.append(key)
            literals.append(template[start : match.start()].encode())
            order.append(rendition_of[key])
            start = match.end()
        literals.append(template[start:].encode())
        self._sources = tuple(sources)
        self._renditions = tuple(renditions)
        self._literals = tuple(zip(literals, [*order, -1], strict=True))
        # A JSON template whose skeleton stays valid JSON for any value in any unquoted
        # slot and any plain text in any quoted slot only needs checking when a spliced
        # value could break a string; otherwise every rendering is checked.
        self._check_always = self._is_json and not all(
            _is_json(self._skeleton(filler)) for filler in ("0", '""')
        )

    def _skeleton(self, filler: str) -> str:
        parts: list[str] = []
        for literal, rendition in self._literals:
            parts.append(literal.decode())
            if rendition >= 0:
                parts.append(filler if self._renditions[rendition][1] == _JSON else "a")
        return "".join(parts)

    def render(
        self,
        event: dict[str, Any],
        event_json: bytes,
        *,
        rule_arn: str,
        rule_name: str,
        ingestion_time: str,
        limit: int = MAX_INPUT_BYTES,
    ) -> bytes:
        values: list[Any] = []
        for source in self._sources:
            if type(source) is JsonPath:
                values.append(source.find(event))
            elif source == _RULE_ARN:
                values.append(rule_arn)
            elif source == _RULE_NAME:
                values.append(rule_name)
            elif source == _INGESTION_TIME:
                values.append(ingestion_time)
            elif source == _EVENT:
                values.append(_event_variable(event, ingestion_time))
            else:
                values.append(event)
        check = self._check_always
        rendered: list[bytes] = []
        partial = 0
        for slot, mode in self._renditions:
            value = values[slot]
            if mode == _TEXT:
                rendered.append(_text_bytes(value))
            elif mode == _JSON:
                rendered.append(
                    b'""' if value is MISSING else _json_bytes(value, event, event_json)
                )
            elif type(value) is str:
                if '"' in value or "\\" in value or not value.isprintable():
                    check = True
                rendered.append(value.encode())
            elif isinstance(value, dict | list):
                # Spliced as JSON, as AWS does: the quotes it brings break the string.
                check = True
                rendered.append(_json_bytes(value, event, event_json))
            else:
                rendered.append(_text_bytes(value))
            # every rendition appears at least once in the output: stop as soon as the
            # distinct values alone pass the limit
            partial += len(rendered[-1])
            if partial > limit:
                raise _too_large(f"InputTemplate of target {self._target_id}", partial, limit)
        size = 0
        for literal, rendition in self._literals:
            size += len(literal)
            if rendition >= 0:
                size += len(rendered[rendition])
        if size > limit:
            raise _too_large(f"InputTemplate of target {self._target_id}", size, limit)
        out: list[bytes] = []
        for literal, rendition in self._literals:
            out.append(literal)
            if rendition >= 0:
                out.append(rendered[rendition])
        body = b"".join(out)
        if check:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _invalid_input(
                    f"InputTemplate of target {self._target_id} rendered invalid JSON; "
                    "the event was not delivered to it"
                ) from None
        return body


_WHOLE_EVENT: Final = _WholeEvent()


def compile_input(target: Mapping[str, Any], *, index: int = 1) -> InputRenderer:
    """Validate a target's input setting and compile it into a reusable renderer.

    Args:
        target: the PutTargets target (see :func:`validate_target_input`).
        index: the target's 1-based position in the request, for constraint messages.

    Returns:
        The renderer; whole-event targets share one stateless instance.

    Raises:
        ValidationError: the setting is invalid (see :func:`validate_target_input`).
    """
    validate_target_input(target, index=index)
    target_id = str(target.get("Id"))
    if target.get("Input") is not None:
        return _Constant(target["Input"])
    if target.get("InputPath") is not None:
        return _Selected(parse_json_path(target["InputPath"]), target_id)
    transformer = target.get("InputTransformer")
    if transformer is not None:
        return _Template(
            transformer["InputTemplate"], transformer.get("InputPathsMap") or {}, target_id
        )
    return _WHOLE_EVENT
