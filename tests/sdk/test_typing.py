"""The SDK's public surface type-checks under ``mypy --strict`` in realistic code."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from eventyard.sdk.archives import ArchivesMixin, AsyncArchivesMixin
from eventyard.sdk.client import AsyncClient, Client

from .conftest import repo_root


def test_typing_example_passes_mypy_strict() -> None:
    root = repo_root()
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "tests/typing_example_sdk.py"],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in ("close", "aclose")
    }


def test_the_twins_have_the_same_methods_signatures_and_docs() -> None:
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    assert len(sync) == 36
    for name, method in sync.items():
        twin = asynchronous[name]
        assert inspect.iscoroutinefunction(twin), name
        assert not inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(twin), name
        assert inspect.getdoc(method) == inspect.getdoc(twin), name


def test_the_archive_twins_have_the_same_methods_signatures_and_docs() -> None:
    sync, asynchronous = _public(ArchivesMixin), _public(AsyncArchivesMixin)
    assert sorted(sync) == sorted(asynchronous)
    assert len(sync) == 8
    for name, method in sync.items():
        twin = asynchronous[name]
        assert inspect.iscoroutinefunction(twin), name
        assert not inspect.iscoroutinefunction(method), name
        # ``self`` is typed by what each twin drives its flows with; the rest is the same
        ours, theirs = inspect.signature(method), inspect.signature(twin)
        assert list(ours.parameters.values())[1:] == list(theirs.parameters.values())[1:], name
        assert ours.return_annotation == theirs.return_annotation, name
        assert inspect.getdoc(method) == inspect.getdoc(twin), name
        assert getattr(Client, name) is method and getattr(AsyncClient, name) is twin, name


@pytest.mark.parametrize("cls", [Client, AsyncClient, ArchivesMixin, AsyncArchivesMixin])
def test_every_public_method_has_a_google_style_docstring(cls: type) -> None:
    for name, method in _public(cls).items():
        doc = inspect.getdoc(method) or ""
        assert doc, name
        if inspect.signature(method).parameters.keys() - {"self"}:
            assert "Args:" in doc, name
