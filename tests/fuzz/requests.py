"""Generators of hostile requests for ``POST /``: the fuzz suite's and ``bench/fuzz.py``'s.

Two families of requests, both as hypothesis strategies of :class:`FuzzRequest`:

* :func:`model_request` builds a request for one operation from botocore's service model
  (``events`` and ``sqs``): every member of the input shape gets a value of its type, and
  a share of them get edge values instead: empty and huge strings, lone surrogates (as
  JSON escapes, or as raw bytes that are not UTF-8), deeply nested JSON inside the
  members that carry JSON text (``Detail``, ``EventPattern``, templates, policies),
  numbers JSON can spell but no parser should trust (``1e400``, ``-0``, ``2**64``), the
  wrong JSON type, ``null`` and keys the model does not have. Names come from small pools
  so that the requests meet each other's buses, rules and queues.
* :func:`garbage_request` is everything around a body: raw bytes, truncated or non-object
  JSON, a missing or wrong ``Content-Type`` or ``X-Amz-Target`` and huge
  ``Content-Length`` claims.
* :func:`auth_request` is everything a signature is read from, for a server that has an
  access key (so that it verifies): ``Authorization`` (SigV4 with every part bent, or
  ``Bearer``), ``Date`` and ``X-Amz-Date`` at and past the calendar's ends and with
  overflowing zones, and presigned query parameters (``X-Amz-Expires`` in digits that are
  not ASCII, doubled or missing parameters, undecodable escapes).

Bodies are encoded by :func:`encode`, which can write what ``json.dumps`` cannot: number
literals kept as text (:class:`Raw`) and strings with lone surrogates written as bytes.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Final
from urllib.parse import quote

import botocore.session
from botocore.model import Shape
from hypothesis import strategies as st

__all__ = [
    "ACCOUNT",
    "BUSES",
    "QUEUES",
    "REGION",
    "RULES",
    "SERVICES",
    "FuzzRequest",
    "Long",
    "Raw",
    "auth_request",
    "encode",
    "garbage_request",
    "json_text",
    "model_operations",
    "model_request",
    "queue_url",
    "receipt_handles",
    "request_for",
    "template_text",
]

ACCOUNT = "111111111111"
REGION = "us-east-1"
#: X-Amz-Target prefix and Content-Type of each botocore service.
SERVICES = {
    "events": ("AWSEvents", "application/x-amz-json-1.1"),
    "sqs": ("AmazonSQS", "application/x-amz-json-1.0"),
}
BUSES = ("default", "fz-a", "fz-b")
RULES = ("r1", "r2", "r3")
QUEUES = ("q1", "q2", "dlq")
SOURCE = "fz.source"


@dataclass(frozen=True)
class FuzzRequest:
    """One ``POST /`` as the harness sends it.

    Attributes:
        operation: the label the run's statistics count it under (``events.PutRule``,
            ``sqs.Unknown``, ``garbage``).
        headers: the raw request headers (lower-case names).
        body: the raw body.
        chunks: how many ASGI body messages the body arrives in.
        query: the raw query string (without ``?``).
    """

    operation: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    chunks: int = 1
    query: bytes = b""

    @property
    def target(self) -> str:
        """The ``X-Amz-Target`` header, or ``""``."""
        return next((v.decode("latin-1") for k, v in self.headers if k == b"x-amz-target"), "")

    def __repr__(self) -> str:
        shown = self.body if len(self.body) <= 600 else self.body[:600] + b"...(truncated)"
        query = f", query={self.query!r}" if self.query else ""
        return f"FuzzRequest({self.operation}, headers={self.headers!r}{query}, body={shown!r})"


class Long(str):
    """A long string whose ``repr`` is short, so that strategies holding it print small."""

    def __repr__(self) -> str:
        if len(self) <= 60:
            return super().__repr__()
        return f"{type(self).__name__}({str.__repr__(self[:30])} ... {len(self)} chars)"


class Raw(Long):
    """A JSON literal written as is (numbers such as ``1e400``, pre-built nesting)."""


def encode(value: Any, *, ascii_only: bool = True) -> bytes:
    """``value`` as JSON bytes; :class:`Raw` literals verbatim.

    With ``ascii_only`` false, strings are written as UTF-8 with ``surrogatepass``, so a
    lone surrogate becomes bytes that are not valid UTF-8.
    """
    parts: list[str] = []
    _encode(value, parts, ascii_only)
    return "".join(parts).encode("utf-8", "surrogatepass")


def _encode(value: Any, out: list[str], ascii_only: bool) -> None:
    if isinstance(value, Raw):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=ascii_only))
    elif value is None or isinstance(value, bool | int):
        out.append(json.dumps(value))
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else "1e400")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=ascii_only))
            out.append(":")
            _encode(item, out, ascii_only)
        out.append("}")
    else:
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, ascii_only)
        out.append("]")


def queue_url(name: str) -> str:
    """The URL the server hands out for queue ``name`` (the default port and host)."""
    return f"http://127.0.0.1:4010/{ACCOUNT}/{name}"


# -- scalar values -----------------------------------------------------------------------

_EDGE_STRINGS = (
    "",
    " ",
    "\x00",
    "\ud800",
    "a\udfffb",
    "\U0001f600",
    "\u202e\u0000",
    "\ufeff",
    "null",
    "{}",
    "[]",
    "{",
    "$",
    "$.",
    "$.detail",
    "$..*",
    "<aws.events.event>",
    "<<<>>>",
    "%s%n",
    "../../etc/passwd",
    "arn:aws:events:us-east-1:111111111111:event-bus/default",
    "arn:aws:sqs:us-east-1:111111111111:q1",
    "http://127.0.0.1:9/",
    "file:///etc/passwd",
    "1e400",
    "-0",
    "NaN",
)

_RAW_NUMBERS = tuple(
    Raw(n)
    for n in (
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "-0.0",
        "0e0",
        "18446744073709551616",
        "-9223372036854775809",
        "1" * 400,
        "1.5",
        "1E2",
    )
)

_EDGE_INTS = (0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1)


def _huge(size: int) -> st.SearchStrategy[str]:
    return st.sampled_from(("a", "\U0001f600", "<a>", "\\", '"', "\ud800")).map(
        lambda unit: unit * (size // max(1, len(unit.encode("utf-8", "surrogatepass"))))
    )


_huge_strings = st.sampled_from((257, 1025, 8193, 70_000, 262_145)).flatmap(_huge)

strings: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=24),
    st.text(max_size=24),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=24),
    st.sampled_from(_EDGE_STRINGS),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    _huge_strings,
)

numbers: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 300),
    st.sampled_from(_EDGE_INTS),
    st.sampled_from(_RAW_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
)

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), numbers, st.text(max_size=12), st.sampled_from(_EDGE_STRINGS)
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"a":[' * depth + '"x"' + "]}" * depth


#: JSON nested past every limit around 253 (EventBridge) and 1024 (orjson).
deep_json = st.builds(
    _nested,
    st.sampled_from((64, 252, 253, 254, 255, 600, 1023, 1024, 1025, 5000, 100_000)),
    st.sampled_from(("list", "object", "mixed")),
).map(Raw)

_BROKEN_JSON = (
    "",
    "{",
    '{"a":}',
    '{"a":1,}',
    "[1,2",
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":-Infinity}',
    '{"a":1e400}',
    '{"a":-1e400}',
    '{"a":18446744073709551616}',
    Long('{"a":' + "9" * 5000 + "}"),
    '{"a":"\\ud800"}',
    '{"a":"\\udc00\\ud800"}',
    '{"a":"\\u0000"}',
    '{"a":1,"a":2}',
    '{"a":01}',
    "\ufeff{}",
    "{'a': 1}",
    '{"a":true} trailing',
    "null",
    "[]",
    '"text"',
    "1",
)


def _dumps(value: Any) -> str:
    return encode(value).decode("utf-8")


#: Text that a member carrying JSON (Detail, Input, policies…) may hold.
json_text: st.SearchStrategy[str] = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(_dumps),
    json_values.map(_dumps),
    deep_json.map(lambda raw: '{"d":' + raw + "}"),
    deep_json.map(str),
    st.sampled_from(_BROKEN_JSON),
    strings,
)

_PATTERNS = (
    '{"source":["fz.source"]}',
    '{"source":[{"prefix":""}]}',
    '{"detail":{"s":[{"wildcard":"*a*a*a*b"}]}}',
    '{"detail":{"s":[{"wildcard":"*/*/*.jpg"}]}}',
    '{"detail":{"n":[{"numeric":[">",0,"<=",1e9]}]}}',
    '{"detail":{"n":[{"numeric":["=",1e400]}]}}',
    '{"detail":{"n":[{"numeric":[">",-1e400]}]}}',
    '{"detail":{"s":[{"anything-but":{"prefix":"a"}}]}}',
    '{"detail":{"s":[{"equals-ignore-case":"\\ud800"}]}}',
    '{"detail":{"s":[{"cidr":"10.0.0.0/8"}]}}',
    '{"detail":{"s":[{"cidr":"::ffff:0:0/96"}]}}',
    '{"detail":{"s":[{"suffix":""}]}}',
    '{"detail":{"s":[{"exists":false}]}}',
    '{"$or":[{"source":["a"]},{"detail":{"s":[1]}}]}',
    '{"detail":{"a":{"b":{"c":{"d":[null]}}}}}',
    Long('{"detail":{"s":[{"wildcard":"' + "*a" * 200 + '"}]}}'),
)

#: EventPattern text: real patterns, their wreckage and deep nesting.
pattern_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_PATTERNS),
    st.sampled_from(_PATTERNS),
    st.builds(
        lambda depth: '{"detail":' + '{"a":' * depth + '["x"]' + "}" * depth + "}",
        st.sampled_from((10, 100, 252, 253, 300, 2000)),
    ),
    json_text,
)

_TEMPLATE_PIECES = (
    "<a>",
    "<detail>",
    "<aws.events.event>",
    "<aws.events.event.json>",
    "<aws.events.rule-arn>",
    "<aws.events.event.ingestion-time>",
    '"<a>"',
    "<",
    ">",
    "<<a>>",
    "{",
    "}",
    '{"k":<a>}',
    '{"k":"<a>"}',
    "\\",
    "\\u",
    "\ud800",
    "\x00",
    "text",
    ",",
    "[",
    "]",
)

#: InputTemplate text, including the repetition that once made 80 MB messages.
template_text: st.SearchStrategy[str] = st.one_of(
    st.lists(st.sampled_from(_TEMPLATE_PIECES), max_size=12).map("".join),
    st.builds(
        lambda piece, times: piece * times,
        st.sampled_from(("<a>", "<detail>", "<aws.events.event>", '"<a>",')),
        st.sampled_from((2, 100, 2000, 9000)),
    ),
    st.builds(
        lambda depth: '{"k":' * depth + "<a>" + "}" * depth,
        st.sampled_from((10, 253, 254, 1025, 2700)),
    ),
    json_text,
    strings,
)

input_paths: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        (
            "$",
            "$.detail",
            "$.detail.s",
            "$.detail.n",
            "$.detail.*",
            "$..a",
            "$['detail']",
            "$.detail[0]",
            "$.detail[-1]",
            "$.detail[999999999999999999999]",
            Long("$." + ".a" * 200),
            "$[",
            "detail",
            "",
        )
    ),
    strings,
)

_TIMES: tuple[Any, ...] = (
    0,
    -1,
    1e12,
    -1e12,
    253402300800,
    2**63,
    Raw("1e400"),
    Raw("-0"),
    "2020-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "yesterday",
    "",
    1.5,
)

times: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(_TIMES), st.integers(-(2**40), 2**40), numbers
)

bus_refs: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(BUSES),
    st.sampled_from(BUSES),
    st.sampled_from(BUSES).map(lambda b: f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}"),
    st.sampled_from(("a/b", "fz-a/", "/", "aws.partner/x", "fz-" + "z" * 300)),
    strings,
)
rule_refs: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(RULES), st.sampled_from(RULES), strings
)
queue_names: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(QUEUES),
    st.sampled_from(QUEUES),
    st.sampled_from(("q1.fifo", "x" * 81, "a b", "-")),
    strings,
)
queue_urls: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(QUEUES).map(queue_url),
    st.sampled_from(QUEUES).map(queue_url),
    st.sampled_from(QUEUES),
    st.sampled_from(("http://h/", "http://h/1/", "://", "http://[::1", "/" * 3000)),
    strings,
)
queue_arns = st.sampled_from(QUEUES).map(lambda q: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q}")
bus_arns = st.sampled_from(BUSES).map(lambda b: f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}")
target_arns: st.SearchStrategy[Any] = st.one_of(
    queue_arns,
    queue_arns,
    bus_arns,
    st.sampled_from(
        (
            "http://127.0.0.1:9/hook",
            "arn:aws:sqs:us-east-1:111111111111:missing",
            "arn:aws:lambda:us-east-1:111111111111:function:f",
            "gopher://127.0.0.1:70/",
        )
    ),
    strings,
)
resource_arns: st.SearchStrategy[Any] = st.one_of(
    bus_arns,
    st.sampled_from(RULES).map(lambda r: f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{r}"),
    st.tuples(st.sampled_from(BUSES), st.sampled_from(RULES)).map(
        lambda br: f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{br[0]}/{br[1]}"
    ),
    st.sampled_from((f"arn:aws:events:{REGION}:{ACCOUNT}:archive/x", "arn:aws:events:::")),
    strings,
)


def receipt_handles(queues: tuple[str, ...] = QUEUES) -> st.SearchStrategy[str]:
    """Receipt handles: well-formed wrappers around any receipt, and plain garbage."""

    def wrap(queue: str, receipt: str) -> str:
        raw = f"{queue}\n{receipt}".encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return st.one_of(
        st.builds(
            wrap,
            st.sampled_from(queues),
            st.one_of(
                st.text(max_size=20),
                st.integers(-(2**70), 2**70).map(str),
                st.sampled_from(("1", "0", "-1", "1:1", "x\ny", "9" * 30, "\ud800")),
            ),
        ),
        strings,
    )


_ATTRIBUTE_NAMES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "Policy",
    "KmsMasterKeyId",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "All",
    "QueueArn",
    "ApproximateNumberOfMessages",
    "Nope",
)


def _redrive(dlq: str, count: Any) -> str:
    return _dumps(
        {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq}", "maxReceiveCount": count}
    )


#: Queue attribute values. Long-poll waits are kept outside 1..20 s: a waiting receive only
#: slows the run down (the harness hangs up on it), it finds nothing more.
_attribute_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        (
            "0",
            "-1",
            "21",
            "900",
            "901",
            "1024",
            "262144",
            "262145",
            "43200",
            "43201",
            "1209600",
            "60",
            "1e400",
            "2e3",
            " 5",
            "0x10",
            "true",
            "",
        )
    ),
    st.integers(-(2**65), 2**65).filter(lambda n: not 1 <= n <= 20).map(str),
    st.builds(_redrive, st.sampled_from(QUEUES), st.one_of(numbers, st.text(max_size=3))),
    json_text,
    strings,
)

queue_attributes: st.SearchStrategy[Any] = st.dictionaries(
    st.one_of(st.sampled_from(_ATTRIBUTE_NAMES), strings), _attribute_values, max_size=4
)

waits: st.SearchStrategy[Any] = st.one_of(
    st.just(0), st.just(0), st.sampled_from((-1, 21, 2**63, Raw("1e400"), "1", None, 0.5))
)

# -- shapes ------------------------------------------------------------------------------


def _wrong_types() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers,
        st.sampled_from(_EDGE_STRINGS),
        st.lists(json_scalars, max_size=2),
        st.dictionaries(st.text(max_size=4), json_scalars, max_size=2),
        deep_json,
    )


wrong_types = _wrong_types()

# Overrides by member name, then by shape name: values that meet the other requests.
_BY_MEMBER: dict[str, st.SearchStrategy[Any]] = {
    "Detail": json_text,
    "Event": json_text,
    "Policy": json_text,
    "Input": json_text,
    "InputTemplate": template_text,
    "InputPath": input_paths,
    "QueueUrl": queue_urls,
    "QueueName": queue_names,
    "QueueNamePrefix": st.one_of(st.sampled_from(("", "q", "d")), strings),
    "ReceiptHandle": receipt_handles(),
    "MessageBody": strings,
    "Attributes": queue_attributes,
    "WaitTimeSeconds": waits,
    "Source": st.one_of(st.just(SOURCE), st.just(SOURCE), strings),
    "DetailType": st.one_of(st.just("fz"), strings),
    "Time": times,
    "NextToken": st.one_of(
        st.sampled_from(("e30", "bnVsbA", "W10", "!!", "eyJhZnRlciI6MX0", "W1siYSJdLCAxXQ")),
        strings,
    ),
    "DataType": st.one_of(
        st.sampled_from(("String", "Number", "Binary", "String.x", "Number.1", "Binary.", "")),
        strings,
    ),
    "ScheduleExpression": st.one_of(
        st.sampled_from(("rate(1 minute)", "rate(0 days)", "cron(0 0 * * ? *)", "cron(")),
        strings,
    ),
}
_BY_SHAPE: dict[str, st.SearchStrategy[Any]] = {
    "EventBusName": bus_refs,
    "EventBusNameOrArn": bus_refs,
    "NonPartnerEventBusName": bus_refs,
    "NonPartnerEventBusNameOrArn": bus_refs,
    "RuleName": rule_refs,
    "TargetId": st.one_of(st.sampled_from(("t1", "t2", "t3", "t4", "t5", "t6")), strings),
    "TargetArn": target_arns,
    "Arn": resource_arns,
    "ResourceArn": st.one_of(queue_arns, strings),
    "EventPattern": pattern_text,
    "TargetInputPath": input_paths,
    "TransformerInput": template_text,
    "EventTime": times,
}


def _mixed(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` most of the time, a value of the wrong JSON type now and then."""
    return st.one_of(*[value] * 15, wrong_types)


@cache
def _service(name: str) -> Any:
    return botocore.session.get_session().get_service_model(name)


# eventyard's own operations of the EventBridge API, which botocore's model lacks, and
# the parameters to fuzz them with
_SIGNING_PARAMS: Final = st.fixed_dictionaries(
    {},
    optional={
        "Rule": _mixed(rule_refs),
        "EventBusName": _mixed(bus_refs),
        "TargetId": _mixed(st.one_of(st.sampled_from(("t1", "t2", "t3")), strings)),
        "Secret": _mixed(
            st.one_of(
                st.sampled_from(("whsec_" + "QUJD" * 8, "whsec_", "whsec_QUJD", "QUJD" * 8)),
                strings,
            )
        ),
        "KeepPrevious": _mixed(st.booleans()),
        "Previous": _mixed(st.booleans()),
    },
)
_EVENTYARD_OPERATIONS: Final = {
    "events": {
        "PutTargetSigningSecret": _SIGNING_PARAMS,
        "DeleteTargetSigningSecret": _SIGNING_PARAMS,
        "DescribeTargetSigning": _SIGNING_PARAMS,
    }
}


def model_operations(service: str) -> tuple[str, ...]:
    """Every operation of botocore's model of ``service`` (``events`` or ``sqs``), and
    eventyard's own operations of that API (the signing secrets of webhook targets)."""
    extra = tuple(_EVENTYARD_OPERATIONS.get(service, {}))
    return tuple(_service(service).operation_names) + extra


def _shape(shape: Shape, member: str | None, depth: int) -> st.SearchStrategy[Any]:
    if member is not None and member in _BY_MEMBER:
        return _mixed(_BY_MEMBER[member])
    if shape.name in _BY_SHAPE:
        return _mixed(_BY_SHAPE[shape.name])
    kind = shape.type_name
    if depth > 6:
        return wrong_types
    if kind == "structure":
        members = shape.members
        required = set(shape.required_members)
        strategies = {key: _shape(sub, key, depth + 1) for key, sub in members.items()}
        complete = st.fixed_dictionaries(
            {k: s for k, s in strategies.items() if k in required},
            optional={k: s for k, s in strategies.items() if k not in required},
        )
        partial = st.fixed_dictionaries({}, optional=strategies)
        extra = st.dictionaries(
            st.one_of(st.sampled_from(tuple(members) or ("x",)), st.text(max_size=6)),
            st.one_of(json_values, json_values, deep_json),
            max_size=2,
        )
        merged = st.one_of(
            complete,
            complete,
            complete,
            partial,
            st.tuples(complete, extra).map(lambda pair: {**pair[0], **pair[1]}),
        )
        return _mixed(merged)
    if kind == "list":
        high = shape.metadata.get("max", 10)
        item = _shape(shape.member, None, depth + 1)
        return _mixed(
            st.one_of(
                st.lists(item, max_size=min(high, 4)),
                st.lists(item, min_size=min(high, 10), max_size=min(high, 10) + 2),
            )
        )
    if kind == "map":
        return _mixed(
            st.dictionaries(_map_keys(shape.key), _shape(shape.value, None, depth + 1), max_size=4)
        )
    if kind == "string":
        enum = shape.metadata.get("enum")
        if enum:
            return _mixed(st.one_of(st.sampled_from(enum), st.sampled_from(enum), strings))
        return _mixed(strings)
    if kind in ("integer", "long"):
        low = shape.metadata.get("min", 0)
        return _mixed(st.one_of(st.integers(low - 1, low + 12), numbers))
    if kind == "boolean":
        return _mixed(st.booleans())
    if kind in ("double", "float"):
        return _mixed(numbers)
    if kind == "timestamp":
        return _mixed(times)
    if kind == "blob":
        return _mixed(
            st.one_of(
                st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode()),
                strings,
            )
        )
    return wrong_types


def _map_keys(shape: Shape) -> st.SearchStrategy[str]:
    # JSON object keys are strings whatever the model says; wrong types go elsewhere
    enum = shape.metadata.get("enum")
    if enum:
        return st.one_of(st.sampled_from(enum), st.sampled_from(enum), strings)
    return strings


@cache
def _params(service: str, operation: str) -> st.SearchStrategy[Any]:
    model = _service(service)
    extra = _EVENTYARD_OPERATIONS.get(service, {})
    if operation in extra:
        return extra[operation]
    if operation not in model.operation_names:
        return st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return st.just({})
    return _shape(shape, None, 0)


def request_for(
    service: str, operation: str, params: Any, *, ascii_only: bool = True
) -> FuzzRequest:
    """The request calling ``operation`` of ``service`` with ``params`` (any JSON value)."""
    prefix, content_type = SERVICES[service]
    headers = (
        (b"content-type", content_type.encode()),
        (b"x-amz-target", f"{prefix}.{operation}".encode()),
    )
    return FuzzRequest(f"{service}.{operation}", headers, encode(params, ascii_only=ascii_only))


_UNKNOWN_OPS = ("Unknown", "putEvents", "PutEvents ", "", "__init__", "call", "../PutRule")


@st.composite
def model_request(
    draw: st.DrawFn, service: str | None = None, operation: str | None = None
) -> FuzzRequest:
    """A request for ``operation`` (default: a random one of the model, or an unknown one).

    Its parameters follow the operation's input shape, with edge values.
    """
    if service is None:
        service = draw(st.sampled_from(tuple(SERVICES)))
    operation = operation or draw(
        st.one_of(
            st.sampled_from(model_operations(service)),
            st.sampled_from(model_operations(service)),
            st.sampled_from(model_operations(service)),
            st.sampled_from(model_operations(service)),
            st.sampled_from(_UNKNOWN_OPS),
        )
    )
    params = draw(_params(service, operation))
    ascii_only = draw(st.sampled_from((True, True, True, False)))
    request = request_for(service, operation, params, ascii_only=ascii_only)
    if operation in _UNKNOWN_OPS:
        return FuzzRequest(f"{service}.Unknown", request.headers, request.body)
    return request


_CONTENT_TYPES = (
    b"application/x-amz-json-1.1",
    b"application/x-amz-json-1.0",
    b"application/x-amz-json-1.1; charset=utf-8",
    b"APPLICATION/X-AMZ-JSON-1.1",
    b"application/json",
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"",
    b";",
    b"\xff\xfe",
)
_TARGETS = (
    b"AWSEvents.PutEvents",
    b"AWSEvents.PutRule",
    b"AmazonSQS.SendMessage",
    b"AmazonSQS.ReceiveMessage",
    b"AWSEvents.",
    b"AWSEvents",
    b"AmazonSQS.",
    b".PutEvents",
    b"AWSEvents.PutEvents.Extra",
    b"DynamoDB_20120810.GetItem",
    b"\xff\xfe",
    b"AWSEvents.Put\x00Events",
)
_GARBAGE_BODIES = (
    b"",
    b"{",
    b"}",
    b"null",
    b"[]",
    b"[{}]",
    b'"x"',
    b"1e400",
    b"\xff\xfe\xfd",
    b"\xef\xbb\xbf{}",
    b'{"Entries":',
    b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\\ud800"}',
    b"{" * 5000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"Entries":[' + b"{}," * 20_000 + b"{}]}",
    b"\x00" * 1024,
    b" " * 10_000,
    b'{"a":1}' * 3,
)


@st.composite
def garbage_request(draw: st.DrawFn) -> FuzzRequest:
    """A request whose envelope is wrong: headers, body bytes, claimed length."""
    headers: list[tuple[bytes, bytes]] = []
    content_type = draw(
        st.one_of(st.none(), st.sampled_from(_CONTENT_TYPES), st.binary(max_size=12))
    )
    if content_type is not None:
        headers.append((b"content-type", content_type))
    target = draw(st.one_of(st.none(), st.sampled_from(_TARGETS), st.binary(max_size=24)))
    if target is not None:
        headers.append((b"x-amz-target", target))
    body = draw(
        st.one_of(
            st.sampled_from(_GARBAGE_BODIES),
            st.binary(max_size=64),
            json_values.map(encode),
            st.builds(
                lambda raw, cut: raw[:cut], st.sampled_from(_GARBAGE_BODIES), st.integers(0, 64)
            ),
        )
    )
    length = draw(
        st.one_of(
            st.none(),
            st.just(str(len(body)).encode()),
            st.sampled_from(
                (b"0", b"1", b"99999999999999999999", b"-1", b"abc", b"4194305", b"1e9")
            ),
        )
    )
    if length is not None:
        headers.append((b"content-length", length))
    chunks = draw(st.sampled_from((1, 1, 2, 7)))
    return FuzzRequest("garbage", tuple(headers), body, chunks)


# -- what a signature is read from --------------------------------------------------------

_DAYS = ("20260301", "00010101", "09991231", "99991231", "00000000", "2026031", "")
# A request's time as (header, value, the scope day that goes with it): calendar ends,
# zones that overflow, and the short stamps strftime("%Y") once wrote for years < 1000.
_WHEN = (
    ("x-amz-date", "20260301T120000Z", "20260301"),
    ("x-amz-date", "00010101T000000Z", "00010101"),
    ("x-amz-date", "00010101T000000Z", "10101T00"),
    ("x-amz-date", "09991231T235959Z", "9991231T"),
    ("x-amz-date", "99991231T235959Z", "99991231"),
    ("x-amz-date", "00000000T000000Z", "00000000"),
    ("x-amz-date", "20261332T256161Z", "20261332"),
    ("x-amz-date", "\u0662\u0660\u0662\u0666\u0660\u0663\u0660\u0661T120000Z", "20260301"),
    ("x-amz-date", "2026-03-01T12:00:00Z", "2026-03-"),
    ("x-amz-date", "", ""),
    ("date", "Sun, 01 Mar 2026 12:00:00 GMT", "20260301"),
    ("date", "Fri, 31 Dec 0999 23:59:59 GMT", "9991231T"),
    ("date", "Fri, 31 Dec 0999 23:59:59 GMT", "09991231"),
    ("date", "Mon, 01 Jan 0100 00:00:00 GMT", "1000101T"),
    ("date", "Fri, 31 Dec 9999 23:59:59 -2359", "99991231"),
    ("date", "Fri, 31 Dec 9999 23:59:59 +9999", "99991231"),
    ("date", "Thu, 32 Feb 2026 25:61:61 GMT", "20260232"),
    ("date", "Sun, 01 Mar 99999999999999999999 12:00:00 GMT", "99999999"),
    ("date", "01 Mar 2026", "20260301"),
    ("date", "", ""),
)
_EXPIRES = ("60", "0", "604801", "-1", "1e3", "\u00b2", "\u0663", "\uff11", "9" * 5000, "")
_ALGORITHMS = ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", "", "aws4")
_REGIONS = (REGION, REGION, "US-EAST-1", "eu-west-1", "", "\u00ff")
_AUTH_SERVICES = ("events", "sqs", "events", "sqs", "s3", "")
_TERMINATORS = ("aws4_request", "aws4_request", "aws4", "")
_SIGNED_HEADERS = ("host", "host;x-amz-date", "", ";;", "x-amz-date", "host;x-\u00ff", "HOST")
_SIGNATURES = ("00", "0" * 64, "", "zz", "\u00ff" * 64)
_TOKENS = ("", "eyk_", "eyk_\u00ff\u00ff_x", "x" * 5000, "Bearer")
_MOSTLY = (True, True, True, False)


def _latin1(text: str) -> bytes:
    """Header bytes as a client may send them (anything outside Latin-1 as UTF-8)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _credential(draw: st.DrawFn, key_id: str, day: str) -> str:
    parts = [
        draw(st.sampled_from((key_id, key_id, key_id, "AKIAUNKNOWN00000000", ""))),
        draw(st.sampled_from((day, day, day, *_DAYS))),
        draw(st.sampled_from(_REGIONS)),
        draw(st.sampled_from(_AUTH_SERVICES)),
        draw(st.sampled_from(_TERMINATORS)),
    ]
    return "/".join(parts[: draw(st.sampled_from((5, 5, 5, 4, 3)))])


@st.composite
def auth_request(draw: st.DrawFn, key_id: str) -> FuzzRequest:
    """A request whose credentials are bent in every way they are read (see the module doc).

    Most requests are complete in form, so that they reach the later checks (scope, time,
    key, signature) with one part bent.

    Args:
        key_id: an access key id the server knows, so that most requests get as far as
            the signature itself.
    """
    service = draw(st.sampled_from(tuple(SERVICES)))
    prefix, content_type = SERVICES[service]
    operation = "ListEventBuses" if service == "events" else "ListQueues"
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type.encode()),
        (b"x-amz-target", f"{prefix}.{operation}".encode()),
    ]
    query = b""
    dated, when, day = draw(st.sampled_from(_WHEN))
    form = draw(st.sampled_from(("header", "header", "presigned", "presigned", "bearer", "both")))
    if form in ("header", "both"):
        fields = [
            f"Credential={_credential(draw, key_id, day)}",
            f"SignedHeaders={draw(st.sampled_from(_SIGNED_HEADERS))}",
            f"Signature={draw(st.sampled_from(_SIGNATURES))}",
        ]
        if not draw(st.sampled_from(_MOSTLY)):
            fields = draw(st.permutations(fields))[: draw(st.integers(0, 3))]
        separator = draw(st.sampled_from((", ", ",", " ", ",,")))
        algorithm = draw(st.sampled_from(_ALGORITHMS))
        headers.append((b"authorization", _latin1(f"{algorithm} {separator.join(fields)}")))
        headers.append((dated.encode(), _latin1(when)))
        if draw(st.booleans()):  # the other date header too
            other = draw(st.sampled_from(_WHEN))
            if other[0] != dated:
                headers.append((other[0].encode(), _latin1(other[1])))
    if form in ("presigned", "both"):
        params = [
            ("X-Amz-Algorithm", draw(st.sampled_from(_ALGORITHMS))),
            ("X-Amz-Credential", _credential(draw, key_id, day)),
            ("X-Amz-Date", when if dated == "x-amz-date" else draw(st.sampled_from(_WHEN))[1]),
            ("X-Amz-Expires", draw(st.sampled_from(_EXPIRES))),
            ("X-Amz-SignedHeaders", draw(st.sampled_from(_SIGNED_HEADERS))),
            ("X-Amz-Signature", draw(st.sampled_from(_SIGNATURES))),
        ]
        if not draw(st.sampled_from(_MOSTLY)):
            params = draw(st.lists(st.sampled_from(params), max_size=8))
        pieces = [f"{name}={quote(value, safe='')}" for name, value in params]
        pieces += draw(
            st.lists(st.sampled_from(("%zz", "%ff%fe=%80", "&", "=", "a=%")), max_size=2)
        )
        query = "&".join(pieces).encode()
    if form == "bearer":
        scheme = draw(st.sampled_from(("Bearer ", "bearer ", "BEARER", "Bearer  ")))
        headers.append((b"authorization", _latin1(scheme + draw(st.sampled_from(_TOKENS)))))
    return FuzzRequest(f"auth.{form}", tuple(headers), b"{}", query=query)
