"""API destinations end to end: boto3 creates a connection, a destination and a rule on a
real ``eventyard serve``, and a local HTTP API receives the calls.

The local API is both the OAuth authorization endpoint (``POST /token``, numbered
tokens, counted) and the destination (``/hook/...``, each call recorded with the time
it arrived). The rate limit is checked as an upper bound on the rate measured from the
API's own timestamps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from eventyard.testing import ServerProcess
from tests.e2e.conftest import client
from tests.helpers import poll_until

SECRET = "e2e-client-secret-4711"


@dataclass
class LocalApi:
    url: str = ""
    token_status: int = 200
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls)


@pytest.fixture
def local_api() -> Iterator[LocalApi]:
    api = LocalApi()

    class Handler(BaseHTTPRequestHandler):
        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/token":
                with api.lock:
                    api.token_requests.append(
                        {"authorization": self.headers.get("Authorization"), "form": body}
                    )
                    issued = f"tok-{len(api.token_requests)}"
                answer = json.dumps({"access_token": issued, "expires_in": 3600}).encode()
                if api.token_status != 200:
                    answer = b"invalid_client"
                self.send_response(api.token_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            parts = urlsplit(self.path)
            with api.lock:
                api.calls.append(
                    {
                        "at": time.monotonic(),
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "headers": dict(self.headers.items()),
                        "body": json.loads(body),
                    }
                )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield api
    server.shutdown()
    server.server_close()


def test_boto3_connection_destination_and_rule_call_the_api_with_oauth_within_the_rate_limit(
    server_factory: Callable[..., ServerProcess], local_api: LocalApi
) -> None:
    server = server_factory(EVENTYARD_OUTBOUND_ALLOW="127.0.0.1")
    events = client("events", server.url)
    connection = events.create_connection(
        Name="alerts-oauth",
        AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
        AuthParameters={
            "OAuthParameters": {
                "AuthorizationEndpoint": f"{local_api.url}/token",
                "HttpMethod": "POST",
                "ClientParameters": {"ClientID": "eventyard", "ClientSecret": SECRET},
            },
            "InvocationHttpParameters": {
                "HeaderParameters": [{"Key": "X-Source", "Value": "eventyard"}]
            },
        },
    )
    assert connection["ConnectionState"] == "AUTHORIZING"
    rate = 5
    destination = events.create_api_destination(
        Name="chat-webhook",
        ConnectionArn=connection["ConnectionArn"],
        InvocationEndpoint=f"{local_api.url}/hook/*/messages",
        HttpMethod="POST",
        InvocationRateLimitPerSecond=rate,
    )
    assert destination["ApiDestinationState"] == "INACTIVE"
    events.put_rule(Name="alerts", EventPattern=json.dumps({"source": ["monitoring"]}))
    events.put_targets(
        Rule="alerts",
        Targets=[
            {
                "Id": "chat",
                "Arn": destination["ApiDestinationArn"],
                "RoleArn": "arn:aws:iam::111111111111:role/eventbridge-invoke",
                "HttpParameters": {
                    "PathParameterValues": ["ops-channel"],
                    "HeaderParameters": {"X-Team": "ops"},
                    "QueryStringParameters": {"priority": "high"},
                },
                "InputPath": "$.detail",
            }
        ],
    )
    count = 12
    for start in range(0, count, 4):
        answer = events.put_events(
            Entries=[
                {"Source": "monitoring", "DetailType": "Alarm", "Detail": json.dumps({"n": n})}
                for n in range(start, start + 4)
            ]
        )
        assert answer["FailedEntryCount"] == 0

    calls = poll_until(lambda: len(local_api.seen()) >= count and local_api.seen())
    assert sorted(c["body"]["n"] for c in calls) == list(range(count))
    assert {c["path"] for c in calls} == {"/hook/ops-channel/messages"}
    assert all(c["query"] == {"priority": ["high"]} for c in calls)
    assert {c["headers"]["Authorization"] for c in calls} == {"Bearer tok-1"}
    assert {c["headers"]["X-Team"] for c in calls} == {"ops"}
    assert {c["headers"]["X-Source"] for c in calls} == {"eventyard"}
    assert len(local_api.token_requests) == 1
    times = sorted(c["at"] for c in calls)
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert measured <= rate * 1.15, f"{measured:.1f} calls/s through a limit of {rate}/s"

    described = events.describe_connection(Name="alerts-oauth")
    assert described["ConnectionState"] == "AUTHORIZED"
    assert "ClientSecret" not in described["AuthParameters"]["OAuthParameters"]["ClientParameters"]
    assert events.describe_api_destination(Name="chat-webhook")["ApiDestinationState"] == "ACTIVE"
    # the secret is nowhere on disk in plain text
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_refusing_authorization_endpoint_dead_letters_with_the_reason(
    server_factory: Callable[..., ServerProcess], local_api: LocalApi
) -> None:
    local_api.token_status = 401
    server = server_factory(EVENTYARD_OUTBOUND_ALLOW="127.0.0.1")
    events, sqs = client("events", server.url), client("sqs", server.url)
    dlq_url = sqs.create_queue(QueueName="alerts-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    connection = events.create_connection(
        Name="refused",
        AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
        AuthParameters={
            "OAuthParameters": {
                "AuthorizationEndpoint": f"{local_api.url}/token",
                "HttpMethod": "POST",
                "ClientParameters": {"ClientID": "eventyard", "ClientSecret": SECRET},
            }
        },
    )
    destination = events.create_api_destination(
        Name="never",
        ConnectionArn=connection["ConnectionArn"],
        InvocationEndpoint=f"{local_api.url}/hook/never",
        HttpMethod="PUT",
    )
    events.put_rule(Name="alerts", EventPattern=json.dumps({"source": ["monitoring"]}))
    events.put_targets(
        Rule="alerts",
        Targets=[
            {
                "Id": "never",
                "Arn": destination["ApiDestinationArn"],
                "RetryPolicy": {"MaximumRetryAttempts": 2},
                "DeadLetterConfig": {"Arn": dlq_arn},
            }
        ],
    )
    events.put_events(Entries=[{"Source": "monitoring", "DetailType": "Alarm", "Detail": "{}"}])

    def dead_letter() -> Any:
        got = sqs.receive_message(
            QueueUrl=dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
        )
        return got.get("Messages")

    (message,) = poll_until(dead_letter, what="the dead letter")
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "CONNECTION_DEAUTHORIZED"
    assert "HTTP 401: invalid_client" in attributes["ERROR_MESSAGE"]
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert local_api.seen() == []
    assert len(local_api.token_requests) == 1  # deauthorized: not asked again
    described = events.describe_connection(Name="refused")
    assert described["ConnectionState"] == "DEAUTHORIZED"
    assert "HTTP 401" in described["StateReason"]
