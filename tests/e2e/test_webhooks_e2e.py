"""Signed webhooks and HttpParameters through a real ``eventyard serve``.

boto3 creates the rules and webhook targets as an EventBridge user would; the eventyard
client sets the signing secrets (eventyard's own operations); a local HTTP receiver
checks every delivery with :func:`eventyard.webhooks.verify`, as a user's would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventyard import Client, webhooks
from eventyard.errors import EventyardError, ResourceNotFound, ValidationError
from eventyard.errors import WebhookVerificationError as Refused
from eventyard.testing import ServerProcess
from tests.e2e.conftest import E2E_SETTINGS, client, deliveries_idle
from tests.helpers import DEFAULT_TIMEOUT, poll_until


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """A local webhook receiver: records each request, answers the next status."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def got(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Request]:
        def arrived() -> bool:
            with self.lock:
                return len(self.requests) >= count

        poll_until(arrived, timeout, what=f"{count} requests")
        with self.lock:
            return list(self.requests)


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with made.lock:
                made.requests.append(Request(self.path, dict(self.headers.items()), body))
                status = made.statuses.pop(0) if made.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    made.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield made
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that do not restart it; each uses its own rule."""
    with ServerProcess(tmp_path_factory.mktemp("webhooks-e2e"), env=E2E_SETTINGS) as process:
        yield process


def _rule(events: Any, name: str, target: dict[str, Any]) -> None:
    events.put_rule(Name=name, EventPattern=json.dumps({"detail-type": [name]}))
    answer = events.put_targets(Rule=name, Targets=[target])
    assert answer["FailedEntryCount"] == 0


def _put(events: Any, name: str, detail: dict[str, Any]) -> str:
    answer = events.put_events(
        Entries=[{"Source": "shop", "DetailType": name, "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0
    event_id: str = answer["Entries"][0]["EventId"]
    return event_id


def test_a_signed_webhook_verifies_at_the_receiver_and_its_secret_is_never_listed(
    server: ServerProcess, hook: Hook
) -> None:
    events = client("events", server.url)
    _rule(events, "signed", {"Id": "hook", "Arn": hook.url + "/signed"})
    with Client(server.url) as eventyard:
        made = eventyard.put_signing_secret("signed", "hook")
        described = eventyard.describe_signing("signed", "hook")
    secret = made["Secret"]
    assert secret.startswith("whsec_") and made["SecretCount"] == 1
    assert described == {"Signed": True, "Secrets": [{"CreationTime": made["CreationTime"]}]}

    event_id = _put(events, "signed", {"n": 1})
    [request] = hook.got(1)
    webhooks.verify(request.body, request.headers, secret)
    assert request.headers["webhook-id"] == event_id
    with pytest.raises(Refused) as caught:
        webhooks.verify(request.body, request.headers, "whsec_" + "QUJD" * 8)
    assert caught.value.reason == "NO_MATCHING_SIGNATURE"
    # the target reads back exactly as it was put: no secret, no eventyard member
    [target] = events.list_targets_by_rule(Rule="signed")["Targets"]
    assert target == {"Id": "hook", "Arn": hook.url + "/signed"}
    assert secret not in json.dumps(described)
    deliveries_idle(server)


def test_retries_keep_the_id_and_sign_each_attempt(server: ServerProcess, hook: Hook) -> None:
    events = client("events", server.url)
    _rule(events, "retried", {"Id": "hook", "Arn": hook.url + "/retried"})
    with Client(server.url) as eventyard:
        secret = eventyard.put_signing_secret("retried", "hook")["Secret"]
    hook.statuses = [503, 500]
    event_id = _put(events, "retried", {"n": 2})
    requests = hook.got(3)
    assert [r.headers["X-Eventyard-Attempt"] for r in requests] == ["1", "2", "3"]
    for request in requests:
        assert request.headers["webhook-id"] == event_id
        webhooks.verify(request.body, request.headers, secret)
    deliveries_idle(server)


def test_rotation_signs_with_both_secrets_until_the_old_one_is_retired(
    server: ServerProcess, hook: Hook
) -> None:
    events = client("events", server.url)
    _rule(events, "rotated", {"Id": "hook", "Arn": hook.url + "/rotated"})
    with Client(server.url) as eventyard:
        old = eventyard.put_signing_secret("rotated", "hook")["Secret"]
        chosen = "whsec_" + "QUJD" * 8  # a secret the user brings: 24 bytes
        rotated = eventyard.put_signing_secret("rotated", "hook", secret=chosen)
        assert (rotated["Secret"], rotated["SecretCount"]) == (chosen, 2)
        _put(events, "rotated", {"n": 3})
        [during] = hook.got(1)
        # receivers that still know only the old secret, or already only the new one
        webhooks.verify(during.body, during.headers, old)
        webhooks.verify(during.body, during.headers, chosen)
        assert len(during.headers["webhook-signature"].split(" ")) == 2

        assert eventyard.delete_signing_secret("rotated", "hook", previous=True) == 1
        _put(events, "rotated", {"n": 4})
        after = hook.got(2)[1]
        webhooks.verify(after.body, after.headers, chosen)
        with pytest.raises(Refused):
            webhooks.verify(after.body, after.headers, old)

        # a third secret with --replace: only it signs
        third = eventyard.put_signing_secret("rotated", "hook", keep_previous=False)
        assert third["SecretCount"] == 1
        assert eventyard.delete_signing_secret("rotated", "hook") == 0
        assert eventyard.describe_signing("rotated", "hook") == {"Signed": False, "Secrets": []}
    _put(events, "rotated", {"n": 5})
    unsigned = hook.got(3)[2]
    assert "webhook-signature" not in {k.lower() for k in unsigned.headers}
    deliveries_idle(server)


def test_the_secret_follows_the_target(server: ServerProcess, hook: Hook) -> None:
    events = client("events", server.url)
    _rule(events, "lifecycle", {"Id": "hook", "Arn": hook.url + "/one"})
    with Client(server.url) as eventyard:
        secret = eventyard.put_signing_secret("lifecycle", "hook")["Secret"]
        # PutTargets again with the same Id (boto3, which knows nothing of secrets):
        # the webhook keeps signing
        events.put_targets(Rule="lifecycle", Targets=[{"Id": "hook", "Arn": hook.url + "/two"}])
        assert eventyard.describe_signing("lifecycle", "hook")["Signed"]
        _put(events, "lifecycle", {"n": 6})
        [request] = hook.got(1)
        assert request.path == "/two"
        webhooks.verify(request.body, request.headers, secret)
        # the member that holds secrets cannot be written through PutTargets
        with pytest.raises(ValidationError, match="eventyard:Signing is kept by eventyard"):
            eventyard.put_targets(
                "lifecycle",
                [{"Id": "x", "Arn": hook.url + "/x", "eventyard:Signing": {"Secrets": []}}],
            )
        # only webhooks sign; a removed target's secret is gone with it
        queue = client("sqs", server.url).create_queue(QueueName="lifecycle-q")["QueueUrl"]
        arn = "arn:aws:sqs:us-east-1:111111111111:lifecycle-q"
        assert queue
        events.put_targets(Rule="lifecycle", Targets=[{"Id": "q", "Arn": arn}])
        with pytest.raises(ValidationError, match="not an HTTP target"):
            eventyard.put_signing_secret("lifecycle", "q")
        with pytest.raises(ValidationError, match="holds 3"):
            eventyard.put_signing_secret("lifecycle", "hook", secret="whsec_QUJD")
        events.remove_targets(Rule="lifecycle", Ids=["hook"])
        with pytest.raises(ResourceNotFound, match="Target hook does not exist"):
            eventyard.describe_signing("lifecycle", "hook")
        with pytest.raises(ResourceNotFound, match="Rule nope does not exist"):
            eventyard.put_signing_secret("nope", "hook")
    deliveries_idle(server)


def test_http_parameters_shape_each_request(server: ServerProcess, hook: Hook) -> None:
    events = client("events", server.url)
    _rule(
        events,
        "shaped",
        {
            "Id": "hook",
            "Arn": hook.url + "/tenants/*/orders/*",
            "InputPath": "$.detail.order",
            "HttpParameters": {
                "PathParameterValues": ["$.detail.tenant", "$.detail.order.id"],
                "HeaderParameters": {"X-Api-Key": "static-key", "X-Region": "$.region"},
                "QueryStringParameters": {"source": "$.source", "missing": "$.detail.nope"},
            },
        },
    )
    [listed] = events.list_targets_by_rule(Rule="shaped")["Targets"]
    assert listed["HttpParameters"]["PathParameterValues"] == [
        "$.detail.tenant",
        "$.detail.order.id",
    ]
    _put(events, "shaped", {"tenant": "acme/eu", "order": {"id": 17, "total": 3}})
    [request] = hook.got(1)
    assert request.path == "/tenants/acme%2Feu/orders/17?source=shop"
    assert request.headers["X-Api-Key"] == "static-key"
    assert request.headers["X-Region"] == "us-east-1"
    assert json.loads(request.body) == {"id": 17, "total": 3}
    deliveries_idle(server)


def test_a_parameter_that_cannot_apply_dead_letters_the_event(
    server: ServerProcess, hook: Hook
) -> None:
    events, sqs = client("events", server.url), client("sqs", server.url)
    dlq = sqs.create_queue(QueueName="shaped-dlq")["QueueUrl"]
    _rule(
        events,
        "unshapeable",
        {
            "Id": "hook",
            "Arn": hook.url + "/t/*",
            "HttpParameters": {"PathParameterValues": ["$.detail.tenant"]},
            "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:111111111111:shaped-dlq"},
        },
    )
    _put(events, "unshapeable", {"no": "tenant"})
    messages: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        got = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
        return bool(messages)

    poll_until(dead_lettered, DEFAULT_TIMEOUT, what="a dead letter")
    attributes = messages[0]["MessageAttributes"]
    assert attributes["ERROR_CODE"]["StringValue"] == "INVALID_PARAMETER"
    assert "selects nothing" in attributes["ERROR_MESSAGE"]["StringValue"]
    assert hook.requests == []
    deliveries_idle(server)


@pytest.mark.parametrize(
    ("parameters", "arn_path", "message"),
    [
        (
            {"HeaderParameters": {"bad key": "v"}},
            "/",
            "1 validation error detected: Value '{bad key=v}' at "
            "'targets.1.member.httpParameters.headerParameters' failed to satisfy constraint: "
            "Map keys must satisfy constraint: [Member must satisfy regular expression "
            "pattern: ^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$]",
        ),
        (
            {"PathParameterValues": ["a", "b"]},
            "/one/*",
            "Target hook: the URL has 1 path wildcard(s) (*) but "
            "HttpParameters.PathParameterValues has 2 value(s); each value fills one "
            "wildcard, in order.",
        ),
        (
            {"HeaderParameters": {"webhook-signature": "forged"}},
            "/",
            "Target hook: HttpParameters.HeaderParameters may not set webhook-signature: "
            "eventyard sets it on every delivery.",
        ),
    ],
)
def test_put_targets_refuses_bad_http_parameters(
    server: ServerProcess, parameters: dict[str, Any], arn_path: str, message: str
) -> None:
    events = client("events", server.url)
    events.put_rule(Name="refused", EventPattern=json.dumps({"source": ["x"]}))
    with pytest.raises(ClientError) as caught:
        events.put_targets(
            Rule="refused",
            Targets=[
                {"Id": "hook", "Arn": "http://127.0.0.1:9" + arn_path, "HttpParameters": parameters}
            ],
        )
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("ValidationException", message)


def test_secrets_are_sealed_at_rest_and_a_wrong_master_key_stops_the_start(
    server_factory: Callable[..., ServerProcess], hook: Hook, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = server_factory(data)
    events = client("events", first.url)
    _rule(events, "sealed", {"Id": "hook", "Arn": hook.url + "/sealed"})
    with Client(first.url) as eventyard:
        secret = eventyard.put_signing_secret("sealed", "hook")["Secret"]
    key = webhooks.decode_secret(secret)
    first.stop()
    for file in data.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert secret.encode() not in content, file
            assert secret.removeprefix("whsec_").encode() not in content, file
            assert key not in content, file

    # the same master key (beside the database): the secret still signs after a restart
    second = server_factory(data)
    _put(client("events", second.url), "sealed", {"n": 7})
    [request] = hook.got(1)
    webhooks.verify(request.body, request.headers, secret)
    second.stop()

    # another master key: the start fails and says why, instead of failing every delivery
    other = "A" * 43 + "="
    with pytest.raises(EventyardError):
        server_factory(data, EVENTYARD_MASTER_KEY=other)
    log = (data / "server.log").read_text()
    assert "The secret of webhook-secret:default/sealed/hook was encrypted with master" in log

    # no master key at all: not a new one (which would open nothing), a refusal
    [key_file] = data.rglob("master.key")
    key_file.rename(tmp_path / "master.key.aside")
    with pytest.raises(EventyardError):
        server_factory(data)
    assert (
        "the store has webhook signing secrets but the master key file"
        in (data / "server.log").read_text()
    )
    assert not key_file.exists()
