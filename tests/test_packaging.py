"""The built wheel, installed into an empty venv, runs the server and the command line.

The module builds eventyard's wheel once (``pip wheel --no-deps .``, with the build
backend from ``[build-system]``), creates a venv with no pip and nothing in it, and
installs the wheel there with the test venv's pip: the dependencies come from the
package index (through pip's cache), as for a user, and no dev extra is installed. The
tests then run that venv's ``eventyard`` program, never the checkout's code.

The Dockerfile cannot be built without a Docker daemon, so its ENTRYPOINT + CMD and its
HEALTHCHECK are read from it and run here as plain commands against the same install
(the image installs the same wheel into a venv); only ``--host 0.0.0.0`` becomes
127.0.0.1 and ``/data`` a temporary directory. ``make check`` lints it with hadolint.

Without the package index the install fails; the tests then skip, and fail under
EVENTYARD_STRICT_TESTS=1 (as in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from tests.conftest import REPO, require

# the first test also builds and installs (pip, ~40 packages): a margin on a busy machine
pytestmark = [pytest.mark.packaging, pytest.mark.timeout(300)]

SRC = REPO / "src" / "eventyard"
DOCKERFILE = REPO / "Dockerfile"
# what pip prints when it cannot reach the index (then the tests skip, unless strict)
OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Network is unreachable|Name or service not known|ProxyError"
)
T = TypeVar("T")
DEV_ONLY = ("boto3", "pytest", "mypy", "ruff", "hypothesis", "import_linter")
# packages of optional extras (not installed here): `eventyard[jetstream]` needs nats-py
OPTIONAL = "eventyard.server.store.jetstream"


@dataclass(frozen=True)
class Install:
    """The wheel and the venv it was installed into."""

    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        """The venv's scripts directory."""
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a shell in which this venv is activated, and nothing else.

        The test venv's variables are dropped so that nothing of the checkout leaks in.
        """
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "COVERAGE_PROCESS_START"}
            and not k.startswith("EVENTYARD_")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["PYTHONUNBUFFERED"] = "1"
        return {**env, **extra}


def _run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """Build the wheel and install it into an empty venv (once for the module)."""
    root = tmp_path_factory.mktemp("packaging")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(root / "dist"), str(REPO)])
    require(not OFFLINE.search(built.stderr), "pip cannot reach the package index")
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("eventyard-*.whl")

    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    # the test venv's pip installs into the new one (pip --python), which stays empty
    # but for eventyard and its dependencies; no bytecode: it is compiled on first import
    installed = _run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-compile", str(wheel)]
    )
    require(not OFFLINE.search(installed.stderr), "pip cannot reach the package index")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return Install(wheel, venv)


# -- the wheel ---------------------------------------------------------------------------
def test_wheel_holds_every_module_the_typing_marker_and_the_sqlite_migrations(
    install: Install,
) -> None:
    names = set(zipfile.ZipFile(install.wheel).namelist())
    expected = {
        f"eventyard/{path.relative_to(SRC).as_posix()}"
        for path in SRC.rglob("*")
        if path.is_file() and path.suffix in {".py", ".sql", ".typed"}
    }
    assert "eventyard/py.typed" in expected
    assert any(name.endswith(".sql") for name in expected)
    assert expected - names == set()


def test_wheel_declares_the_program_and_no_dev_dependency_outside_its_extra(
    install: Install,
) -> None:
    with zipfile.ZipFile(install.wheel) as wheel:
        info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(info).decode()
        entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "eventyard = eventyard.__main__:main" in entry_points
    runtime = [
        line.removeprefix("Requires-Dist: ")
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    ]
    assert runtime
    assert not [req for req in runtime if re.split(r"[\s<>=!~\[;]", req)[0] in DEV_ONLY]


# -- the installed program -----------------------------------------------------------------
def test_every_module_imports_from_the_install_without_the_dev_extra(
    install: Install, tmp_path: Path
) -> None:
    script = f"""
import importlib, importlib.util, pkgutil, sys
import eventyard
assert eventyard.__file__.startswith({str(install.venv)!r}), eventyard.__file__
present = [name for name in {DEV_ONLY!r} if importlib.util.find_spec(name)]
assert not present, f"dev-only packages installed: {{present}}"
for module in pkgutil.walk_packages(eventyard.__path__, "eventyard."):
    if module.name.startswith({OPTIONAL!r}):
        continue
    importlib.import_module(module.name)
leaked = sorted(name for name in {DEV_ONLY!r} if name in sys.modules)
assert not leaked, leaked
# a module of an optional extra says which extra it needs
from eventyard.errors import StoreError
from eventyard.server.store import open_store
try:
    open_store("nats://127.0.0.1:4222")
except StoreError as exc:
    assert "pip install 'eventyard[jetstream]'" in str(exc), exc
else:
    raise AssertionError("the JetStream store opened without nats-py")
print("ok")
"""
    done = _run([str(install.bin / "python"), "-c", script], cwd=tmp_path, env=install.env())
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_installed_program_serves_and_its_cli_puts_and_lists_against_it(
    install: Install, tmp_path: Path
) -> None:
    env = install.env()
    eventyard = str(install.bin / "eventyard")
    helped = _run([eventyard, "--help"], cwd=tmp_path, env=env)
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout

    argv = [eventyard, "serve", "--port", "0", "--data-dir", str(tmp_path / "data")]
    with _served(argv, tmp_path, env) as url:
        assert _readyz(url) == 200
        event = ["--source", "packaging.test", "--detail-type", "Installed"]
        put = _run(
            [eventyard, "put", "--url", url, *event, "--detail", '{"a": 1}', "--output", "json"],
            cwd=tmp_path,
            env=env,
        )
        assert put.returncode == 0, put.stderr
        (event_id,) = json.loads(put.stdout)
        assert event_id

        listed = _run([eventyard, "buses", "list", "--url", url, "--output", "json"], env=env)
        assert listed.returncode == 0, listed.stderr
        assert "default" in [bus["Name"] for bus in json.loads(listed.stdout)]


# -- the container image, as plain commands ------------------------------------------------
def test_dockerfile_runs_serve_as_non_root_with_a_data_volume_and_port_4010() -> None:
    stage = _final_stage(DOCKERFILE)
    argv = json.loads(stage["ENTRYPOINT"]) + json.loads(stage["CMD"])
    assert argv == ["eventyard", "serve", "--host", "0.0.0.0", "--data-dir", "/data"]
    assert json.loads(stage["VOLUME"]) == ["/data"]
    assert stage["EXPOSE"] == "4010"
    user = stage["USER"].split(":")[0]
    assert user not in {"root", "0"}


def test_compose_runs_the_image_with_its_port_and_data_volume() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    service = compose["services"]["eventyard"]
    assert service["build"] == "."
    # loopback only: the compose server runs without keys (--insecure-no-auth)
    assert "127.0.0.1:4010:4010" in service["ports"]
    assert service["environment"]["EVENTYARD_INSECURE_NO_AUTH"] == "1"
    assert [v for v in service["volumes"] if v.endswith(":/data")]
    # the NATS cluster is opt-in: eventyard has no JetStream backend yet
    others = [s for name, s in compose["services"].items() if name != "eventyard"]
    assert all(s.get("profiles") == ["jetstream"] for s in others)


def test_docker_entrypoint_serves_and_its_healthcheck_tells_up_from_down(
    install: Install, tmp_path: Path
) -> None:
    stage = _final_stage(DOCKERFILE)
    argv = json.loads(stage["ENTRYPOINT"]) + json.loads(stage["CMD"])
    match = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(?P<cmd>\[.*\])", stage["HEALTHCHECK"])
    assert match, stage["HEALTHCHECK"]
    healthcheck = json.loads(match["cmd"])

    data = tmp_path / "data"
    data.mkdir()
    # listening on all interfaces is the container's business; the test keeps to loopback
    argv = [{"0.0.0.0": "127.0.0.1", "/data": str(data)}.get(arg, arg) for arg in argv]
    # the image keeps serve's default port; here EVENTYARD_PORT=0 picks a free one
    env = install.env(EVENTYARD_PORT="0")
    argv[0] = _which(argv[0], env)
    healthcheck[0] = _which(healthcheck[0], env)

    with socket.socket() as closed:
        # a bound port that nobody listens on: connection refused, deterministically
        closed.bind(("127.0.0.1", 0))
        refused = _run(
            healthcheck, cwd=data, env={**env, "EVENTYARD_PORT": str(closed.getsockname()[1])}
        )
        assert refused.returncode != 0

    with _served(argv, data, env) as url:
        served_port = url.rsplit(":", 1)[1]
        checked = _poll(
            lambda: _run(healthcheck, cwd=data, env={**env, "EVENTYARD_PORT": served_port}),
            lambda done: done.returncode == 0,
        )
        assert checked.returncode == 0, checked.stderr


# -- helpers -------------------------------------------------------------------------------
def _which(command: str, env: dict[str, str]) -> str:
    found = shutil.which(command, path=env["PATH"])
    assert found, f"{command} is not on the image's PATH"
    return found


def _final_stage(dockerfile: Path) -> dict[str, str]:
    """The last value of each instruction in the Dockerfile's final stage."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return dict(instructions[last_from:])


@contextlib.contextmanager
def _served(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``argv`` (a server) and yield its URL once ready; SIGTERM must then exit 0."""
    log = cwd / "server.stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdout is not None
    try:
        # readiness: the listening line (the socket is bound), then /readyz answering 200
        line = process.stdout.readline().strip()
        assert line.startswith("eventyard listening on "), (line, log.read_text())
        url = line.removeprefix("eventyard listening on ")
        assert _poll(lambda: _readyz(url), lambda status: status == 200) == 200
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def _readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Call ``probe`` until ``done`` holds for its value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
