"""Fixtures for the pattern-engine tests: the AWS-recorded conformance cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import conformance_file


@pytest.fixture(scope="session")
def pattern_cases() -> list[dict[str, Any]]:
    """The 157 cases of ../shared/conformance/patterns.jsonl (skips when absent)."""
    path = conformance_file("patterns.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
