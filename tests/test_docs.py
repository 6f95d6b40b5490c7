"""Every code block of the README and the docs runs, against a real server.

One test per fenced block of ``README.md``, ``docs/*.md`` and ``examples/*/README.md``,
named ``file:line`` after its opening fence. The rules (also in ``docs/README.md``):

- ```` ```python ```` blocks run with this virtualenv's python, as a ``python`` started in
  the repository's root would run them. The Python blocks of one file run in order in
  one process and one namespace, so a block can use an earlier block's names. Top-level
  ``await`` is allowed, and the ``test_*`` functions a block defines are called (awaited
  when async).
- ```` ```sh ```` / ```` ```bash ```` / ```` ```shell ```` blocks run in
  ``bash`` with ``set -euo pipefail``, this virtualenv's ``bin`` first on ``PATH`` (so
  ``eventyard``, ``aws`` and ``python`` are the project's).
- Every block of a file runs after the runnable blocks before it (they run first when a
  block is selected alone), in a working directory of its own that holds links to the
  repository's top-level files (``Makefile``, ``examples``, ``.venv``…): files a block
  writes stay out of the repository.
- Each file gets a fresh server, ``eventyard serve --demo`` (what ``make run`` starts: bus
  ``demo``, rule ``demo-all``, queue ``demo-queue``). ``http://127.0.0.1:4010`` in a
  block is replaced by its URL, and ``EVENTYARD_URL`` names it, so the documents keep the
  real default address. ``EVENTYARD_*`` and ``AWS_*`` variables of the environment are
  not passed on, and the AWS CLI reads no configuration file.
- ```` ```json ````, ```` ```yaml ```` and ```` ```toml ```` blocks are data: they must
  parse (JSON may also be JSON lines). A YAML block whose keys are only ``queues``,
  ``buses`` and ``rules`` is an ``eventyard apply`` file and is applied to the server.
  ```` ```text ````, ```` ``` ```` and the other data languages in ``DATA`` are not
  checked. An unknown language fails, so that a new kind of block gets a rule here.
- ``<!-- doc-test: file NAME -->`` right before a fence: the block is also the file
  ``NAME``, written to the working directory before the file's first block runs.
- ``<!-- doc-test: skip because REASON -->`` right before a fence: the block does not
  run (``make run`` blocks, ``make test`` would recurse, ``docker`` may be absent).
  Something cheaper is checked instead: a ``make`` target exists in the ``Makefile``;
  an ``eventyard`` command exists and takes every ``--option`` written after it; a
  ``docker build`` has its ``Dockerfile``, a ``docker compose`` its ``compose.yaml``;
  a ``*.py`` path written in the block exists.

A failing block fails its test with the block's output in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventyard.testing import ServerProcess
from tests.docblocks import Block, Directive, collect, parse

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").glob("*/README.md")]
)
DEFAULT_URL = "http://127.0.0.1:4010"
PYTHON = {"python", "py"}
SHELL = {"sh", "bash", "shell"}
DATA = {"", "text", "txt", "console", "output", "ini", "dockerfile", "http", "diff"}
APPLY_KEYS = {"queues", "buses", "rules"}
# seconds one block may run
BLOCK_TIMEOUT = 90.0
VENV_BIN = Path(sys.executable).parent

BLOCKS = collect(REPO, DOCUMENTS)


class Document:
    """What the blocks of one file share: a working directory, a server, a Python process."""

    def __init__(self, path: str, blocks: list[Block]) -> None:
        self.path = path
        self.blocks = blocks
        self.work = Path(tempfile.mkdtemp(prefix="eventyard-docs-"))
        self.server: ServerProcess | None = None
        self.python: subprocess.Popen[str] | None = None
        self.replies: Any = None
        self.output = self.work.parent / (self.work.name + ".python-output")
        self.done: dict[int, str | None] = {}  # line -> error of the blocks that ran
        # links to the repository's top level, so `make`, `examples/…` and `.venv/bin/…`
        # work as in a clone, while what the blocks write stays here
        for entry in REPO.iterdir():
            if entry.name not in {".git", ".venv"}:
                (self.work / entry.name).symlink_to(entry)
        (self.work / ".venv").symlink_to(Path(sys.prefix))
        for block in blocks:
            if block.directive.file is not None:
                (self.work / block.directive.file).write_text(block.text, encoding="utf-8")

    # -- resources, started on first use --------------------------------------------------
    @property
    def url(self) -> str:
        if self.server is None:
            self.server = ServerProcess(self.work.parent / (self.work.name + ".data"))
            self.server.args = ["--demo"]
            self.server.start()
        return self.server.url

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("EVENTYARD_", "AWS_", "VIRTUAL_ENV", "PYTHON"))
        }
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["EVENTYARD_URL"] = self.url
        env["AWS_CONFIG_FILE"] = str(self.work / ".aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.work / ".aws-credentials")
        return env

    def close(self) -> None:
        if self.python is not None:
            self.python.stdin.close()  # type: ignore[union-attr]
            try:
                self.python.wait(10)
            except subprocess.TimeoutExpired:
                self.python.kill()
                self.python.wait()
            self.replies.close()
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.work.parent / (self.work.name + ".data"), ignore_errors=True)
        self.output.unlink(missing_ok=True)

    # -- running --------------------------------------------------------------------------
    def run(self, block: Block) -> None:
        """Run ``block`` after the runnable blocks before it; fail with its output."""
        earlier = [b for b in self.blocks if b.line < block.line and runnable(b)]
        for before in earlier:
            if before.line not in self.done:
                self.done[before.line] = self._attempt(before)
        error = self._attempt(block)
        self.done[block.line] = error
        if error is not None:
            failed = [
                f"{self.path}:{line}" for line, e in self.done.items() if e and line < block.line
            ]
            note = f"\n(earlier blocks that failed: {', '.join(failed)})" if failed else ""
            pytest.fail(f"{block.id} ({block.lang or 'text'}) failed:\n{error}{note}", False)

    def _attempt(self, block: Block) -> str | None:
        text = block.text.replace(DEFAULT_URL, self.url)
        if block.lang in PYTHON:
            return self._python(block, text)
        if block.lang in SHELL:
            return self._shell(text)
        if block.lang in {"yaml", "yml"}:
            return self._apply(text)
        raise AssertionError(f"{block.id}: not a runnable block")

    def _shell(self, text: str) -> str | None:
        # a session of its own, so that a timeout kills what the block started too
        with subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", "set -euo pipefail\n" + text],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ) as shell:
            try:
                output, _ = shell.communicate(timeout=BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)
                output, _ = shell.communicate()
                return f"still running after {BLOCK_TIMEOUT} s; output:\n{output}"
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(shell.pid, signal.SIGKILL)  # what the block left behind
        if shell.returncode != 0:
            return f"exit status {shell.returncode}; output:\n{output}"
        return None

    def _python(self, block: Block, text: str) -> str | None:
        if self.python is None:
            read_end, write_end = os.pipe()
            self.python = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("docblocks.py")),
                    str(write_end),
                    str(self.output),
                ],
                cwd=self.work,
                env=self.env,
                stdin=subprocess.PIPE,
                text=True,
                pass_fds=(write_end,),
            )
            os.close(write_end)
            self.replies = os.fdopen(read_end, "r")
        offset = self.output.stat().st_size if self.output.exists() else 0
        request = {"path": block.path, "line": block.line, "code": text}
        assert self.python.stdin is not None
        self.python.stdin.write(json.dumps(request) + "\n")
        self.python.stdin.flush()
        ready, _, _ = select.select([self.replies], [], [], BLOCK_TIMEOUT)
        reply_line = self.replies.readline() if ready else ""
        printed = self._printed(offset)
        if not reply_line:
            self.python.kill()
            self.python.wait()
            self.python = None
            what = "still running after" if not ready else "the Python process died within"
            return f"{what} {BLOCK_TIMEOUT} s; output:\n{printed}"
        error = json.loads(reply_line)["error"]
        return None if error is None else f"{printed}{error}"

    def _printed(self, offset: int) -> str:
        with open(self.output, "rb") as output:
            output.seek(offset)
            return output.read().decode(errors="replace")

    def _apply(self, text: str) -> str | None:
        name = f"apply-{time.monotonic_ns()}.yaml"
        (self.work / name).write_text(text, encoding="utf-8")
        return self._shell(f"eventyard apply -f {name}")


def is_apply_file(block: Block) -> bool:
    """A YAML block that declares eventyard resources (``eventyard apply``)."""
    if block.lang not in {"yaml", "yml"}:
        return False
    try:
        loaded = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return False
    return isinstance(loaded, dict) and bool(loaded) and set(loaded) <= APPLY_KEYS


def runnable(block: Block) -> bool:
    """Whether the block executes (rather than being data, or skipped)."""
    if block.directive.skip is not None:
        return False
    return block.lang in PYTHON | SHELL or is_apply_file(block)


# -- checks for data and skipped blocks ---------------------------------------------------


def check_data(block: Block) -> None:
    """JSON, YAML and TOML must parse; the other data languages are not checked."""
    if block.lang == "json":
        try:
            json.loads(block.text)
        except json.JSONDecodeError as whole:
            for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    pytest.fail(
                        f"{block.id}: not JSON ({whole}) nor JSON lines (line {number}: {exc})",
                        False,
                    )
    elif block.lang in {"yaml", "yml"}:
        try:
            list(yaml.safe_load_all(block.text))
        except yaml.YAMLError as exc:
            pytest.fail(f"{block.id}: not YAML: {exc}", False)
    elif block.lang == "toml":
        try:
            tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"{block.id}: not TOML: {exc}", False)
    elif block.lang not in DATA:
        pytest.fail(
            f"{block.id}: no rule for ```{block.lang} blocks: give it a known language, "
            "or add one to tests/test_docs.py (and docs/README.md)",
            False,
        )


_MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)


def _commands(text: str) -> Iterator[list[str]]:
    """The block's commands as word lists (continuations joined, comments removed)."""
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.split()
            if words:
                yield words


def check_skipped(block: Block) -> list[str]:
    """The cheaper checks of a skipped block; returns what was checked."""
    checked: list[str] = []
    targets = set(_MAKE_TARGET.findall((REPO / "Makefile").read_text()))
    for words in _commands(block.text):
        program = Path(words[0]).name
        if program == "make":
            for target in (w for w in words[1:] if not w.startswith("-") and "=" not in w):
                assert target in targets, f"{block.id}: the Makefile has no target {target!r}"
                checked.append(f"make target {target}")
        elif program == "eventyard":
            checked.append(_check_eventyard(block, words[1:]))
        elif program == "docker" and len(words) > 1:
            needed = {"build": "Dockerfile", "compose": "compose.yaml"}.get(words[1])
            if needed is not None:
                assert (REPO / needed).is_file(), f"{block.id}: `docker {words[1]}` needs {needed}"
                checked.append(needed)
        for word in words:
            if word.endswith(".py") and "/" in word and not word.startswith(("/", "-")):
                assert (REPO / word).is_file(), f"{block.id}: {word} does not exist"
                checked.append(word)
    return checked


def _check_eventyard(block: Block, args: list[str]) -> str:
    """The command exists and takes every ``--option`` the block gives it."""
    words = [w.strip("[]") for w in args]
    first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    path = words[:first_option]
    options = {w.split("=")[0] for w in words if w.startswith("--")}
    done = subprocess.run(
        [str(VENV_BIN / "eventyard"), *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, (
        f"{block.id}: `eventyard {' '.join(path)} --help` failed:\n{done.stderr}"
    )
    missing = sorted(o for o in options if o not in done.stdout)
    assert not missing, (
        f"{block.id}: `eventyard {' '.join(path)}` has no option {', '.join(missing)}"
    )
    return f"eventyard {' '.join(path)} {' '.join(sorted(options))}".strip()


# -- the tests ------------------------------------------------------------------------------


class Documents:
    """The documents open in this session; one at a time (tests run file by file)."""

    def __init__(self) -> None:
        self.open: dict[str, Document] = {}

    def get(self, path: str) -> Document:
        if path not in self.open:
            self.close()
            self.open[path] = Document(path, [b for b in BLOCKS if b.path == path])
        return self.open[path]

    def close(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


@pytest.fixture(scope="module")
def documents() -> Iterator[Documents]:
    opened = Documents()
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_the_code_block_runs_as_written(block: Block, documents: Documents) -> None:
    if block.directive.skip is not None:
        checked = check_skipped(block)
        if not checked:
            pytest.skip(f"{block.id}: {block.directive.skip} (nothing cheaper to check)")
        return
    if not runnable(block):
        check_data(block)
        return
    documents.get(block.path).run(block)


def test_every_document_is_collected() -> None:
    collected = {b.path for b in BLOCKS}
    assert "README.md" in collected
    assert {"docs/architecture.md", "docs/patterns.md", "examples/retail/README.md"} <= collected


# -- the harness itself ---------------------------------------------------------------------

_SAMPLE = """# A page

<!-- doc-test: skip because it serves forever -->
```sh
make run
```

1. A step:

   <!-- doc-test: file order.json -->
   ```json
   {"id": 1}
   ```

~~~python title="x"
print("hello")
~~~
"""


def test_blocks_are_found_with_their_line_language_directive_and_unindented_text() -> None:
    blocks = parse(_SAMPLE, "page.md")
    assert [(b.id, b.lang) for b in blocks] == [
        ("page.md:4", "sh"),
        ("page.md:11", "json"),
        ("page.md:15", "python"),
    ]
    assert blocks[0].directive == Directive(skip="it serves forever")
    assert blocks[1].directive == Directive(file="order.json")
    assert blocks[1].text == '{"id": 1}\n'
    assert blocks[2].text == 'print("hello")\n'


def test_an_unknown_directive_or_an_unclosed_fence_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown doc-test directive"):
        parse("<!-- doc-test: ignore -->\n```sh\ntrue\n```\n", "page.md")
    with pytest.raises(ValueError, match="never closed"):
        parse("```sh\ntrue\n", "page.md")


def test_a_failing_block_fails_its_test_with_its_output_and_its_line_in_the_document() -> None:
    text = (
        "```python\nprint('before')\nraise RuntimeError('broken')\n```\n\n"
        "```sh\necho partial\nfalse\necho never\n```\n"
    )
    document = Document("page.md", parse(text, "page.md"))
    try:
        python, shell = document.blocks
        with pytest.raises(pytest.fail.Exception) as failed:
            document.run(python)
        message = str(failed.value)
        assert "before" in message
        assert 'File "page.md", line 3' in message
        assert "RuntimeError: broken" in message
        with pytest.raises(pytest.fail.Exception) as failed:
            document.run(shell)
        message = str(failed.value)
        assert "exit status 1" in message
        assert "partial" in message
        assert "never" not in message
    finally:
        document.close()
