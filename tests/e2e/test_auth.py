"""Authentication end to end: real servers, boto3, the SDK, the CLI and the admin commands.

Keys are made with ``eventyard accounts create`` / ``eventyard keys create`` (the real
commands, in a subprocess), either on the data directory before the server starts or
through the running server's admin socket. Keys are for the servers' home account
(``ACCOUNT``), whose resources the single-account API serves.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from eventyard import AsyncClient, Client, Event
from eventyard.errors import ServiceError
from eventyard.server.auth import MasterKey
from eventyard.server.store.filelock import StoreLock
from eventyard.testing import ServerProcess
from tests.e2e.conftest import E2E_SETTINGS, REGION, aws, eventyard, new_key, refused
from tests.helpers import DEFAULT_TIMEOUT, poll_until

EVENTS = {"X-Amz-Target": "AWSEvents.ListEventBuses", "Content-Type": "application/x-amz-json-1.1"}
SQS = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server whose data directory got a key before it started."""
    data_dir = tmp_path_factory.mktemp("secured")
    key = new_key(data_dir)
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        yield server, key


# -- SigV4 with boto3 ----------------------------------------------------------------------


def test_boto3_with_the_right_secret_works_for_events_and_sqs(secured: Any) -> None:
    server, key = secured
    events = aws("events", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    sqs = aws("sqs", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    events.create_event_bus(Name="signed-bus")
    assert "signed-bus" in {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
    url = sqs.create_queue(QueueName="signed-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]
    answer = events.put_events(Entries=[{"Source": "shop", "DetailType": "signed", "Detail": "{}"}])
    assert answer["FailedEntryCount"] == 0


def test_a_wrong_secret_is_invalid_signature_for_events_and_signature_mismatch_for_sqs(
    secured: Any,
) -> None:
    server, key = secured
    events = aws("events", server.url, key["AccessKeyId"], "not-the-secret")
    sqs = aws("sqs", server.url, key["AccessKeyId"], "not-the-secret")
    assert refused(events.list_event_buses) == ("InvalidSignatureException", 400)
    assert refused(sqs.list_queues) == ("SignatureDoesNotMatch", 403)


def test_an_unknown_key_is_unrecognized_for_events_and_invalid_token_for_sqs(
    secured: Any,
) -> None:
    server, _ = secured
    for key_id in ("AKIAAAAAAAAAAAAAAAAA", "any"):
        events = aws("events", server.url, key_id, "any")
        sqs = aws("sqs", server.url, key_id, "any")
        assert refused(events.list_event_buses) == ("UnrecognizedClientException", 400)
        assert refused(sqs.list_queues) == ("InvalidClientTokenId", 403)


def test_a_request_signed_outside_the_clock_window_is_refused(
    secured: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, key = secured
    late = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: late)
    events = aws("events", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    sqs = aws("sqs", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError, match="Signature expired"):
        events.list_event_buses()
    assert refused(sqs.list_queues) == ("SignatureDoesNotMatch", 403)


def test_a_presigned_request_is_accepted_and_a_tampered_one_refused(secured: Any) -> None:
    server, key = secured
    host = server.url.removeprefix("http://")
    request = AWSRequest(method="POST", url=server.url + "/", headers={"Host": host})
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    SigV4QueryAuth(credentials, "events", REGION, expires=60).add_auth(request)
    answer = httpx.post(request.url, headers=EVENTS, content=b"")
    assert answer.status_code == 200, answer.text
    assert "EventBuses" in answer.json()
    tampered = request.url.replace("X-Amz-Expires=60", "X-Amz-Expires=3600")
    answer = httpx.post(tampered, headers=EVENTS, content=b"")
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"


def _scoped(key_id: str, day: str, service: str = "events") -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{day}/{REGION}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=00"
    )


@pytest.mark.parametrize(
    ("dates", "day", "code"),
    [
        ({"Date": "Fri, 31 Dec 0999 23:59:59 GMT"}, "09991231", "InvalidSignatureException"),
        ({"X-Amz-Date": "00010101T000000Z"}, "00010101", "InvalidSignatureException"),
        ({"Date": "Fri, 31 Dec 9999 23:59:59 -2359"}, "99991231", "IncompleteSignatureException"),
    ],
)
def test_dates_at_the_calendar_s_ends_are_refused_not_a_500(
    secured: Any, dates: dict[str, str], day: str, code: str
) -> None:
    # a year below 1000 and a zone overflowing year 9999 once answered 500 everywhere
    server, key = secured
    signed = {**dates, "Authorization": _scoped(key["AccessKeyId"], day)}
    answer = httpx.post(server.url + "/", headers={**EVENTS, **signed}, content=b"{}")
    assert (answer.status_code, answer.json()["__type"]) == (400, code)
    sqs = {**dates, "Authorization": _scoped(key["AccessKeyId"], day, "sqs")}
    answer = httpx.post(server.url + "/", headers={**SQS, **sqs}, content=b"{}")
    assert answer.status_code in (400, 403)
    assert answer.headers["x-amzn-query-error"].endswith(";Sender")
    for path in ("/metrics", "/v1/buses/default/tail"):
        answer = httpx.get(server.url + path, headers=signed)
        assert (answer.status_code, answer.json()["__type"]) == (401, code)


@pytest.mark.parametrize("expires", ["%C2%B2", "%D9%A3"])
def test_a_presigned_expiry_in_unicode_digits_is_incomplete_not_a_500(
    secured: Any, expires: str
) -> None:
    server, key = secured
    request = AWSRequest(method="POST", url=server.url + "/", headers={"Host": server.url[7:]})
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    SigV4QueryAuth(credentials, "events", REGION, expires=60).add_auth(request)
    url = request.url.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    answer = httpx.post(url, headers=EVENTS, content=b"")
    assert answer.status_code == 400
    assert answer.json() == {
        "__type": "IncompleteSignatureException",
        "message": "X-Amz-Expires must be non-negative",
    }


def test_a_signature_scoped_to_one_api_does_not_open_the_other(secured: Any) -> None:
    server, key = secured
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    for scope_service, headers in (("sqs", EVENTS), ("events", SQS)):
        request = AWSRequest(
            method="POST",
            url=server.url + "/",
            data=b"{}",
            headers={**headers, "Host": server.url.removeprefix("http://")},
        )
        SigV4Auth(credentials, scope_service, REGION).add_auth(request)
        answer = httpx.post(server.url + "/", headers=dict(request.headers.items()), content=b"{}")
        wanted = "sqs" if headers is SQS else "events"
        assert answer.json()["message"] == (
            f"Credential should be scoped to correct service: '{wanted}'."
        )
        if headers is SQS:
            assert answer.status_code == 403
            assert answer.headers["x-amzn-query-error"] == "SignatureDoesNotMatch;Sender"
        else:
            assert (answer.status_code, answer.json()["__type"]) == (
                400,
                "InvalidSignatureException",
            )


def test_the_scheduler_api_takes_signatures_scoped_to_scheduler_only(secured: Any) -> None:
    server, key = secured
    scheduler = aws("scheduler", server.url, key["AccessKeyId"], key["SecretAccessKey"])
    arn = scheduler.create_schedule_group(Name="signed", Tags=[{"Key": "k", "Value": "v"}])[
        "ScheduleGroupArn"
    ]
    # an ARN in the path (percent-encoded) verifies as botocore signed it
    assert scheduler.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    wrong = aws("scheduler", server.url, key["AccessKeyId"], "not-the-secret")
    assert refused(wrong.list_schedules) == ("InvalidSignatureException", 400)
    unknown = aws("scheduler", server.url, "AKIAAAAAAAAAAAAAAAAA", "any")
    assert refused(unknown.list_schedules) == ("UnrecognizedClientException", 400)
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    request = AWSRequest(
        method="GET",
        url=server.url + "/schedules",
        headers={"Host": server.url.removeprefix("http://")},
    )
    SigV4Auth(credentials, "events", REGION).add_auth(request)
    answer = httpx.get(server.url + "/schedules", headers=dict(request.headers.items()))
    assert (answer.status_code, answer.headers["x-amzn-errortype"]) == (
        400,
        "InvalidSignatureException",
    )
    assert answer.json()["Message"] == (
        "Credential should be scoped to correct service: 'scheduler'."
    )
    scheduler.delete_schedule_group(Name="signed")


# -- refused before the body ----------------------------------------------------------------


def _headers_only(server: ServerProcess, headers: dict[str, str], length: int) -> socket.socket:
    """A connection that sent a request's headers announcing ``length`` body bytes, and
    none of the body."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=DEFAULT_TIMEOUT)
    lines = [
        f"{name}: {value}" for name, value in {**headers, "Content-Length": str(length)}.items()
    ]
    conn.sendall(("POST / HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return conn


def _answer(conn: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The status, headers and JSON body answered on ``conn`` (read until it closes)."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({}, "MissingAuthenticationTokenException"),
        ({"Authorization": "Bearer eyk_forged"}, "UnrecognizedClientException"),
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=x"}, "IncompleteSignatureException"),
        ("unknown-key", "UnrecognizedClientException"),
        ("skewed", "InvalidSignatureException"),
        ("wrong-scope", "InvalidSignatureException"),
    ],
)
def test_a_request_that_cannot_verify_is_answered_before_its_body_is_sent(
    secured: Any, credentials: Any, code: str
) -> None:
    server, key = secured
    host = server.url.removeprefix("http://")
    now = datetime.datetime.now(datetime.UTC)
    if isinstance(credentials, str):
        key_id = "AKIAUNKNOWNUNKNOWN00" if credentials == "unknown-key" else key["AccessKeyId"]
        when = now - datetime.timedelta(minutes=10) if credentials == "skewed" else now
        region = "eu-west-3" if credentials == "wrong-scope" else REGION
        credentials = {
            "X-Amz-Date": when.strftime("%Y%m%dT%H%M%SZ"),
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={key_id}/{when:%Y%m%d}/{region}/events/"
                "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
            ),
        }
    conn = _headers_only(server, {"Host": host, **EVENTS, **credentials}, 4 * 1024 * 1024 - 1)
    with conn:
        status, headers, body = _answer(conn)  # not one byte of the body was sent
    assert (status, body["__type"]) == (400, code)
    assert headers["connection"] == "close"


def test_a_signed_request_still_needs_its_body_verified(secured: Any) -> None:
    # passing the checks before the body is not being authenticated: the signature is
    # over the body, which is checked once it is in
    server, key = secured
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=b"{}",
        headers={**EVENTS, "Host": server.url.removeprefix("http://")},
    )
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "events", REGION).add_auth(
        request
    )
    headers = dict(request.headers.items())
    assert httpx.post(server.url + "/", headers=headers, content=b"{}").status_code == 200
    tampered = httpx.post(server.url + "/", headers=headers, content=b'{"Limit":1}')
    assert (tampered.status_code, tampered.json()["__type"]) == (400, "InvalidSignatureException")


def test_past_the_body_bytes_in_flight_a_request_is_throttled_before_its_body(
    tmp_path: Path,
) -> None:
    env = {**E2E_SETTINGS, "EVENTYARD_MAX_BODY_BYTES_IN_FLIGHT": str(1024 * 1024)}
    with ServerProcess(tmp_path / "budget", env=env) as server:  # dev mode: all admitted
        host = server.url.removeprefix("http://")
        holder = _headers_only(server, {"Host": host, **EVENTS}, 700 * 1024)
        with holder:
            holder.sendall(b" " * 1024)  # a slow client: its 700 KiB are reserved

            def throttled() -> bool:
                # until the holder's bytes are reserved, a probe is admitted and waits for
                # its body: it then hangs up, giving its bytes back, and tries again
                with _headers_only(server, {"Host": host, **EVENTS}, 700 * 1024) as conn:
                    conn.settimeout(1.0)
                    try:
                        status, _, body = _answer(conn)
                    except TimeoutError:
                        return False
                return status == 503 and body["__type"] == "ThrottlingException"

            poll_until(throttled, what="a second large request to be throttled")
            with _headers_only(server, {"Host": host, **SQS}, 700 * 1024) as conn:
                status, headers, body = _answer(conn)
            assert (status, headers["x-amzn-query-error"]) == (503, "RequestThrottled;Receiver")
            assert body["__type"] == "com.amazonaws.sqs#RequestThrottled"
            # small requests still fit beside it
            small = httpx.post(server.url + "/", headers=EVENTS, content=b"{}")
            assert small.status_code == 200
        # the slow client left: its bytes are given back
        poll_until(
            lambda: (
                httpx.post(
                    server.url + "/", headers=EVENTS, content=b"{" + b" " * (700 * 1024) + b"}"
                ).status_code
                == 200
            ),
            what="the budget to be given back",
        )


# -- Host ----------------------------------------------------------------------------------


def test_a_rebinding_host_is_refused_on_every_endpoint_but_health(secured: Any) -> None:
    server, key = secured
    evil = {"Host": "rebind.attacker.example"}
    events = httpx.post(server.url + "/", headers={**EVENTS, **evil}, content=b"{}")
    assert events.status_code == 403
    assert events.json()["__type"] == "AccessDeniedException"
    sqs = httpx.post(server.url + "/", headers={**SQS, **evil}, content=b"{}")
    assert sqs.status_code == 403
    assert sqs.headers["x-amzn-query-error"] == "AccessDenied;Sender"
    bearer = {"Authorization": f"Bearer {key['BearerToken']}"}
    assert httpx.get(server.url + "/metrics", headers={**evil, **bearer}).status_code == 421
    tail = httpx.get(server.url + "/v1/buses/default/tail", headers={**evil, **bearer})
    assert tail.status_code == 421
    assert httpx.get(server.url + "/livez", headers=evil).status_code == 200
    assert httpx.get(server.url + "/readyz", headers=evil).status_code == 200
    local = server.url.replace("127.0.0.1", "localhost")
    assert httpx.get(local + "/metrics", headers=bearer).status_code == 200


def test_a_rebinding_host_is_refused_in_dev_mode_too(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "dev", env=E2E_SETTINGS) as server:
        headers = {**EVENTS, "Host": "rebind.attacker.example:4010"}
        answer = httpx.post(server.url + "/", headers=headers, content=b"{}")
        assert answer.status_code == 403
        assert httpx.post(server.url + "/", headers=EVENTS, content=b"{}").status_code == 200


def test_allowed_hosts_admits_a_proxy_s_name(tmp_path: Path) -> None:
    env = {**E2E_SETTINGS, "EVENTYARD_ALLOWED_HOSTS": "events.internal.example"}
    with ServerProcess(tmp_path / "proxied", env=env) as server:
        ok = {**EVENTS, "Host": "events.internal.example"}
        assert httpx.post(server.url + "/", headers=ok, content=b"{}").status_code == 200
        other = {**EVENTS, "Host": "other.internal.example"}
        assert httpx.post(server.url + "/", headers=other, content=b"{}").status_code == 403


# -- native endpoints, SDK and CLI ------------------------------------------------------------


def test_native_endpoints_take_a_bearer_token_or_sigv4(secured: Any) -> None:
    server, key = secured
    anonymous = httpx.get(server.url + "/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["__type"] == "MissingAuthenticationTokenException"
    forged = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer eyk_nope"})
    assert forged.status_code == 401
    bearer = {"Authorization": f"Bearer {key['BearerToken']}"}
    assert httpx.get(server.url + "/metrics", headers=bearer).status_code == 200
    request = AWSRequest(
        method="GET",
        url=server.url + "/metrics",
        headers={"Host": server.url.removeprefix("http://")},
    )
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "events", REGION).add_auth(
        request
    )
    signed = httpx.get(server.url + "/metrics", headers=dict(request.headers.items()))
    assert signed.status_code == 200
    assert "eventyard" in signed.text


def test_the_sdk_sends_its_token_and_fails_without_one(
    secured: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, key = secured
    monkeypatch.delenv("EVENTYARD_TOKEN", raising=False)
    with Client(server.url, token=key["BearerToken"], retries=0) as client:
        client.put_events(Event(source="sdk", detail_type="token", detail={}))
    with Client(server.url, retries=0) as client, pytest.raises(ServiceError) as caught:
        client.create_queue("unauthenticated")
    assert caught.value.code == "MissingAuthenticationToken"  # SQS's word for it
    monkeypatch.setenv("EVENTYARD_TOKEN", key["BearerToken"])
    with Client(server.url, retries=0) as client:
        assert client.create_queue("from-env-token")
    assert key["BearerToken"] not in repr(Client(server.url))


async def test_the_async_sdk_sends_its_token(secured: Any) -> None:
    server, key = secured
    async with AsyncClient(server.url, token=key["BearerToken"], retries=0) as client:
        await client.put_events(Event(source="sdk", detail_type="async-token", detail={}))
    async with AsyncClient(server.url, token="eyk_wrong", retries=0) as client:
        with pytest.raises(ServiceError) as caught:
            await client.create_queue("refused")
    assert caught.value.code == "InvalidClientTokenId"  # SQS's word for an unknown key


def test_the_cli_tail_sends_its_token(secured: Any) -> None:
    server, key = secured
    command = [sys.executable, "-m", "eventyard", "tail", "--url", server.url, "--count", "1"]
    unauthenticated = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "EVENTYARD_TOKEN"},
    )
    assert unauthenticated.returncode == 1
    assert "error: MissingAuthenticationTokenException" in unauthenticated.stderr
    with subprocess.Popen(
        [*command, "--token", key["BearerToken"], "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as tail:
        assert tail.stderr is not None
        assert tail.stderr.readline().startswith("tailing bus default")
        with Client(server.url, token=key["BearerToken"]) as client:
            client.put_events(Event(source="cli", detail_type="tailed", detail={"n": 1}))
        out, _ = tail.communicate(timeout=30)
    assert tail.returncode == 0
    assert json.loads(out)["detail-type"] == "tailed"


def test_cli_commands_take_the_token_flag(secured: Any) -> None:
    server, key = secured
    env = {k: v for k, v in os.environ.items() if k != "EVENTYARD_TOKEN"}
    base = [sys.executable, "-m", "eventyard", "buses", "list", "--url", server.url]
    refused_ = subprocess.run(
        base, capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert refused_.returncode == 1
    allowed = subprocess.run(
        [*base, "--token", key["BearerToken"]],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "default" in allowed.stdout


# -- dev mode and start-up ----------------------------------------------------------------------


def test_dev_mode_accepts_any_until_a_key_exists_live(tmp_path: Path) -> None:
    data_dir = tmp_path / "live"
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        anyone = aws("events", server.url, "any", "any")
        assert anyone.list_event_buses()["EventBuses"]
        assert httpx.get(server.url + "/metrics").status_code == 200
        key = new_key(data_dir)  # through the running server's admin socket
        assert refused(anyone.list_event_buses) == ("UnrecognizedClientException", 400)
        assert httpx.get(server.url + "/metrics").status_code == 401
        signer = aws("events", server.url, key["AccessKeyId"], key["SecretAccessKey"])
        assert signer.list_event_buses()["EventBuses"]
        other = new_key(data_dir)
        deleted = eventyard(data_dir, "keys", "delete", key["AccessKeyId"])
        assert deleted.returncode == 0, deleted.stderr
        assert refused(signer.list_event_buses) == ("UnrecognizedClientException", 400)
        assert eventyard(data_dir, "keys", "delete", other["AccessKeyId"]).returncode == 0
        assert anyone.list_event_buses()["EventBuses"]  # no key left: dev mode again


def test_a_network_address_without_keys_refuses_to_start(tmp_path: Path) -> None:
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventyard",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "open"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")},
    )
    assert started.returncode == 1
    assert started.stdout == ""
    lines = started.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot start: refusing to listen on 0.0.0.0")
    assert "--insecure-no-auth" in lines[-1]


def test_insecure_no_auth_starts_on_a_network_address_and_warns(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "insecure", env=E2E_SETTINGS, args=["--host", "0.0.0.0", "--insecure-no-auth"]
    )
    with server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert aws("events", url, "any", "any").list_event_buses()["EventBuses"]
        assert "AUTHENTICATION IS OFF" in server.stderr()


def test_a_network_address_with_a_key_starts_and_requires_signatures(tmp_path: Path) -> None:
    data_dir = tmp_path / "network"
    key = new_key(data_dir)
    with ServerProcess(data_dir, env=E2E_SETTINGS, args=["--host", "0.0.0.0"]) as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert refused(aws("events", url, "any", "any").list_event_buses)[0] == (
            "UnrecognizedClientException"
        )
        signer = aws("sqs", url, key["AccessKeyId"], key["SecretAccessKey"])
        assert signer.list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_wrong_master_key_fails_start_with_both_fingerprints(tmp_path: Path) -> None:
    data_dir = tmp_path / "sealed"
    first, second = MasterKey.generate(), MasterKey.generate()
    new_key(data_dir, EVENTYARD_MASTER_KEY=first.to_text())
    started = subprocess.run(
        [sys.executable, "-m", "eventyard", "serve", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "EVENTYARD_MASTER_KEY": second.to_text()},
    )
    assert started.returncode == 1
    assert first.fingerprint in started.stderr and second.fingerprint in started.stderr
    # with the right key it starts, and the key works
    env = {**E2E_SETTINGS, "EVENTYARD_MASTER_KEY": first.to_text()}
    with ServerProcess(data_dir, env=env) as server:
        assert httpx.get(server.url + "/livez").status_code == 200


# -- the admin commands ---------------------------------------------------------------------------


def test_accounts_and_keys_commands_work_without_a_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "offline"
    made = eventyard(data_dir, "accounts", "create", "--id", "222233334444", "--name", "team")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created account 222233334444"
    key = new_key(data_dir, "222233334444")
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    assert key["BearerToken"].startswith(f"eyk_{key['AccessKeyId']}_")
    listed = eventyard(data_dir, "keys", "list", "--account", "222233334444", "-o", "json")
    assert [k["AccessKeyId"] for k in json.loads(listed.stdout)] == [key["AccessKeyId"]]
    table = eventyard(data_dir, "keys", "list")
    assert key["AccessKeyId"] in table.stdout
    assert key["SecretAccessKey"] not in table.stdout + listed.stdout
    accounts = eventyard(data_dir, "accounts", "list")
    assert "222233334444" in accounts.stdout and "team" in accounts.stdout
    # neither the secret nor the token is in the database, and the key file is private
    database = (data_dir / "eventyard.db").read_bytes()
    wal = data_dir / "eventyard.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert key["SecretAccessKey"].encode() not in stored
    assert key["BearerToken"].encode() not in stored
    assert hashlib.sha256(key["BearerToken"].encode()).hexdigest().encode() in stored
    assert stat.S_IMODE((data_dir / "master.key").stat().st_mode) == 0o600
    # deleting the account deletes its keys
    deleted = eventyard(data_dir, "accounts", "delete", "222233334444")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(eventyard(data_dir, "keys", "list", "-o", "json").stdout) == []


def test_accounts_and_keys_commands_use_a_running_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "online"
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        socket_path = data_dir / "eventyard.db.admin.sock"
        assert stat.S_ISSOCK(socket_path.stat().st_mode)
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        key = new_key(data_dir, "333344445555")
        listed = eventyard(data_dir, "keys", "list", "-o", "json")
        assert [k["AccessKeyId"] for k in json.loads(listed.stdout)] == [key["AccessKeyId"]]
        wrong_account = eventyard(
            data_dir, "keys", "delete", key["AccessKeyId"], "--account", "999999999999"
        )
        assert wrong_account.returncode == 1
        assert "error: ResourceNotFoundException" in wrong_account.stderr
        deleted = eventyard(data_dir, "accounts", "delete", "333344445555")
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(eventyard(data_dir, "keys", "list", "-o", "json").stdout) == []
        assert server.process is not None and server.process.poll() is None
    assert not socket_path.exists()  # removed at shutdown
    # the store the server wrote is the one the commands read once it has stopped
    assert json.loads(eventyard(data_dir, "accounts", "list", "-o", "json").stdout) == []


def test_admin_command_failures_follow_the_cli_convention(tmp_path: Path) -> None:
    data_dir = tmp_path / "failing"
    missing = eventyard(data_dir, "keys", "create", "--account", "999999999999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: ResourceNotFoundException: Account 999999999999 does not exist."
    )
    invalid = eventyard(data_dir, "accounts", "create", "--id", "12")
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error: ValidationException: Account id '12'")
    usage = eventyard(data_dir, "keys", "create")
    assert usage.returncode == 2
    assert usage.stderr.startswith("error: Missing option '--account'")
    made = eventyard(data_dir, "accounts", "create", "--id", "444455556666")
    assert made.returncode == 0
    twice = eventyard(data_dir, "accounts", "create", "--id", "444455556666")
    assert twice.returncode == 1 and "ResourceAlreadyExistsException" in twice.stderr


def test_admin_commands_name_the_holder_of_a_store_that_does_not_answer(tmp_path: Path) -> None:
    data_dir = tmp_path / "held"
    assert eventyard(data_dir, "accounts", "list").returncode == 0  # creates the store
    lock = StoreLock(str(data_dir / "eventyard.db.lock"))
    lock.acquire()
    try:
        held = eventyard(data_dir, "accounts", "list")
    finally:
        lock.release()
    assert held.returncode == 1
    assert f"process {os.getpid()}" in held.stderr
    assert "admin socket" in held.stderr


def test_a_long_data_dir_path_still_gets_an_admin_socket(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(data_dir / "eventyard.db.admin.sock")) > 108
    with ServerProcess(data_dir, env=E2E_SETTINGS) as server:
        key = new_key(data_dir)
        signer = aws("events", server.url, key["AccessKeyId"], key["SecretAccessKey"])
        assert signer.list_event_buses()["EventBuses"]
    poll_until(lambda: not (data_dir / "eventyard.db.admin.sock").exists())
