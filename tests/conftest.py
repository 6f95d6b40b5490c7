"""Shared fixtures: where ../shared lives and how a missing prerequisite is reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
STRICT = os.environ.get("EVENTYARD_STRICT_TESTS") == "1"


def require(condition: bool, what: str) -> None:
    """Skip the test when ``condition`` is false, or fail under EVENTYARD_STRICT_TESTS=1."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"{what} (EVENTYARD_STRICT_TESTS=1 turns this skip into a failure)")
    pytest.skip(what)


def conformance_file(name: str) -> Path:
    """The path of a ../shared/conformance file, skipping (or failing) when it is absent."""
    path = CONFORMANCE / name
    require(path.is_file(), f"conformance file {path} is missing")
    return path
