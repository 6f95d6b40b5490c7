"""The start-up banner: what a newcomer reads once the server is ready."""

from __future__ import annotations

from pathlib import Path

from eventyard.server.auth import Keyring, MasterKey, MemoryKeyStore
from eventyard.server.config import Settings
from eventyard.server.runtime import Runtime
from eventyard.server.serve import _auth_mode, banner
from eventyard.server.store import open_store


def test_without_demo_the_banner_suggests_the_default_bus_and_the_demo_flag() -> None:
    lines = banner(Settings(port=4010, data_dir="/srv/data"))
    assert "  url       http://127.0.0.1:4010" in lines
    assert "  data dir  /srv/data" in lines
    assert not any(line.startswith("  demo") for line in lines)
    assert not any("export EVENTYARD_URL" in line for line in lines)  # the default URL
    assert any(line.startswith("  eventyard put --source shop") for line in lines)
    assert "  eventyard tail --bus default" in lines
    assert any("eventyard serve --demo" in line for line in lines)
    assert lines[-1] == "Stop with Ctrl-C."


def test_a_wildcard_host_gives_a_local_url_to_export() -> None:
    lines = banner(Settings(host="0.0.0.0", port=5000))
    assert "  url       http://0.0.0.0:5000" in lines
    assert "  export EVENTYARD_URL=http://127.0.0.1:5000" in lines


def test_the_banner_names_the_config_file_and_is_bold_only_when_asked() -> None:
    settings = Settings(config_file="/srv/eventyard.toml", log_level="debug")
    plain, bold = banner(settings), banner(settings, color=True)
    assert "  config    /srv/eventyard.toml" in plain
    assert "  logs      debug (one line per request)" in plain
    assert not any("\x1b[" in line for line in plain)
    assert bold[0].startswith("\x1b[1m")


def test_the_banner_says_how_requests_are_authenticated() -> None:
    assert not any(line.startswith("  auth") for line in banner(Settings()))
    lines = banner(Settings(), auth="dev mode: any credentials, until the first access key")
    assert "  auth      dev mode: any credentials, until the first access key" in lines


async def test_the_auth_mode_follows_the_keys_and_the_bind_address(tmp_path: Path) -> None:
    def runtime(**settings: object) -> Runtime:
        made = Runtime(Settings(**settings), open_store(str(tmp_path)))  # type: ignore[arg-type]
        made.authenticator.keyring = keyring
        return made

    keyring = Keyring(MemoryKeyStore(), MasterKey.generate())
    await keyring.key_count()
    assert _auth_mode(runtime()).startswith("dev mode")
    assert _auth_mode(runtime(host="0.0.0.0", insecure_no_auth=True)).startswith("OFF")
    await keyring.create_account("111122223333")
    await keyring.create_key("111122223333")
    assert _auth_mode(runtime()).startswith("access keys required")
    assert _auth_mode(runtime(host="0.0.0.0", insecure_no_auth=True)).startswith("access keys")
