"""Nobody but eventyard puts events of ``source`` ``eventyard``: a caller with PutEvents
must not forge the system events that alert rules act on (AWS refuses ``aws.*`` sources
the same way, ``NotAuthorizedForSourceException``)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.server.api.conftest import aws_client


def test_put_events_refuses_the_system_source_on_any_bus(aws_endpoint: str) -> None:
    events: Any = aws_client("events", aws_endpoint)
    answer = events.put_events(
        Entries=[
            {
                "Source": "eventyard",
                "DetailType": "Dead-Letter Queue Messages",
                "Detail": '{"queue-arn": "forged"}',
                "EventBusName": "eventyard",
            },
            {"Source": "eventyard", "DetailType": "x", "Detail": "{}"},
            {"Source": f"shop-{uuid.uuid4().hex[:6]}", "DetailType": "x", "Detail": "{}"},
        ]
    )
    codes = [entry.get("ErrorCode") for entry in answer["Entries"]]
    assert codes == ["NotAuthorizedForSourceException"] * 2 + [None]
    assert answer["FailedEntryCount"] == 2
    assert "EventId" in answer["Entries"][2]
