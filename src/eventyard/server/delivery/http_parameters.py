"""A target's ``HttpParameters``: path, header and query parameters of its HTTP request.

EventBridge's ``HttpParameters`` member of a target (for API Gateway and API
destinations in AWS; in eventyard for webhook targets and API destinations) has three
parts, all optional:

- ``PathParameterValues``: values for the ``*`` wildcards of the endpoint's path, in
  order. Each value fills one path segment, percent-encoded (``a/b`` becomes ``a%2Fb``);
  the number of values must be the number of wildcards.
- ``HeaderParameters``: headers added to the request.
- ``QueryStringParameters``: query parameters appended to the URL (after any query the
  URL already has), URL-encoded.

Every value (never a header or query *name*) is either static text or a JSON path such
as ``$.detail.state``: the whole value is the path, no interpolation, and it reads the
**original** event, not the input a transformer rendered for the target. A string is
used as it is; a number, boolean, null, object or array as its compact JSON text. A path
that selects nothing leaves its header or query parameter out; a path parameter cannot
be left out, so its delivery fails (not retried, dead-lettered when the target has a
DLQ), as does a header value with a control character or a non-ASCII one.

Use: :meth:`HttpParameters.from_doc` compiles the member once (when the catalog
changes), :meth:`HttpParameters.apply` (or :func:`apply_http_parameters`) computes one
request's URL and headers from the event. The caller adds its own headers after these:
an API destination's connection parameters win on conflict, as AWS documents.
:func:`http_parameters_violations` and :func:`check_http_parameters` check a PutTargets
member with AWS's model constraints and eventyard's own rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson

from eventyard.errors import DeliveryError, ValidationError
from eventyard.server.transform import MISSING, JsonPath, parse_json_path

__all__ = [
    "HEADER_KEY_PATTERN",
    "HEADER_VALUE_PATTERN",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_LENGTH",
    "PATH_VALUE_PATTERN",
    "QUERY_KEY_PATTERN",
    "QUERY_VALUE_PATTERN",
    "RESERVED_HEADERS",
    "HttpParameters",
    "apply_http_parameters",
    "check_http_parameters",
    "http_parameters_violations",
]

#: AWS's model constraints (API reference, ``HttpParameters``)
MAX_KEY_LENGTH: Final = 512
MAX_VALUE_LENGTH: Final = 512
HEADER_KEY_PATTERN: Final = r"^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$"
HEADER_VALUE_PATTERN: Final = r"^[ \t]*[\x20-\x7E]+([ \t]+[\x20-\x7E]+)*[ \t]*$"
QUERY_KEY_PATTERN: Final = r"[^\x00-\x1F\x7F]+"
QUERY_VALUE_PATTERN: Final = r"[^\x00-\x09\x0B\x0C\x0E-\x1F\x7F]+"
PATH_VALUE_PATTERN: Final = r"^(?!\s*$).+"
#: headers the delivery itself sets (lower case): HeaderParameters may not name them
RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-eventyard-event-id",
        "x-eventyard-attempt",
    }
)

# The patterns as Python matches them. AWS's header-key class ``+-.`` is a range (``+``
# to ``.``: ``+ , - .``), kept as written.
_HEADER_KEY_RE: Final = re.compile(r"[!#$%&'*+-.^_`|~0-9a-zA-Z]+")
_HEADER_VALUE_RE: Final = re.compile(r"[ \t]*[\x20-\x7E]+([ \t]+[\x20-\x7E]+)*[ \t]*")
_QUERY_KEY_RE: Final = re.compile(r"[^\x00-\x1F\x7F]+")
_QUERY_VALUE_RE: Final = re.compile(r"[^\x00-\x09\x0B\x0C\x0E-\x1F\x7F]+")
_PATH_VALUE_RE: Final = re.compile(r"(?!\s*$).+", re.DOTALL)
# what a header value resolved from the event may hold: visible ASCII, space and tab
_SENDABLE_HEADER_RE: Final = re.compile(r"[\x20-\x7E\t]*")
_MEMBERS: Final = ("PathParameterValues", "HeaderParameters", "QueryStringParameters")

# A value: static text, or a JSON path read from the original event.
_Value = str | JsonPath


def _is_path(value: str) -> bool:
    return value == "$" or value.startswith(("$.", "$["))


def _compile_value(value: str) -> _Value:
    return parse_json_path(value) if _is_path(value) else value


@dataclass(slots=True, frozen=True)
class HttpParameters:
    """A target's ``HttpParameters``, compiled (JSON paths parsed once).

    Attributes:
        path_values: ``PathParameterValues``, in order; None when the member is absent
            (``*`` in the URL is then left as it is).
        headers: ``HeaderParameters`` as ``(name, value)`` pairs.
        query: ``QueryStringParameters`` as ``(name, value)`` pairs.
    """

    path_values: tuple[_Value, ...] | None = None
    headers: tuple[tuple[str, _Value], ...] = ()
    query: tuple[tuple[str, _Value], ...] = ()

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> HttpParameters | None:
        """Compile an ``HttpParameters`` document (as PutTargets stored it).

        Returns:
            None when ``doc`` is None or sets nothing.

        Raises:
            ValueError: a value that looks like a JSON path is not one of the subset
                supported, or a member has the wrong type (PutTargets refuses both).
        """
        if not doc:
            return None
        raw_path = doc.get("PathParameterValues")
        raw_headers = doc.get("HeaderParameters") or {}
        raw_query = doc.get("QueryStringParameters") or {}
        if raw_path is not None and not isinstance(raw_path, list):
            raise ValueError("PathParameterValues must be a list of strings")
        if not isinstance(raw_headers, dict) or not isinstance(raw_query, dict):
            raise ValueError("HeaderParameters and QueryStringParameters must be maps")
        for value in [*(raw_path or ()), *raw_headers.values(), *raw_query.values()]:
            if not isinstance(value, str):
                raise ValueError("every HttpParameters value must be a string")
        if raw_path is None and not raw_headers and not raw_query:
            return None
        return cls(
            path_values=None if raw_path is None else tuple(map(_compile_value, raw_path)),
            headers=tuple((str(k), _compile_value(v)) for k, v in raw_headers.items()),
            query=tuple((str(k), _compile_value(v)) for k, v in raw_query.items()),
        )

    @property
    def reads_event(self) -> bool:
        """Whether a value is a JSON path (the event must then be parsed)."""
        values = [*(self.path_values or ()), *(v for _, v in self.headers)]
        values.extend(v for _, v in self.query)
        return any(isinstance(v, JsonPath) for v in values)

    def apply(
        self, url: str, event: bytes | Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, str]]:
        """The request's URL and the headers to add, for one event.

        Args:
            url: the endpoint, with its ``*`` path wildcards.
            event: the original event (its JSON bytes, or parsed); needed only when a
                value is a JSON path.

        Raises:
            DeliveryError: not retryable (``error_code`` ``INVALID_PARAMETER``): the
                number of path values is not the number of wildcards, a path parameter's
                JSON path selects nothing, a header value is not sendable, or the event
                is not a JSON object.
        """
        document: Any = None
        if self.reads_event:
            document = _parse_event(event)
        if self.path_values is not None:
            url = _fill_wildcards(url, [_path_value(v, document) for v in self.path_values])
        headers: dict[str, str] = {}
        for name, value in self.headers:
            text = _resolve(value, document)
            if text is None:
                continue
            if not _SENDABLE_HEADER_RE.fullmatch(text):
                raise _invalid(
                    f"the value of header {name} taken from the event has a character a "
                    "header cannot carry (a control or non-ASCII character)"
                )
            headers[name] = text
        pairs = [
            (name, text)
            for name, value in self.query
            if (text := _resolve(value, document)) is not None
        ]
        if pairs:
            url = _add_query(url, pairs)
        return url, headers


def apply_http_parameters(
    params: HttpParameters | Mapping[str, Any] | None,
    url: str,
    event_json: bytes | Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, str]]:
    """``params`` applied to ``url`` for one event: ``(url, headers to add)``.

    ``params`` may be compiled (:meth:`HttpParameters.from_doc`, better when it is
    applied to many events) or the ``HttpParameters`` document itself; None changes
    nothing.

    Raises:
        DeliveryError: as :meth:`HttpParameters.apply`; also when the document does not
            compile.
    """
    if params is not None and not isinstance(params, HttpParameters):
        try:
            params = HttpParameters.from_doc(params)
        except ValueError as exc:
            raise _invalid(f"HttpParameters are not valid: {exc}") from None
    if params is None:
        return url, {}
    return params.apply(url, event_json)


# --------------------------------------------------------------------------- applying


def _invalid(message: str) -> DeliveryError:
    return DeliveryError(message, retryable=False, error_code="INVALID_PARAMETER")


def _parse_event(event: bytes | Mapping[str, Any] | None) -> Any:
    if isinstance(event, Mapping):
        return event
    try:
        document = orjson.loads(event or b"")
    except orjson.JSONDecodeError:
        raise _invalid("the event is not JSON: HttpParameters paths cannot read it") from None
    if not isinstance(document, dict):
        raise _invalid("the event is not a JSON object: HttpParameters paths cannot read it")
    return document


def _resolve(value: _Value, document: Any) -> str | None:
    """The text of a value, None when its JSON path selects nothing."""
    if isinstance(value, str):
        return value
    found = value.find(document)
    if found is MISSING:
        return None
    if isinstance(found, str):
        return found
    return orjson.dumps(found).decode()


def _path_value(value: _Value, document: Any) -> str:
    text = _resolve(value, document)
    if text is None:
        assert isinstance(value, JsonPath)
        raise _invalid(f"the path parameter {value.text} selects nothing in the event")
    return text


def _fill_wildcards(url: str, values: list[str]) -> str:
    parts = urlsplit(url)
    pieces = parts.path.split("*")
    wildcards = len(pieces) - 1
    if wildcards != len(values):
        raise _invalid(
            f"the endpoint has {wildcards} path wildcard(s) (*) but HttpParameters has "
            f"{len(values)} PathParameterValues"
        )
    path = pieces[0]
    for value, rest in zip(values, pieces[1:], strict=True):
        path += quote(value, safe="") + rest
    return urlunsplit(parts._replace(path=path))


def _add_query(url: str, pairs: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    added = urlencode(pairs, quote_via=quote)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


# --------------------------------------------------------------------------- validation


def _java_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(v) for v in value) + "]"
    return str(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _wrong_type(label: str, value: Any, expected: str) -> ValidationError:
    return ValidationError(
        f"Invalid type for parameter {label}: expected {expected}, got {_json_type(value)}."
    )


def _text_problems(value: str, high: int, pattern: re.Pattern[str], pattern_text: str) -> list[str]:
    problems = []
    if len(value) > high:
        problems.append(f"Member must have length less than or equal to {high}")
    if not pattern.fullmatch(value):
        problems.append(f"Member must satisfy regular expression pattern: {pattern_text}")
    return problems


def _map_violations(
    value: Mapping[str, Any],
    where: str,
    key_rule: tuple[re.Pattern[str], str],
    value_rule: tuple[re.Pattern[str], str],
) -> list[str]:
    key_problems: list[str] = []
    value_problems: list[str] = []
    for key, item in value.items():
        key_problems += _text_problems(key, MAX_KEY_LENGTH, *key_rule)
        value_problems += _text_problems(item, MAX_VALUE_LENGTH, *value_rule)
    found = []
    for label, problems in (("Map keys", key_problems), ("Map value", value_problems)):
        if problems:
            found.append(
                f"Value '{_java_text(value)}' at '{where}' failed to satisfy constraint: "
                f"{label} must satisfy constraint: [{', '.join(dict.fromkeys(problems))}]"
            )
    return found


def http_parameters_violations(doc: Any, where: str, label: str) -> list[str]:
    """The model-constraint violations of one target's ``HttpParameters``, AWS's texts.

    Args:
        doc: the member as sent.
        where: its location in AWS's messages, e.g. ``targets.1.member.httpParameters``.
        label: its name in type errors, e.g. ``Targets[0].HttpParameters``.

    Returns:
        The violations, to be reported with the request's others
        (``N validation errors detected: ...``).

    Raises:
        ValidationError: a member has the wrong JSON type (reported at once, as boto3's
            and AWS's type errors are).
    """
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise _wrong_type(label, doc, "an object")
    found: list[str] = []
    values = doc.get("PathParameterValues")
    if values is not None:
        if not isinstance(values, list):
            raise _wrong_type(f"{label}.PathParameterValues", values, "a list")
        for index, item in enumerate(values):
            if not isinstance(item, str):
                raise _wrong_type(f"{label}.PathParameterValues[{index}]", item, "a string")
        if any(not _PATH_VALUE_RE.fullmatch(item) for item in values):
            found.append(
                f"Value '{_java_text(values)}' at '{where}.pathParameterValues' failed to "
                "satisfy constraint: Member must satisfy constraint: [Member must satisfy "
                f"regular expression pattern: {PATH_VALUE_PATTERN}]"
            )
    for member, path, key_rule, value_rule in (
        (
            "HeaderParameters",
            "headerParameters",
            (_HEADER_KEY_RE, HEADER_KEY_PATTERN),
            (_HEADER_VALUE_RE, HEADER_VALUE_PATTERN),
        ),
        (
            "QueryStringParameters",
            "queryStringParameters",
            (_QUERY_KEY_RE, QUERY_KEY_PATTERN),
            (_QUERY_VALUE_RE, QUERY_VALUE_PATTERN),
        ),
    ):
        mapping = doc.get(member)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise _wrong_type(f"{label}.{member}", mapping, "an object")
        for key, item in mapping.items():
            if not isinstance(item, str):
                raise _wrong_type(f"{label}.{member}.{key}", item, "a string")
        found += _map_violations(mapping, f"{where}.{path}", key_rule, value_rule)
    return found


def check_http_parameters(doc: Mapping[str, Any], *, target_id: str, arn: str) -> None:
    """eventyard's rules for a target's ``HttpParameters`` (after the model constraints).

    - only a target that makes an HTTP request may have them (not a queue or a bus);
    - ``HeaderParameters`` may not set a header the delivery sets itself
      (:data:`RESERVED_HEADERS`);
    - a value written as a JSON path must be one of the supported subset;
    - for a webhook URL, ``PathParameterValues`` must have one value per ``*`` of the
      URL's path.

    Raises:
        ValidationError: a rule is broken; the message names the target and the value.
    """
    if arn.startswith("arn:") and (":sqs:" in arn or ":event-bus/" in arn):
        raise ValidationError(
            f"Target {target_id}: HttpParameters apply to HTTP targets (a webhook URL or "
            f"an API destination), not to {arn}."
        )
    for name in doc.get("HeaderParameters") or {}:
        if name.lower() in RESERVED_HEADERS:
            raise ValidationError(
                f"Target {target_id}: HttpParameters.HeaderParameters may not set {name}: "
                "eventyard sets it on every delivery."
            )
    for member in _MEMBERS:
        raw = doc.get(member) or ()
        values = list(raw.values()) if isinstance(raw, dict) else list(raw)
        for value in values:
            if isinstance(value, str) and _is_path(value):
                try:
                    parse_json_path(value)
                except ValueError as exc:
                    raise ValidationError(
                        f"Target {target_id}: HttpParameters.{member} value {value} is not a "
                        f"valid JSON path: {exc}."
                    ) from None
    path_values = doc.get("PathParameterValues")
    if path_values is not None and arn.startswith(("http://", "https://")):
        wildcards = urlsplit(arn).path.count("*")
        if wildcards != len(path_values):
            raise ValidationError(
                f"Target {target_id}: the URL has {wildcards} path wildcard(s) (*) but "
                f"HttpParameters.PathParameterValues has {len(path_values)} value(s); each "
                "value fills one wildcard, in order."
            )
