"""Bus resource policies decide cross-account PutEvents."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventyard.server.auth import Decision, PolicyRequest, evaluate
from eventyard.server.auth.policy import refusal

OWNER = "444455556666"
OTHER = "111122223333"
THIRD = "777788889999"
BUS = f"arn:aws:events:us-east-1:{OWNER}:event-bus/orders"


def request(caller: str = OTHER, **kwargs: Any) -> PolicyRequest:
    return PolicyRequest(caller_account=caller, bus_arn=BUS, bus_account=OWNER, **kwargs)


def statement(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
        "Action": "events:PutEvents",
        "Resource": BUS,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_the_owner_needs_no_policy() -> None:
    assert evaluate(None, request(OWNER)) is Decision.ALLOW


def test_another_account_without_a_policy_is_denied() -> None:
    assert evaluate(None, request()) is Decision.IMPLICIT_DENY
    assert not evaluate(None, request()).allowed


def test_a_putpermission_statement_allows_its_account_only() -> None:
    doc = policy(statement())
    assert evaluate(doc, request()) is Decision.ALLOW
    assert evaluate(doc, request(THIRD)) is Decision.IMPLICIT_DENY


def test_the_policy_text_as_stored_on_the_bus_is_read() -> None:
    text = orjson.dumps(policy(statement())).decode()
    assert evaluate(text, request()).allowed


@pytest.mark.parametrize(
    "principal",
    ["*", {"AWS": "*"}, OTHER, {"AWS": OTHER}, {"AWS": [THIRD, f"arn:aws:iam::{OTHER}:root"]}],
)
def test_principal_forms_that_name_the_caller(principal: Any) -> None:
    assert evaluate(policy(statement(Principal=principal)), request()).allowed


@pytest.mark.parametrize(
    "principal",
    [
        THIRD,
        {"AWS": f"arn:aws:iam::{OTHER}:role/publisher"},  # a role is not the account
        {"Service": "events.amazonaws.com"},
        {"AWS": 111122223333},  # not a string
    ],
)
def test_principal_forms_that_do_not_name_the_caller(principal: Any) -> None:
    assert not evaluate(policy(statement(Principal=principal)), request()).allowed


@pytest.mark.parametrize(
    "action", ["events:PutEvents", "events:*", "*", "EVENTS:putevents", ["s3:*", "events:Put*"]]
)
def test_actions_that_cover_putevents(action: Any) -> None:
    assert evaluate(policy(statement(Action=action)), request()).allowed


@pytest.mark.parametrize("action", ["events:PutRule", "events:Put", "sqs:*"])
def test_actions_that_do_not_cover_putevents(action: Any) -> None:
    assert not evaluate(policy(statement(Action=action)), request()).allowed


@pytest.mark.parametrize(
    "resource",
    [
        BUS,
        "*",
        f"arn:aws:events:us-east-1:{OWNER}:event-bus/*",
        "arn:aws:events:*:*:event-bus/ord?rs",
    ],
)
def test_resources_that_cover_the_bus(resource: str) -> None:
    assert evaluate(policy(statement(Resource=resource)), request()).allowed


@pytest.mark.parametrize(
    "resource", [f"arn:aws:events:us-east-1:{OWNER}:event-bus/other", f"{BUS}-2", None]
)
def test_resources_that_do_not_cover_the_bus(resource: str | None) -> None:
    assert not evaluate(policy(statement(Resource=resource)), request()).allowed


def test_an_explicit_deny_wins_over_an_allow() -> None:
    doc = policy(statement(), statement(Sid="no", Effect="Deny", Principal="*"))
    assert evaluate(doc, request()) is Decision.EXPLICIT_DENY


def test_an_explicit_deny_applies_to_the_owner_too() -> None:
    doc = policy(statement(Effect="Deny", Principal="*"))
    assert evaluate(doc, request(OWNER)) is Decision.EXPLICIT_DENY


def test_org_condition_allows_members_of_that_org_only() -> None:
    doc = policy(
        statement(
            Principal="*",
            Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}},
        )
    )
    assert evaluate(doc, request(org_id="o-abcdef1234")).allowed
    assert not evaluate(doc, request(org_id="o-zzzzzzzzzz")).allowed
    assert not evaluate(doc, request()).allowed  # no org: the key is absent


def test_source_and_detail_type_conditions() -> None:
    doc = policy(
        statement(
            Condition={
                "StringEquals": {"events:source": ["shop.orders", "shop.refunds"]},
                "StringLike": {"events:detail-type": "Order *"},
            }
        )
    )
    assert evaluate(doc, request(source="shop.orders", detail_type="Order Placed")).allowed
    assert not evaluate(doc, request(source="shop.billing", detail_type="Order Placed")).allowed
    assert not evaluate(doc, request(source="shop.orders", detail_type="Refund")).allowed


def test_condition_key_names_are_case_insensitive() -> None:
    doc = policy(statement(Condition={"StringEquals": {"EVENTS:SOURCE": "shop"}}))
    assert evaluate(doc, request(source="shop")).allowed


def test_a_negated_operator_holds_when_the_key_is_absent() -> None:
    doc = policy(
        statement(
            Effect="Deny",
            Principal="*",
            Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-abcdef1234"}},
        ),
        statement(),
    )
    assert evaluate(doc, request()) is Decision.EXPLICIT_DENY  # no org at all: denied
    assert evaluate(doc, request(org_id="o-abcdef1234")) is Decision.ALLOW


def test_if_exists_holds_when_the_key_is_absent() -> None:
    doc = policy(
        statement(Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abcdef1234"}})
    )
    assert evaluate(doc, request()).allowed
    assert not evaluate(doc, request(org_id="o-zzzzzzzzzz")).allowed


def test_ignore_case_operator() -> None:
    doc = policy(statement(Condition={"StringEqualsIgnoreCase": {"events:source": "SHOP"}}))
    assert evaluate(doc, request(source="shop")).allowed


def test_null_condition() -> None:
    doc = policy(statement(Condition={"Null": {"aws:PrincipalOrgID": "false"}}))
    assert evaluate(doc, request(org_id="o-abcdef1234")).allowed
    assert not evaluate(doc, request()).allowed


def test_a_rule_forwarding_from_another_account_is_seen_by_its_source_arn() -> None:
    rule = f"arn:aws:events:us-east-1:{OTHER}:rule/forward"
    doc = policy(statement(Condition={"ArnEquals": {"aws:SourceArn": rule}}))
    assert evaluate(doc, request(source_arn=rule)).allowed
    assert not evaluate(doc, request()).allowed


def test_an_unknown_operator_closes_allow_and_keeps_deny() -> None:
    unknown = {"NumericGreaterThan": {"aws:MultiFactorAuthAge": "3600"}}
    assert not evaluate(policy(statement(Condition=unknown)), request()).allowed
    doc = policy(statement(), statement(Effect="Deny", Principal="*", Condition=unknown))
    assert evaluate(doc, request()) is Decision.EXPLICIT_DENY


def test_not_principal_and_not_action() -> None:
    doc = policy(statement(Principal=None, NotPrincipal={"AWS": THIRD}))
    assert evaluate(doc, request()).allowed
    assert not evaluate(doc, request(THIRD)).allowed
    doc = policy(statement(Action=None, NotAction="events:PutRule"))
    assert evaluate(doc, request()).allowed


def test_a_single_statement_object_is_read() -> None:
    assert evaluate({"Statement": statement()}, request()).allowed


@pytest.mark.parametrize(
    "broken",
    [
        "not json",
        "[]",
        '{"Statement": 3}',
        {"Statement": ["x"]},
        {"Statement": [{"Effect": "Maybe"}]},
    ],
)
def test_a_broken_policy_grants_nothing(broken: Any) -> None:
    assert evaluate(broken, request()) is Decision.IMPLICIT_DENY
    assert evaluate(broken, request(OWNER)) is Decision.ALLOW


def test_wildcards_match_without_backtracking() -> None:
    doc = policy(statement(Condition={"StringLike": {"events:source": "*a*a*a*a*a*a*b"}}))
    assert not evaluate(doc, request(source="a" * 20_000)).allowed
    assert evaluate(doc, request(source="a" * 20_000 + "b")).allowed


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("a*b", "ab", True),
        ("a*b", "axxb", True),
        ("a*b", "axxbc", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*?", "", False),
        ("**", "", True),
        ("*x?z*", "wxyz", True),
        ("ab*ba", "aba", False),
    ],
)
def test_string_like_wildcards(pattern: str, value: str, matches: bool) -> None:
    doc = policy(statement(Condition={"StringLike": {"events:source": pattern}}))
    assert evaluate(doc, request(source=value)).allowed is matches


# -- refusal: the PutEvents entry's ErrorCode -------------------------------------------


def code(*args: Any) -> str | None:
    refused = refusal(*args)
    return None if refused is None else refused.code


def test_refusal_is_none_when_allowed_and_access_denied_without_a_statement() -> None:
    assert code(policy(statement()), request(source="s", detail_type="d")) is None
    assert code(None, request(OWNER, source="s", detail_type="d")) is None
    assert code(None, request(source="s", detail_type="d")) == "AccessDeniedException"
    other = request(THIRD, source="s", detail_type="d")
    assert code(policy(statement()), other) == "AccessDeniedException"


def test_refusal_names_the_source_when_only_a_source_condition_stops_the_event() -> None:
    doc = policy(statement(Condition={"StringEquals": {"events:source": "shop"}}))
    assert code(doc, request(source="shop", detail_type="d")) is None
    assert code(doc, request(source="bank", detail_type="d")) == "NotAuthorizedForSourceException"
    # another account is refused for who it is, not for its source
    assert code(doc, request(THIRD, source="bank", detail_type="d")) == "AccessDeniedException"


def test_refusal_names_the_detail_type_when_only_its_condition_stops_the_event() -> None:
    doc = policy(statement(Condition={"StringLike": {"events:detail-type": "Order *"}}))
    assert code(doc, request(source="s", detail_type="Order Placed")) is None
    assert (
        code(doc, request(source="s", detail_type="Refund"))
        == "NotAuthorizedForDetailTypeException"
    )


def test_refusal_by_an_explicit_deny_on_the_source_names_the_source() -> None:
    doc = policy(
        statement(Principal="*"),
        statement(
            Sid="no-bank", Effect="Deny", Condition={"StringEquals": {"events:source": "bank"}}
        ),
    )
    assert code(doc, request(source="shop", detail_type="d")) is None
    assert code(doc, request(source="bank", detail_type="d")) == "NotAuthorizedForSourceException"


def test_refusal_when_both_conditions_fail_is_access_denied() -> None:
    doc = policy(
        statement(
            Condition={
                "StringEquals": {"events:source": "shop", "events:detail-type": "Order"},
            }
        )
    )
    assert (
        code(doc, request(source="bank", detail_type="Order")) == "NotAuthorizedForSourceException"
    )
    assert (
        code(doc, request(source="shop", detail_type="Refund"))
        == "NotAuthorizedForDetailTypeException"
    )
    assert code(doc, request(source="bank", detail_type="Refund")) == "AccessDeniedException"


def test_refusal_messages_name_the_caller_the_bus_and_the_reason() -> None:
    denied = refusal(None, request(source="s", detail_type="d"))
    assert denied is not None
    assert denied.message == (
        f"User: arn:aws:iam::{OTHER}:root is not authorized to perform: events:PutEvents on "
        f"resource: {BUS} because no resource-based policy allows the events:PutEvents action"
    )
    explicit = refusal(policy(statement(Effect="Deny")), request(source="s", detail_type="d"))
    assert explicit is not None and explicit.message.endswith(
        "with an explicit deny in a resource-based policy"
    )
    doc = policy(statement(Condition={"StringEquals": {"events:source": "shop"}}))
    by_source = refusal(doc, request(source="bank", detail_type="d"))
    assert by_source is not None and "with source bank" in by_source.message
