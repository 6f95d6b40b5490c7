"""``eventyard worker`` as a real process: SIGTERM lets a running handler finish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from eventyard import Event
from eventyard.errors import ResourceNotFound
from eventyard.sdk.client import AsyncClient
from eventyard.sdk.consumer import load_consumer
from eventyard.testing import ServerProcess
from tests.helpers import apoll_until
from tests.sdk.consumer.conftest import queue_counts

REPO = Path(__file__).resolve().parents[3]


async def test_sigterm_lets_the_running_handler_finish_and_loses_nothing(
    server: ServerProcess, client: AsyncClient, tmp_path: Path
) -> None:
    env = {**os.environ, "SLOW_APP_BUS": "shutdown", "SLOW_APP_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "eventyard", "worker", "tests.sdk.consumer.slow_app:consumer"]
    command += ["--concurrency", "1", "--url", server.url]
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(command, cwd=REPO, env=env, stderr=log, stdout=log)
    try:
        handler = load_consumer("tests.sdk.consumer.slow_app:consumer").handler("slow")

        async def set_up() -> bool:  # the worker has set up when the rule has its target
            try:
                return bool(await client.list_targets(handler.rule, bus="shutdown"))
            except ResourceNotFound:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                return False

        await apoll_until(set_up, what="the worker's set-up")
        events = [
            Event(source="slow-app", detail_type="Slow", detail={"order": n, "seconds": 1.5})
            for n in range(3)
        ]
        await client.put_events(events, bus="shutdown")
        await apoll_until(lambda: len(list(tmp_path.glob("*.started"))) == 1)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 15)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert code == 0, output
    [started] = [p.stem for p in tmp_path.glob("*.started")]
    assert (tmp_path / f"{started}.finished").exists()  # the running handler completed
    # its message was deleted; the two events it never started wait, visible, for the next worker
    assert await queue_counts(client, handler.queue) == (2, 0)
    assert '"event": "worker stopped"' in output
