"""A newcomer's first run of ``eventyard serve``: what it says, when, and how it fails."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventyard.sdk.client import Client
from eventyard.testing import ServerProcess
from tests.e2e.conftest import client

SERVE = [sys.executable, "-m", "eventyard", "serve", "--host", "127.0.0.1"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _run_to_end(args: list[str], cwd: Path, **env: str) -> tuple[int, str, str]:
    """Run ``eventyard serve ARGS`` expecting it to stop on its own; (code, out, err)."""
    done = subprocess.run(
        [*SERVE, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def console_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``serve --demo --log-format console`` in a directory of its own; (process, URL)."""
    process = subprocess.Popen(
        [*SERVE, "--port", "0", "--demo", "--log-format", "console"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    assert first.startswith("eventyard listening on http://127.0.0.1:"), first
    yield process, first.removeprefix("eventyard listening on ")
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def test_the_listening_line_comes_once_the_server_is_ready(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*SERVE, "--port", "0", "--data-dir", "data"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().removeprefix("eventyard listening on ")
        # no polling: the very first request after the line finds the server ready
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    [ready] = [
        line for line in map(json.loads, err.splitlines()) if line["event"] == "eventyard ready"
    ]
    assert ready["url"] == url
    assert ready["data_dir"] == str(tmp_path / "data")
    assert (ready["demo"], ready["config_file"]) == (False, None)


def test_the_console_banner_names_the_url_data_dir_demo_and_next_commands(
    console_server: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, url = console_server
    assert process.stderr is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Stop with Ctrl-C.":
        line = process.stderr.readline()
        assert line, "stderr ended before the banner did"
        lines.append(line.rstrip("\n"))
    text = "\n".join(lines)
    assert f"url       {url}" in text
    assert f"data dir  {tmp_path / '.eventyard'}" in text
    assert "demo      bus demo: rule demo-all copies every event to queue demo-queue" in text
    assert f"export EVENTYARD_URL={url}" in text
    assert "eventyard put --bus demo" in text
    assert "eventyard queues receive demo-queue" in text
    assert "eventyard tail --bus demo" in text
    assert not any(line.lstrip().startswith("{") for line in lines), "console, not JSON"
    assert "\x1b[" not in text, "no colours when stderr is not a terminal"


def test_a_store_that_cannot_be_opened_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    code, out, err = _run_to_end(["--port", "0", "--data-dir", str(blocker)], tmp_path)
    assert code == 1
    assert out == "", "nothing may claim the server listens"
    assert err.startswith(f"error: cannot open the store in {blocker}: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_address_in_use_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = _run_to_end(["--port", str(port), "--data-dir", "d"], tmp_path)
    assert (code, out) == (1, "")
    assert err == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_a_bad_setting_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = _run_to_end(["--port", "0"], tmp_path, EVENTYARD_SHUTDOWN_TIMEOUT="soon")
    assert (code, out) == (2, "")
    assert err == "error: EVENTYARD_SHUTDOWN_TIMEOUT='soon' is not a number\n"


def test_an_unknown_key_in_eventyard_toml_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "eventyard.toml").write_text('port = 0\nlog_levle = "debug"\n')
    code, out, err = _run_to_end([], tmp_path)
    assert (code, out) == (2, "")
    path = tmp_path / "eventyard.toml"
    assert err == f"error: {path}:2: unknown key 'log_levle' (did you mean 'log_level'?)\n"


def test_serve_reads_eventyard_toml_and_flags_win_over_it(tmp_path: Path) -> None:
    (tmp_path / "eventyard.toml").write_text(
        'port = 1\ndemo = true\naccount_id = "222222222222"\ndata_dir = "from-file"\n'
    )
    with subprocess.Popen(
        [*SERVE, "--port", "0"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, text=True,
        stderr=subprocess.DEVNULL,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().removeprefix("eventyard listening on ")
            assert not url.endswith(":1")  # the flag beat the file
            with Client(url) as sdk:
                arn = sdk.queue_arn("demo-queue")
            assert arn == "arn:aws:sqs:us-east-1:222222222222:demo-queue"
            assert (tmp_path / "from-file" / "eventyard.db").exists()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0


def test_debug_logs_one_access_line_per_request_without_payloads(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", args=["--log-level", "debug"]) as server:
        with Client(server.url) as sdk:
            sdk.put_events({"Source": "shop", "DetailType": "T", "Detail": {"card": "4111-s3cret"}})
        with urllib.request.urlopen(server.url + "/livez", timeout=5):
            pass
    logged = server.stderr()
    assert "4111-s3cret" not in logged
    requests = [line for line in map(json.loads, logged.splitlines()) if line["event"] == "request"]
    put = next(r for r in requests if r["operation"] == "AWSEvents.PutEvents")
    assert (put["method"], put["path"], put["status"], put["level"]) == ("POST", "/", 200, "debug")
    assert isinstance(put["duration_ms"], float)
    live = next(r for r in requests if r["path"] == "/livez")
    assert (live["method"], live["status"], live["operation"]) == ("GET", 200, None)


def test_no_access_log_at_info(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server, Client(server.url) as sdk:
        sdk.put_events({"Source": "shop", "DetailType": "T", "Detail": {}})
    events = [json.loads(line)["event"] for line in server.stderr().splitlines()]
    assert "request" not in events


def _unmatched(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("eventyard_events_unmatched_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('bus="', 1)[1].rstrip('"}')] = float(value)
    return counts


def test_events_that_match_no_rule_are_counted_per_bus(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        events = client("events", server.url)
        events.create_event_bus(Name="orders")
        events.put_rule(Name="shop", EventBusName="orders", EventPattern='{"source": ["shop"]}')
        entry = {"Source": "shop", "DetailType": "T", "Detail": "{}"}
        answer = events.put_events(
            Entries=[
                entry,  # default bus: no rule
                {**entry, "EventBusName": "orders"},  # matches
                {**entry, "Source": "else", "EventBusName": "orders"},  # no rule matches
                {**entry, "EventBusName": "no-such-bus"},
                {**entry, "Detail": "not json"},  # rejected: not counted
            ]
        )
        assert answer["FailedEntryCount"] == 1  # boto3 is not bothered by our header
        header = answer["ResponseMetadata"]["HTTPHeaders"]["x-eventyard-matched-rules"]
        assert header == "0,1,0,0,-"
        assert _unmatched(server.url) == {"default": 1.0, "orders": 1.0, "(no such bus)": 1.0}


def test_print_config_shows_the_settings_and_their_sources_without_serving(
    tmp_path: Path,
) -> None:
    (tmp_path / "eventyard.toml").write_text('port = 5000\nregion = "eu-west-1"\n')
    code, out, err = _run_to_end(
        ["--print-config", "--port", "7000"], tmp_path, EVENTYARD_PORT="6000"
    )
    assert (code, err) == (0, "")
    assert "port = 7000  # --port\n" in out
    assert f'region = "eu-west-1"  # {tmp_path / "eventyard.toml"}:2\n' in out
