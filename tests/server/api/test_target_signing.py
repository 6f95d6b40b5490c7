"""The signing-secret operations of the control plane, over a real store.

What is stored (sealed, never plaintext), what is answered (never a secret but once),
how PutTargets keeps or drops a target's secrets, and the parameter checks.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from eventyard.errors import ResourceNotFound, ServiceError, ValidationError
from eventyard.server.api.aws import EventsApi
from eventyard.server.auth.masterkey import MasterKey
from eventyard.server.catalog import SIGNING, BusDoc, Rule
from eventyard.server.config import Settings
from eventyard.server.delivery.signing import unseal_secrets
from eventyard.server.store.sqlite import SQLiteStore

ACCOUNT = "111111111111"
HOOK = "http://127.0.0.1:9/hook"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:q"
TARGET_KEY = "default/r/hook"


class Router:
    """The router hooks the control plane calls, with the master key it seals with."""

    def __init__(self) -> None:
        self.master = MasterKey.generate()
        self.rules: dict[str, Rule | None] = {}

    async def put_events(
        self, params: dict[str, Any], account: str | None = None
    ) -> dict[str, Any]:
        raise AssertionError("not used")

    def rule_changed(self, key: str, rule: Rule | None) -> None:
        self.rules[key] = rule

    def bus_changed(self, name: str, bus: BusDoc | None) -> None:
        pass

    def resource_changed(
        self, account: str, resource_type: str, name: str, arn: str, change: str, **more: Any
    ) -> None:
        pass


@pytest.fixture
def router() -> Router:
    return Router()


@pytest.fixture
async def api(store: SQLiteStore, router: Router) -> EventsApi:
    events = EventsApi(store, Settings(account_id=ACCOUNT, outbound_allow="127.0.0.0/8"), router)
    await events.call("PutRule", {"Name": "r", "EventPattern": '{"source": ["s"]}'})
    await events.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "hook", "Arn": HOOK}]})
    return events


async def _stored_target(store: SQLiteStore, target_id: str = "hook") -> dict[str, Any]:
    entry = await store.catalog_get("rule", "default/r")
    assert entry is not None
    [target] = [t for t in entry.doc["Targets"] if t["Id"] == target_id]
    return dict(target)


async def test_secrets_are_stored_sealed_and_reach_the_router_newest_first(
    api: EventsApi, store: SQLiteStore, router: Router
) -> None:
    made = [
        await api.call("PutTargetSigningSecret", {"Rule": "r", "TargetId": "hook"})
        for _ in range(3)
    ]
    assert [m["SecretCount"] for m in made] == [1, 2, 2]  # at most two at once
    stored = await _stored_target(store)
    text = json.dumps(stored)
    assert all(m["Secret"] not in text for m in made)
    assert all(m["Secret"].removeprefix("whsec_") not in text for m in made)
    records = stored[SIGNING]["Secrets"]
    assert [r["CreationTime"] for r in records] == [
        made[2]["CreationTime"],
        made[1]["CreationTime"],
    ]

    rule = router.rules["default/r"]
    assert rule is not None
    [target] = rule.targets
    keys = unseal_secrets(router.master, TARGET_KEY, target.signing)
    assert keys == tuple(base64.b64decode(m["Secret"][6:]) for m in (made[2], made[1]))


async def test_no_answer_but_the_first_holds_a_secret(api: EventsApi) -> None:
    made = await api.call("PutTargetSigningSecret", {"Rule": "r", "TargetId": "hook"})
    listed = await api.call("ListTargetsByRule", {"Rule": "r"})
    described = await api.call("DescribeTargetSigning", {"Rule": "r", "TargetId": "hook"})
    assert listed["Targets"] == [{"Id": "hook", "Arn": HOOK}]
    assert described == {"Signed": True, "Secrets": [{"CreationTime": made["CreationTime"]}]}
    for answer in (listed, described):
        assert made["Secret"].removeprefix("whsec_") not in json.dumps(answer)


async def test_put_targets_keeps_a_webhooks_secrets_and_drops_them_for_another_kind(
    api: EventsApi, store: SQLiteStore
) -> None:
    await api.call("PutTargetSigningSecret", {"Rule": "r", "TargetId": "hook"})
    await api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "hook", "Arn": HOOK + "/v2"}]})
    assert SIGNING in await _stored_target(store)
    await api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "hook", "Arn": QUEUE}]})
    assert SIGNING not in await _stored_target(store)
    described = await api.call("DescribeTargetSigning", {"Rule": "r", "TargetId": "hook"})
    assert described == {"Signed": False, "Secrets": []}


async def test_retire_and_delete(api: EventsApi, store: SQLiteStore) -> None:
    params = {"Rule": "r", "TargetId": "hook"}
    await api.call("PutTargetSigningSecret", params)
    newest = await api.call("PutTargetSigningSecret", params)
    assert await api.call("DeleteTargetSigningSecret", {**params, "Previous": True}) == {
        "SecretCount": 1
    }
    [kept] = (await _stored_target(store))[SIGNING]["Secrets"]
    assert kept["CreationTime"] == newest["CreationTime"]
    # retiring again changes nothing; deleting removes the member altogether
    assert await api.call("DeleteTargetSigningSecret", {**params, "Previous": True}) == {
        "SecretCount": 1
    }
    assert await api.call("DeleteTargetSigningSecret", params) == {"SecretCount": 0}
    assert SIGNING not in await _stored_target(store)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (
            {"Rule": "r"},
            ValidationError,
            "1 validation error detected: Value null at 'targetId' failed to satisfy "
            "constraint: Member must not be null",
        ),
        (
            {"Rule": "r", "TargetId": "bad id"},
            ValidationError,
            "1 validation error detected: Value 'bad id' at 'targetId' failed to satisfy "
            r"constraint: Member must satisfy regular expression pattern: [\.\-_A-Za-z0-9]+",
        ),
        (
            {"Rule": "r", "TargetId": "hook", "KeepPrevious": "yes"},
            ValidationError,
            "Invalid type for parameter KeepPrevious: expected a boolean, got a string.",
        ),
        (
            {"Rule": "r", "TargetId": "hook", "Secret": "plain-text-secret"},
            ValidationError,
            "A signing secret starts with whsec_ followed by base64 text (omit it to have "
            "one generated).",
        ),
        (
            {"Rule": "r", "TargetId": "nope"},
            ResourceNotFound,
            "Target nope does not exist on rule r.",
        ),
        (
            {"Rule": "nope", "TargetId": "hook"},
            ResourceNotFound,
            "Rule nope does not exist on EventBus default.",
        ),
    ],
)
async def test_parameters_are_checked(
    api: EventsApi, params: dict[str, Any], error: type[ServiceError], message: str
) -> None:
    with pytest.raises(error) as caught:
        await api.call("PutTargetSigningSecret", params)
    assert caught.value.message == message


async def test_a_queue_target_cannot_sign_nor_carry_the_member(api: EventsApi) -> None:
    await api.call("PutTargets", {"Rule": "r", "Targets": [{"Id": "q", "Arn": QUEUE}]})
    with pytest.raises(ValidationError, match="Target q of rule r is not an HTTP target"):
        await api.call("PutTargetSigningSecret", {"Rule": "r", "TargetId": "q"})
    forged = {"Id": "f", "Arn": HOOK, SIGNING: {"Secrets": [{"Sealed": {}}]}}
    with pytest.raises(ValidationError, match=r"Parameter Targets\[0\] is not valid"):
        await api.call("PutTargets", {"Rule": "r", "Targets": [forged]})
