"""Logs: console rendering for a terminal, JSON lines otherwise or when asked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from eventyard.errors import ConfigurationError
from eventyard.logs import configure_logging, resolve_format
from tests.conftest import set_up_test_logging


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EVENTYARD_LOG_FORMAT", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    # back to the test process's logging (structlog's defaults would print to the
    # sys.stdout of the moment: another test's captured output)
    set_up_test_logging()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("asked", "terminal", "chosen"),
    [
        ("auto", True, "console"),
        ("auto", False, "json"),
        ("json", True, "json"),
        ("console", False, "console"),
        ("JSON", False, "json"),
    ],
)
def test_the_format_follows_the_setting_and_whether_stderr_is_a_terminal(
    asked: str, terminal: bool, chosen: str
) -> None:
    stream = _Terminal() if terminal else io.StringIO()
    assert resolve_format(asked, stream) == chosen


def test_an_unknown_format_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="auto, console or json, got 'xml'"):
        resolve_format("xml", io.StringIO())


def test_json_lines_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    assert configure_logging("info", stream=stream) == "json"
    structlog.get_logger("eventyard.test").info("delivered", target="rule/t", attempt=2)
    line = json.loads(stream.getvalue())
    assert line["event"] == "delivered"
    assert (line["level"], line["logger"]) == ("info", "eventyard.test")
    assert (line["target"], line["attempt"]) == ("rule/t", 2)
    assert line["timestamp"].endswith("Z")


def test_console_lines_on_a_terminal_with_colours_unless_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _Terminal()
    assert configure_logging("info", stream=stream) == "console"
    structlog.get_logger("eventyard.test").warning("delivery dropped", target="rule/t")
    text = stream.getvalue()
    assert "delivery dropped" in text and "target" in text and "rule/t" in text
    assert "\x1b[" in text
    assert not text.lstrip().startswith("{")

    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    configure_logging("info", stream=plain)
    structlog.get_logger("eventyard.test").warning("delivery dropped", target="rule/t")
    assert "\x1b[" not in plain.getvalue()
    assert "delivery dropped" in plain.getvalue()


def test_the_environment_variable_picks_the_format_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTYARD_LOG_FORMAT", "json")
    assert configure_logging("info", stream=_Terminal()) == "json"
    assert configure_logging("info", "console", stream=io.StringIO()) == "console"


def test_the_level_filters_and_debug_lets_everything_through() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    log = structlog.get_logger("eventyard.test")
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]

    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    structlog.get_logger("eventyard.test").debug("request", status=200)
    assert json.loads(stream.getvalue())["status"] == 200


def test_the_worker_call_with_a_level_only_still_works() -> None:
    # eventyard.sdk.worker calls configure_logging(level) and nothing else
    assert configure_logging("info") in ("console", "json")
    assert configure_logging("nonsense") in ("console", "json")


def test_standard_library_warnings_are_rendered_the_same_way() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    logging.getLogger("tests.some_library").warning("Invalid HTTP request received.")
    logging.getLogger("tests.some_library").info("Started server process")  # below warning
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "Invalid HTTP request received."
    assert (line["level"], line["logger"]) == ("warning", "tests.some_library")


def test_configuring_twice_leaves_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("info", "json", stream=second)
    logging.getLogger("some.library").error("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1
