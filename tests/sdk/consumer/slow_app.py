"""A consumer for the worker-process tests: a slow sync handler that leaves marker files.

``eventyard worker tests.sdk.consumer.slow_app:consumer`` runs it; ``SLOW_APP_BUS`` names the
bus and ``SLOW_APP_DIR`` the directory for ``<order>.started`` / ``<order>.finished``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from eventyard import Event
from eventyard.sdk.consumer import Consumer

consumer = Consumer(os.environ.get("SLOW_APP_BUS", "slow"), name="slow-app")


@consumer.on({"source": ["slow-app"]})
def slow(event: Event) -> None:
    markers = Path(os.environ["SLOW_APP_DIR"])
    order = event.detail["order"]
    (markers / f"{order}.started").touch()
    time.sleep(float(event.detail["seconds"]))
    (markers / f"{order}.finished").touch()
