"""The SQLite store refuses what would silently lose or share data, and keeps it private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import apoll_until

from eventyard.errors import StoreError
from eventyard.server.store import NewEvent
from eventyard.server.store.sqlite import SQLiteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _fill(path: Path, events: int) -> None:
    async with SQLiteStore(str(path)) as store:
        for i in range(events):
            body = b'{"detail": "' + b"x" * 2000 + b'"}'
            await store.ingest([NewEvent(f"id-{i}", "default", 0.0, body)], [])


async def test_a_second_store_on_the_same_file_is_refused_and_told_who_holds_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "eventyard.db"
    async with SQLiteStore(str(path)):
        with pytest.raises(StoreError, match=rf"in use by process {os.getpid()} on "):
            await SQLiteStore(str(path)).open()
    # released on close: the next one opens
    async with SQLiteStore(str(path)):
        pass


def test_the_lock_dies_with_its_process_even_by_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.db"
    probe = [sys.executable, "-c", _PROBE, str(path)]
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from eventyard.server.store.sqlite import SQLiteStore\n"
            "async def main():\n"
            f"    await SQLiteStore({str(path)!r}).open()\n"
            "    print('open', flush=True)\n"
            "    sys.stdin.read()\n"
            "asyncio.run(main())\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "open"
            refused = subprocess.run(probe, capture_output=True, text=True, check=False)
            assert refused.returncode == 1
            assert f"in use by process {holder.pid}" in refused.stderr
        finally:
            holder.kill()
    opened = subprocess.run(probe, capture_output=True, text=True, check=False)
    assert opened.returncode == 0, opened.stderr


_PROBE = """
import asyncio, sys
from eventyard.errors import StoreError
from eventyard.server.store.sqlite import SQLiteStore
async def main():
    try:
        async with SQLiteStore(sys.argv[1]):
            pass
    except StoreError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
asyncio.run(main())
"""


async def test_data_files_are_private_to_their_owner(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    path = directory / "eventyard.db"
    async with SQLiteStore(str(path)) as store:
        await store.ingest([NewEvent("e", "default", 0.0, b"{}")], [])
        assert _mode(directory) == 0o700
        created = list(directory.iterdir())
        assert {p.name for p in created} >= {
            "eventyard.db",
            "eventyard.db-wal",
            "eventyard.db.lock",
        }
        assert {p.name: _mode(p) for p in created} == {p.name: 0o600 for p in created}


async def test_a_damaged_file_is_refused_with_the_file_and_the_way_to_recover(
    tmp_path: Path,
) -> None:
    path = tmp_path / "eventyard.db"
    await _fill(path, 200)
    page = 4096
    pages = path.stat().st_size // page
    assert pages > 50
    with path.open("r+b") as file:  # three zeroed pages in the middle of the log's b-tree
        file.seek((pages // 2) * page)
        file.write(bytes(3 * page))
    with pytest.raises(StoreError) as refused:
        await SQLiteStore(str(path)).open()
    message = str(refused.value)
    assert f"{path} is damaged and was not opened" in message
    assert f"eventyard store recover --data-dir {tmp_path}" in message
    # refused without keeping the lock: a repaired file can be opened by the same process
    with pytest.raises(StoreError, match="is damaged"):
        await SQLiteStore(str(path)).open()


async def test_a_file_whose_header_is_gone_is_refused_not_started_empty(tmp_path: Path) -> None:
    path = tmp_path / "eventyard.db"
    await _fill(path, 20)
    with path.open("r+b") as file:
        file.write(bytes(100))
    with pytest.raises(StoreError, match="is damaged and was not opened"):
        await SQLiteStore(str(path)).open()


async def test_a_full_disk_fails_writes_clearly_and_the_store_recovers_when_room_returns(
    small_disk: Path,
) -> None:
    path = small_disk / "eventyard.db"
    body = b'{"detail": "' + b"x" * 4000 + b'"}'
    async with SQLiteStore(str(path)) as store:
        assert store.write_failure() is None
        written = 0
        with pytest.raises(StoreError, match="full"):
            for written in range(1000):
                await store.ingest([NewEvent(f"e{written}", "default", 0.0, body)], [])
        assert 0 < written < 1000
        failure = store.write_failure()
        assert failure is not None
        assert "full" in failure
        assert str(path) in failure
        # what was acknowledged before the disk filled up is all there
        assert [r.event_id for r in await store.read_log(limit=2000)] == [
            f"e{i}" for i in range(written)
        ]
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        # nobody writes: the store's own probe notices the room
        await apoll_until(lambda: store.write_failure() is None)
        await store.ingest([NewEvent("after", "default", 0.0, body)], [])
        assert (await store.read_log(limit=2000))[-1].event_id == "after"
