"""The SDK's :class:`Event`: what a producer publishes and a consumer receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventyard.errors import ValidationError

__all__ = ["Event"]


@dataclass(slots=True, frozen=True)
class Event:
    """An event as the SDK sees it: what a producer publishes and a consumer receives.

    To publish, give ``source``, ``detail_type`` and ``detail`` (and optionally
    ``resources``, ``time``, ``bus``). A received event also has the fields the router
    sets: ``id``, ``account``, ``region``, ``time`` and ``version``.
    """

    source: str
    detail_type: str
    detail: dict[str, Any] = field(default_factory=dict)
    resources: tuple[str, ...] = ()
    time: str | None = None
    bus: str | None = None
    id: str | None = None
    account: str | None = None
    region: str | None = None
    version: str = "0"

    def to_entry(self, bus: str | None = None) -> dict[str, Any]:
        """The PutEvents entry that publishes this event (on ``bus`` if given)."""
        entry: dict[str, Any] = {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": orjson.dumps(self.detail).decode(),
        }
        if self.resources:
            entry["Resources"] = list(self.resources)
        if self.time is not None:
            entry["Time"] = self.time
        target_bus = bus or self.bus
        if target_bus is not None:
            entry["EventBusName"] = target_bus
        return entry

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any], bus: str | None = None) -> Event:
        """The event an envelope (the JSON a target receives) describes.

        Raises:
            ValidationError: the mapping is not an EventBridge event envelope.
        """
        source, detail_type = envelope.get("source"), envelope.get("detail-type")
        detail = envelope.get("detail", {})
        if not isinstance(source, str) or not isinstance(detail_type, str):
            raise ValidationError("not an event envelope: source and detail-type are required")
        if not isinstance(detail, dict):
            raise ValidationError("not an event envelope: detail must be an object")
        resources = envelope.get("resources") or ()
        return cls(
            source=source,
            detail_type=detail_type,
            detail=detail,
            resources=tuple(str(r) for r in resources),
            time=_optional_str(envelope.get("time")),
            bus=bus,
            id=_optional_str(envelope.get("id")),
            account=_optional_str(envelope.get("account")),
            region=_optional_str(envelope.get("region")),
            version=str(envelope.get("version", "0")),
        )

    def to_envelope(self) -> dict[str, Any]:
        """The envelope (AWS key order) of a received event."""
        return {
            "version": self.version,
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": self.account,
            "time": self.time,
            "region": self.region,
            "resources": list(self.resources),
            "detail": self.detail,
        }


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
