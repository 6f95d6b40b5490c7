"""The retail example, run as a new user runs it: one command, checked end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_retail_example_runs_and_every_party_gets_exactly_its_events(tmp_path: Path) -> None:
    command = [sys.executable, "examples/retail/run.py", "--work-dir", str(tmp_path)]
    done = subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[ok] inventory reflects every order exactly once" in out
    assert "[ok] the webhook got exactly the large orders" in out
    assert "[ok] the invoice orders are dead-lettered after 3 attempts" in out
    assert "[ok] the workers stopped cleanly" in out
    assert "[FAILED]" not in out
    # the table and what the webhook got are printed for the reader
    assert "  gizmo        30     9       21" in out
    assert (
        '{"order": "o-1002", "total": 1350, "text": "Large order o-1002 from grace: 1350 EUR"}'
        in out
    )
    assert "o-1004: after 3 attempts, HANDLER_FAILED: ConnectionError" in out
