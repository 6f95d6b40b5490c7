"""The typed catalog documents and the domain objects the router takes."""

from __future__ import annotations

from eventyard.server.catalog import Rule, RuleDoc, Target

ARN = "arn:aws:events:us-east-1:000000000000:rule/b/r"
QUEUE = "arn:aws:sqs:us-east-1:000000000000:q"


def _doc(**members: object) -> RuleDoc:
    doc: RuleDoc = {
        "Name": "r",
        "Arn": ARN,
        "EventBusName": "b",
        "EventPattern": '{"source": ["shop"]}',
        "State": "ENABLED",
        "Targets": [],
    }
    doc.update(members)  # type: ignore[typeddict-item]
    return doc


def test_a_rule_document_becomes_a_rule_with_its_targets_in_order() -> None:
    doc = _doc(
        Targets=[
            {"Id": "t1", "Arn": QUEUE, "InputPath": "$.detail"},
            {
                "Id": "t2",
                "Arn": "https://example.com/hook",
                "RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
                "DeadLetterConfig": {"Arn": QUEUE},
            },
        ]
    )
    rule = Rule.from_doc("b/r", doc)
    assert (rule.key, rule.name, rule.arn, rule.bus) == ("b/r", "r", ARN, "b")
    assert rule.matches_events
    assert rule.targets == (
        Target("t1", QUEUE, input={"Id": "t1", "InputPath": "$.detail"}),
        Target("t2", "https://example.com/hook", max_attempts=0, max_age=60.0, dlq_arn=QUEUE),
    )


def test_a_disabled_or_pattern_less_rule_matches_no_event() -> None:
    assert not Rule.from_doc("b/r", _doc(State="DISABLED")).matches_events
    no_pattern = _doc()
    del no_pattern["EventPattern"]
    assert not Rule.from_doc("b/r", no_pattern).matches_events
    assert Rule.from_doc("b/r", _doc(State="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")).enabled
