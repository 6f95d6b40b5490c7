"""The documentation's fenced code blocks: finding them, and running Python ones in order.

:func:`collect` reads the Markdown files ``tests/test_docs.py`` tests and returns every
fenced block with its file, line, language and the ``<!-- doc-test: … -->`` directive
written right before it (the rules are in ``docs/README.md``).

Run as a script (``python tests/docblocks.py``), this module is the *block runner* of
one document: it executes the document's Python blocks one after another in one
namespace, as a ``python`` started in the repository's root would, and answers each with
whether it passed and what it printed. Requests and answers are JSON lines on stdin and
on the file descriptor given as the first argument; what the blocks print (their stdout
and stderr, their subprocesses' too) goes to the file given as the second argument,
which the harness reads between two offsets.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Block", "Directive", "collect", "parse"]

# an opening fence: up to three spaces of indentation, ``` or ~~~ (3+), an info string
_FENCE = re.compile(r"^(?P<indent> {0,3}|\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True, slots=True)
class Directive:
    """A ``<!-- doc-test: … -->`` comment right before a fence.

    Attributes:
        skip: the reason after ``skip because``, or ``None``.
        file: the file name after ``file``: the block is that file's content.
    """

    skip: str | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of a Markdown file.

    Attributes:
        path: the file, relative to the repository's root (``docs/cli.md``).
        line: the 1-based line of the opening fence.
        lang: the first word of the info string, lower-cased (``""`` when none).
        text: the block's content, its common indentation removed.
        directive: the ``doc-test`` directive before it.
    """

    path: str
    line: int
    lang: str
    text: str
    directive: Directive

    @property
    def id(self) -> str:
        """``file:line``, the test id."""
        return f"{self.path}:{self.line}"


def _directive(body: str, where: str) -> Directive:
    if body.startswith("skip because "):
        reason = body.removeprefix("skip because ").strip()
        if reason:
            return Directive(skip=reason)
    elif body.startswith("file "):
        name = body.removeprefix("file ").strip()
        if name and "/" not in name and name not in {".", ".."}:
            return Directive(file=name)
    raise ValueError(
        f"{where}: unknown doc-test directive {body!r} "
        "(use 'skip because <reason>' or 'file <name>')"
    )


def parse(text: str, path: str) -> list[Block]:
    """Every fenced code block of a Markdown document, in order.

    Raises:
        ValueError: a fence is not closed, or a directive is malformed.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        info = opening["info"].strip()
        directive = Directive()
        previous = i - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0 and (found := _DIRECTIVE.match(lines[previous])):
            directive = _directive(found["body"], f"{path}:{previous + 1}")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(lines[j])
            j += 1
        else:
            raise ValueError(f"{path}:{i + 1}: the code block is never closed")
        # a block inside a list item is indented: remove what every line shares
        body = [line[indent:] if line[:indent].isspace() else line for line in body]
        lang = info.split()[0].lower() if info else ""
        blocks.append(Block(path, i + 1, lang, "\n".join(body) + "\n", directive))
        i = j + 1
    return blocks


def collect(root: Path, paths: list[Path]) -> list[Block]:
    """The blocks of ``paths`` (Markdown files under ``root``), file by file."""
    blocks: list[Block] = []
    for path in paths:
        blocks += parse(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
    return blocks


# -- the block runner (a subprocess per document) ------------------------------------------


def _run_block(code_text: str, filename: str, line: int, namespace: dict[str, Any]) -> None:
    """Execute one block; then call the ``test_*`` functions it defined."""
    before = {name: value for name, value in namespace.items() if name.startswith("test_")}
    # padding keeps the document's line numbers in tracebacks
    source = "\n" * line + code_text
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))  # a block with top-level await
    else:
        exec(code, namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value) and before.get(name) is not value:
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


def _serve(reply_fd: int, output: str) -> None:
    # the blocks' output, including their subprocesses', goes to the output file
    sink = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(sink)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    # as in `python` started in the repository's root: the working directory first
    sys.path[0] = os.getcwd()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for request_line in sys.stdin:
        request = json.loads(request_line)
        error = None
        try:
            _run_block(request["code"], request["path"], request["line"], namespace)
        except BaseException:
            error = traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps({"error": error}) + "\n")


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
