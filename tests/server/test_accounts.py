"""The account scoping module: internal names, ARNs, queue URLs and organizations."""

from __future__ import annotations

import pytest

from eventyard.server.accounts import (
    Accounts,
    AccountScope,
    Organizations,
    internal_name,
    owner_of,
    parse_bus_arn,
    parse_queue_arn,
    parse_rule_arn,
)
from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore, Principal
from eventyard.server.config import Settings

HOME = "111111111111"
OTHER = "222222222222"
SETTINGS = Settings(account_id=HOME, region="eu-west-1", host="127.0.0.1", port=4010)


def test_the_home_account_keeps_plain_names_and_others_get_their_id_in_front() -> None:
    assert internal_name(HOME, "orders", HOME) == "orders"
    assert internal_name(OTHER, "orders", HOME) == f"{OTHER}:orders"
    assert owner_of("orders", HOME) == (HOME, "orders")
    assert owner_of(f"{OTHER}:orders", HOME) == (OTHER, "orders")


def test_a_scope_owns_its_names_and_rule_keys_only() -> None:
    home, other = AccountScope(HOME, SETTINGS), AccountScope(OTHER, SETTINGS)
    assert home.is_home and not other.is_home
    assert home.key("orders") == "orders" and other.key("orders") == f"{OTHER}:orders"
    assert home.default_bus == "default" and other.default_bus == f"{OTHER}:default"
    for key in ("orders", "orders/r1", "default/r1/t1"):
        assert home.owns(key) and not other.owns(key)
    for key in (f"{OTHER}:orders", f"{OTHER}:orders/r1", f"{OTHER}:default/r1/t1"):
        assert other.owns(key) and not home.owns(key)
    assert not other.owns("333333333333:orders")
    assert other.name(f"{OTHER}:orders") == "orders" and home.name("orders") == "orders"
    assert other.prefix("or") == f"{OTHER}:or" and home.prefix("or") == "or"


def test_arns_and_queue_urls_name_the_scope_account() -> None:
    scope = AccountScope(OTHER, SETTINGS)
    assert scope.bus_arn("orders") == f"arn:aws:events:eu-west-1:{OTHER}:event-bus/orders"
    assert scope.rule_arn("default", "r") == f"arn:aws:events:eu-west-1:{OTHER}:rule/r"
    assert scope.rule_arn("orders", "r") == f"arn:aws:events:eu-west-1:{OTHER}:rule/orders/r"
    assert scope.queue_arn("jobs") == f"arn:aws:sqs:eu-west-1:{OTHER}:jobs"
    assert scope.queue_url("jobs") == f"http://127.0.0.1:4010/{OTHER}/jobs"
    ipv6 = AccountScope(OTHER, Settings(account_id=HOME, host="::1", port=1))
    assert ipv6.queue_url("jobs") == f"http://[::1]:1/{OTHER}/jobs"


def test_a_bus_named_by_arn_resolves_only_in_its_own_account() -> None:
    scope = AccountScope(OTHER, SETTINGS)
    own = f"arn:aws:events:eu-west-1:{OTHER}:event-bus/orders"
    foreign = f"arn:aws:events:eu-west-1:{HOME}:event-bus/orders"
    assert scope.bus_key(None) == f"{OTHER}:default"
    assert scope.bus_key("orders") == f"{OTHER}:orders"
    assert scope.bus_key(own) == f"{OTHER}:orders"
    assert scope.bus_key(foreign) is None
    assert scope.bus_key("arn:aws:events:nowhere") is None  # a malformed ARN names no bus
    assert AccountScope(HOME, SETTINGS).bus_key(foreign) == "orders"


def test_queue_arns_resolve_in_their_account_and_another_account_is_reported() -> None:
    scope = AccountScope(OTHER, SETTINGS)
    own = f"arn:aws:sqs:eu-west-1:{OTHER}:jobs"
    foreign = f"arn:aws:sqs:eu-west-1:{HOME}:jobs"
    assert scope.queue_key(own) == f"{OTHER}:jobs"
    assert scope.queue_key(foreign) is None
    assert scope.names_another_account(foreign) == HOME
    assert scope.names_another_account(own) is None
    assert scope.names_another_account(f"arn:aws:events:eu-west-1:{HOME}:event-bus/b") == HOME
    assert scope.names_another_account("https://example.com/hook") is None


def test_arn_parsers_take_apart_only_their_kind() -> None:
    bus = parse_bus_arn(f"arn:aws:events:eu-west-1:{OTHER}:event-bus/orders")
    assert bus is not None and (bus.region, bus.account, bus.name) == ("eu-west-1", OTHER, "orders")
    queue = parse_queue_arn(f"arn:aws:sqs:eu-west-1:{OTHER}:jobs")
    assert queue is not None and (queue.account, queue.name) == (OTHER, "jobs")
    rule = parse_rule_arn(f"arn:aws:events:eu-west-1:{OTHER}:rule/orders/r")
    assert rule is not None and (rule.account, rule.name) == (OTHER, "orders/r")
    assert parse_bus_arn(f"arn:aws:sqs:eu-west-1:{OTHER}:jobs") is None
    assert parse_queue_arn(f"arn:aws:events:eu-west-1:{OTHER}:event-bus/orders") is None
    assert parse_queue_arn(f"arn:aws:sqs:eu-west-1:{OTHER}:has:colon") is None


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:events:eu-west-1:{HOME}:event-bus/{OTHER}:payroll",
        f"arn:aws:events:eu-west-1:{HOME}:event-bus/payroll\n",
        f"arn:aws:events:eu-west-1:{HOME}:event-bus/",
        f"arn:aws:events:eu-west-1:{HOME}:event-bus/" + "b" * 257,
        f"arn:aws:events:eu-west-1:{HOME}:rule/{OTHER}:payroll/r",
        f"arn:aws:events:eu-west-1:{HOME}:rule/payroll/{OTHER}:r",
        f"arn:aws:events:eu-west-1:{HOME}:rule/payroll/r\n",
        f"arn:aws:events:eu-west-1:{HOME}:rule/payroll/",
        f"arn:aws:events:eu-west-1:{HOME}:rule/" + "r" * 65,
        f"arn:aws:sqs:eu-west-1:{HOME}:jobs\n",
    ],
)
def test_an_arn_whose_name_part_is_not_a_name_names_nothing(arn: str) -> None:
    # a ":" in the name once made the home account's ARN name another account's bus
    assert parse_bus_arn(arn) is None
    assert parse_rule_arn(arn) is None
    assert parse_queue_arn(arn) is None
    accounts = Accounts(SETTINGS)
    assert accounts.bus_for_arn(arn) is None
    assert accounts.queue_for_arn(arn) is None
    assert accounts.home.bus_key(arn) is None
    assert accounts.home.queue_key(arn) is None
    assert accounts.home.names_another_account(arn) is None


def test_partner_bus_names_and_rules_on_them_still_parse() -> None:
    partner = "aws.partner/example.com/123/orders"
    bus = parse_bus_arn(f"arn:aws:events:eu-west-1:{OTHER}:event-bus/{partner}")
    assert bus is not None and bus.name == partner
    rule = parse_rule_arn(f"arn:aws:events:eu-west-1:{OTHER}:rule/{partner}/r-1.x_y")
    assert rule is not None and rule.name == f"{partner}/r-1.x_y"


def test_accounts_hand_out_scopes_and_resolve_arns_of_any_account() -> None:
    accounts = Accounts(SETTINGS)
    assert accounts.scope(None) is accounts.home
    assert accounts.scope(HOME) is accounts.home
    scope = accounts.scope(Principal(OTHER, "AKIAAAAAAAAAAAAAAAAA"))
    assert scope.account == OTHER and accounts.scope(OTHER) is scope
    assert accounts.owner(f"{OTHER}:orders") is scope
    assert accounts.owner("orders") is accounts.home
    assert accounts.bus_for_arn(f"arn:aws:events:eu-west-1:{OTHER}:event-bus/b") == f"{OTHER}:b"
    assert accounts.bus_for_arn(f"arn:aws:events:eu-west-1:{HOME}:event-bus/b") == "b"
    assert accounts.queue_for_arn(f"arn:aws:sqs:eu-west-1:{OTHER}:q") == f"{OTHER}:q"
    assert accounts.queue_for_arn("https://example.com") is None
    assert accounts.bus_arn(f"{OTHER}:b") == f"arn:aws:events:eu-west-1:{OTHER}:event-bus/b"
    with pytest.raises(ValueError, match="12 digits"):
        accounts.scope("12")


async def test_organizations_come_from_account_records_then_the_home_setting() -> None:
    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.create_account(OTHER, org_id="o-aaaaaaaaaa")
    await keyring.create_account("333333333333")
    settings = Settings(account_id=HOME, org_id="o-hhhhhhhhhh")
    orgs = Organizations(settings, keyring.get_account)
    assert await orgs.org_of(OTHER) == "o-aaaaaaaaaa"
    assert await orgs.org_of("333333333333") is None
    assert await orgs.org_of("444444444444") is None
    assert await orgs.org_of(HOME) == "o-hhhhhhhhhh"
    assert await Organizations(Settings(account_id=HOME)).org_of(HOME) is None


def test_an_org_id_setting_must_look_like_an_organization() -> None:
    assert [key for key, _ in Settings(org_id="acme").problems()] == ["org_id"]
    assert not list(Settings(org_id="o-a1b2c3d4e5").problems())
