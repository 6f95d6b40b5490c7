"""``eventyard worker module:consumer``: run a consumer's handlers until SIGTERM.

The command loads the :class:`~eventyard.sdk.consumer.Consumer` and hands it to
:func:`eventyard.sdk.consumer.run_worker`, which creates its rules and queues, polls and
settles events. The worker is imported only when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["worker"]


def worker(
    spec: Annotated[str, typer.Argument(help="The consumer to run, as module:attribute.")],
    concurrency: Annotated[int, typer.Option(min=1, help="Handlers running at the same time.")] = 8,
    url: Annotated[
        str | None,
        typer.Option(
            help="The eventyard server (default: the consumer's url, else EVENTYARD_URL, "
            "else http://127.0.0.1:4010)."
        ),
    ] = None,
) -> None:
    """Run a consumer's handlers: create their rules and queues, poll, settle events."""
    from eventyard.sdk.consumer import run_worker

    run_worker(spec, concurrency=concurrency, url=url)
