"""API fixtures: the real ASGI app served by uvicorn in a background thread.

``aws_endpoint`` is session-scoped: one server (router, EventBridge and SQS APIs over a
temporary SQLite store) for every test that asks for it. It runs with account
``111111111111`` (the account the AWS recordings show) and the classic 256 KiB PutEvents
limit the recorded size case expects.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config

from eventyard.server.api.app import create_app
from eventyard.server.config import Settings
from tests.helpers import poll_until

AWS_ACCOUNT = "111111111111"
AWS_REGION = "us-east-1"
CLASSIC_ENTRIES_SIZE = 256 * 1024


def aws_client(service: str, url: str, **config: Any) -> Any:
    """A boto3 client for ``url`` with dummy credentials and no client-side retries."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=AWS_REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


@contextlib.contextmanager
def serve_in_thread(**settings: Any) -> Iterator[str]:
    """Serve ``create_app(Settings(**settings))`` with uvicorn on a free port; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(Settings(port=port, **settings)),
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the app did not start"
        return bool(server.started)

    poll_until(started, what="the app's start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running eventyard app (``http://127.0.0.1:<port>``)."""
    with serve_in_thread(
        data_dir=str(tmp_path_factory.mktemp("aws-data")),
        account_id=AWS_ACCOUNT,
        region=AWS_REGION,
        max_entries_size=CLASSIC_ENTRIES_SIZE,
    ) as url:
        yield url
