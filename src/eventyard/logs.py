"""Logging set-up shared by the server and the worker: structured logs on stderr.

stdout is kept for what a command prints (the server's listening line, a command's data),
so every log line goes to stderr, rendered one of two ways:

* ``console``: structlog's console renderer, one aligned, coloured line per event, for a
  person at a terminal;
* ``json``: one JSON object per line (``timestamp``, ``level``, ``logger``, ``event`` and
  the event's fields), for log shippers and ``jq``.

``auto`` (the default) picks ``console`` when stderr is a terminal and ``json`` when it is
not. Log lines carry identifiers (event ids, targets, queues), never event payloads or
message bodies. Records of the standard :mod:`logging` module (uvicorn's, libraries')
are rendered the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import Processor

from eventyard.errors import ConfigurationError

__all__ = ["LogFormat", "configure_logging", "resolve_format"]

LogFormat = Literal["console", "json"]

_FORMAT_VARIABLE = "EVENTYARD_LOG_FORMAT"

#: Whether :func:`configure_logging` lets structlog cache each logger on its first use
#: (faster). The test suite turns it off: ``structlog.testing.capture_logs`` cannot see
#: the lines of a logger cached before it started, so a test's log assertion would
#: depend on which tests ran before it in the same process.
cache_loggers = True


def resolve_format(log_format: str, stream: TextIO) -> LogFormat:
    """The rendering ``log_format`` stands for when logs go to ``stream``.

    Args:
        log_format: ``auto``, ``console`` or ``json`` (any case).
        stream: where the logs go; ``auto`` asks whether it is a terminal.

    Raises:
        ConfigurationError: ``log_format`` is none of the three.
    """
    chosen = log_format.strip().lower()
    if chosen == "auto":
        return "console" if _is_terminal(stream) else "json"
    if chosen == "console":
        return "console"
    if chosen == "json":
        return "json"
    raise ConfigurationError(f"log format must be auto, console or json, got {log_format!r}")


def configure_logging(
    level: str = "info", log_format: str | None = None, *, stream: TextIO | None = None
) -> LogFormat:
    """Send structured logs at ``level`` and above to ``stream`` (default: stderr).

    Args:
        level: debug, info, warning or error (an unknown level means info).
        log_format: ``auto``, ``console`` or ``json``; default ``EVENTYARD_LOG_FORMAT``,
            else ``auto``.
        stream: where the lines go (default: ``sys.stderr`` at the time of the call).

    Returns:
        The rendering chosen: ``console`` or ``json``.

    Raises:
        ConfigurationError: the format is not auto, console or json.
    """
    out = sys.stderr if stream is None else stream
    chosen = resolve_format(log_format or os.environ.get(_FORMAT_VARIABLE) or "auto", out)
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if chosen == "console":
        colors = _is_terminal(out) and not os.environ.get("NO_COLOR")
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        tail: list[Processor] = []
    else:
        renderer = structlog.processors.JSONRenderer()
        tail = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_LoggerFactory(out),
        cache_logger_on_first_use=cache_loggers,
    )
    # the standard library's records (uvicorn, asyncio) get the same rendering; only
    # warnings and above: libraries' info chatter would drown ours
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *tail],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_eventyard", False)]:
        root.removeHandler(old)
    handler._eventyard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    return chosen


class _LoggerFactory:
    """structlog's print loggers on one stream, each knowing its name (``logger`` key)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, *args: object) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._stream, str(args[0]) if args else "")


class _NamedPrintLogger(structlog.PrintLogger):
    """A :class:`structlog.PrintLogger` with a ``name``, for ``add_logger_name``."""

    def __init__(self, stream: TextIO, name: str) -> None:
        super().__init__(stream)
        self.name = name


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
