"""The EventBridge event model shared by SDK and server: entries, sizes and envelopes.

An accepted PutEvents entry becomes an envelope with AWS's keys in AWS's order
(``version, id, detail-type, source, account, time, region, resources, detail``). The
envelope is serialised once; the same bytes go to the log and to whole-event targets.
"""

from __future__ import annotations

import functools
import os
import re
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from eventyard.errors import ValidationError

__all__ = [
    "BUS_ARN_RE",
    "DEFAULT_BUS",
    "MATCHED_RULES_HEADER",
    "EntryError",
    "Envelope",
    "bus_name_from",
    "check_request",
    "entry_size",
    "event_id_time",
    "format_time",
    "make_envelope",
    "new_event_id",
]

DEFAULT_BUS = "default"
#: the PutEvents answer header (not AWS's: boto3 ignores it) with how many rules each
#: entry matched, comma-separated and index-aligned, ``-`` for a rejected entry
MATCHED_RULES_HEADER = "x-eventyard-matched-rules"
MAX_ENTRIES = 10
#: the deepest Detail eventyard accepts (AWS: 1000); an envelope adds one level
MAX_DETAIL_DEPTH = 253
BUS_ARN_RE = re.compile(
    r"^arn:aws[\w-]*:events:([a-z]+-[a-z]+-[\w-]+):([0-9]{12}):event-bus/(.+)\Z"
)
_BUS_NAME_RE = re.compile(r"^[\.\-_A-Za-z0-9]+\Z")


@dataclass(slots=True, frozen=True)
class Envelope:
    """An accepted event: its id, bus, ingestion time, parsed envelope and its JSON."""

    event_id: str
    bus: str
    ingested: float
    event: dict[str, Any]
    body: bytes


@dataclass(slots=True, frozen=True)
class EntryError:
    """A per-entry PutEvents failure (HTTP 200, ``ErrorCode`` + ``ErrorMessage``)."""

    code: str
    message: str


def format_time(epoch: float) -> str:
    """RFC 3339 UTC at second precision, as EventBridge writes ``time``."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_size(entry: Mapping[str, Any]) -> int:
    """The AWS entry-size formula: 14 bytes for Time plus UTF-8 lengths of the fields."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value) if value.isascii() else len(value.encode())
    resources = entry.get("Resources")
    if isinstance(resources, list):
        size += sum(len(r.encode()) for r in resources if isinstance(r, str))
    return size


def _java_entry(entry: Mapping[str, Any]) -> str:
    def show(value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, list):
            return "[" + ", ".join(str(v) for v in value) + "]"
        return str(value)

    fields = (
        ("time", entry.get("Time")),
        ("source", entry.get("Source")),
        ("resources", entry.get("Resources")),
        ("detailType", entry.get("DetailType")),
        ("detail", entry.get("Detail")),
        ("eventBusName", entry.get("EventBusName")),
        ("traceHeader", entry.get("TraceHeader")),
        ("kmsKeyIdentifier", None),
        ("internalMetadata", None),
    )
    return "PutEventsRequestEntry(" + ", ".join(f"{k}={show(v)}" for k, v in fields) + ")"


def check_request(params: Mapping[str, Any], max_size: int) -> list[Mapping[str, Any]]:
    """Validate the request as a whole; returns its entries.

    Raises:
        ValidationError: no entries, more than 10, or over the total size limit.
    """
    entries = params.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise ValidationError(
            "1 validation error detected: Value null at 'entries' failed to satisfy "
            "constraint: Member must not be null"
            if entries is None
            else "1 validation error detected: Value '[]' at 'entries' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    if not all(isinstance(e, dict) for e in entries):
        raise ValidationError("Each entry of Entries must be an object.")
    if len(entries) > MAX_ENTRIES:
        shown = ", ".join(_java_entry(e) for e in entries)
        raise ValidationError(
            f"1 validation error detected: Value '[{shown}]' at 'entries' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_ENTRIES}"
        )
    if sum(entry_size(e) for e in entries) > max_size:
        raise ValidationError("Total size of the entries in the request is over the limit.")
    return entries


@functools.lru_cache(maxsize=4096)
def bus_name_from(name_or_arn: str | None) -> str | None:
    """The bus name of an ``EventBusName`` value (name or ARN); None if malformed."""
    if name_or_arn is None:
        return DEFAULT_BUS
    if not isinstance(name_or_arn, str) or not name_or_arn or len(name_or_arn) > 1600:
        return None
    match = BUS_ARN_RE.match(name_or_arn)
    name = match.group(3) if match else name_or_arn
    return name if _BUS_NAME_RE.match(name) else None


def _missing(key: str) -> EntryError:
    reason = f"{key} is a required argument."
    return EntryError("InvalidArgument", f"Parameter {key} is not valid. Reason: {reason}")


def _not_string(key: str) -> EntryError:
    reason = f"{key} must be a string."
    return EntryError("InvalidArgument", f"Parameter {key} is not valid. Reason: {reason}")


# the epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: RFC 3339 years
_EARLIEST, _LATEST = -62135596800.0, 253402300799.0
_BAD_TIME = EntryError("InvalidArgument", "Parameter Time is not valid.")


def _entry_time(value: Any) -> float | EntryError:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return _BAD_TIME
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            try:
                when = float(value)
            except ValueError:
                return _BAD_TIME
    else:
        try:
            when = float(value)
        except OverflowError:
            return _BAD_TIME
    # NaN fails both comparisons
    return when if _EARLIEST <= when <= _LATEST else _BAD_TIME


_VARIANT = "89ab89ab89ab89ab"
_UUID7_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")


def new_event_id(now: float | None = None) -> str:
    """A time-ordered (version 7, RFC 9562) UUID as text; quicker than the uuid module.

    Its first 48 bits are ``now`` (default: the current time) in unix milliseconds, so
    the id tells when its event was ingested, to the millisecond
    (:func:`event_id_time`); the other 74 bits are random.
    """
    millis = int((_time.time() if now is None else now) * 1000)
    t = f"{millis:012x}"
    h = os.urandom(10).hex()
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-{_VARIANT[int(h[3], 16)]}{h[4:7]}-{h[7:19]}"


def event_id_time(event_id: str) -> float | None:
    """When an event was ingested, read from its version 7 id (epoch seconds, to the
    millisecond); None when ``event_id`` is not a version 7 UUID (ids eventyard made
    before it used them, or ids a producer chose)."""
    text = event_id.lower()
    if _UUID7_RE.match(text) is None:
        return None
    return int(text[:8] + text[9:13], 16) / 1000


def make_envelope(
    entry: Mapping[str, Any],
    *,
    account: str,
    region: str,
    now: float | None = None,
    now_text: str | None = None,
    extra: Sequence[tuple[str, Any]] = (),
    bus: str | None = None,
) -> Envelope | EntryError:
    """Validate one PutEvents entry and build its envelope, or say why it is rejected.

    ``now`` is the ingestion time (default: the current time) and ``now_text`` its
    formatted form, passed in by callers that build many envelopes at once. ``extra``
    adds top-level keys after ``region`` (e.g. ``replay-name``). ``bus`` is the bus the
    caller has already resolved from the entry's ``EventBusName`` (the server's name
    for it, which may differ from the one the entry gives); None: read the entry's.
    """
    ingested = _time.time() if now is None else now
    source = entry.get("Source")
    detail_type = entry.get("DetailType")
    detail_text = entry.get("Detail")
    for key, value in (("Source", source), ("DetailType", detail_type), ("Detail", detail_text)):
        if not value:
            return _missing(key)
        if not isinstance(value, str):
            return _not_string(key)
    try:
        detail = orjson.loads(detail_text)  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return EntryError("MalformedDetail", "Detail is malformed.")
    if not isinstance(detail, dict):
        return EntryError("MalformedDetail", "Detail is malformed.")
    resources = entry.get("Resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        return EntryError("InvalidArgument", "Parameter Resources is not valid.")
    if bus is None:
        bus_value = entry.get("EventBusName")
        bus = bus_name_from(bus_value) if isinstance(bus_value, str | None) else None
        if bus is None:
            return EntryError("InvalidArgument", "Parameter EventBusName is not valid.")
    time_value = entry.get("Time")
    if time_value is None:
        time_text = now_text or format_time(ingested)
    else:
        when = _entry_time(time_value)
        if isinstance(when, EntryError):
            return when
        time_text = format_time(when)
    event_id = new_event_id(ingested)
    event: dict[str, Any] = {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time_text,
        "region": region,
    }
    for key, value in extra:
        event[key] = value
    event["resources"] = resources
    event["detail"] = detail
    try:
        body = orjson.dumps(event)
    except TypeError:
        # orjson serialises at most 254 levels of nesting (its recursion limit)
        return EntryError(
            "InvalidArgument",
            f"Parameter Detail is not valid. Reason: Detail is nested deeper than "
            f"{MAX_DETAIL_DEPTH} levels.",
        )
    return Envelope(event_id, bus, ingested, event, body)
