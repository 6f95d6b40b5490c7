"""Every AWS-recorded target-input case of ../shared/conformance/inputs.jsonl, function level.

Each case's symbolic tokens (``<bus-name>``, ``<uuid:N>``, the whole word ``date`` …) are
replaced by one concrete value each, in the event and in the expected outcome alike, then
the target is compiled with :func:`compile_input` and the event rendered through it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from typing import Any

import orjson
import pytest

from eventyard.errors import DeliveryError, ValidationError
from eventyard.server.transform import compile_input, validate_target_input
from tests.conftest import CONFORMANCE, conformance_file

CASES_FILE = "inputs.jsonl"

# One value per token; ``date`` stands for the event time and the ingestion time alike, so
# both are the same instant here (test_transform.py tells the two apart).
DATE = "2024-06-11T08:33:04Z"
TOKENS = {
    "<bus-name>": "test-bus-3f9a1c2e",
    "<rule-name>": "test-rule-7b41d0aa",
    "<target-id>": "target-5c6e2f19",
    "<region>": "eu-west-1",
    "<partition>": "aws",
    "<event-id>": "4b0e2a0c-9d3f-4c55-8f0e-2a7d61c3b9e1",
    "<ingestion-time>": DATE,
}
_UUID_RE = re.compile(r"<uuid:(\d+)>")
_DATE_RE = re.compile(r"\bdate\b")
_LEFTOVER_RE = re.compile(r"<[a-z][a-z-]*(?::\d+)?>")


def _concrete_text(text: str) -> str:
    for token, value in TOKENS.items():
        text = text.replace(token, value)
    text = _UUID_RE.sub(lambda m: f"00000000-0000-4000-8000-{int(m.group(1)):012d}", text)
    return _DATE_RE.sub(DATE, text)


def _concrete(value: Any) -> Any:
    """``value`` with every token of every string replaced (keys are never tokens)."""
    if isinstance(value, str):
        return _concrete_text(value)
    if isinstance(value, list):
        return [_concrete(item) for item in value]
    if isinstance(value, dict):
        return {key: _concrete(item) for key, item in value.items()}
    return value


def _assert_no_tokens(value: Any) -> None:
    text = json.dumps(value)
    assert not _LEFTOVER_RE.search(text), f"unsubstituted token in {text}"


def _ordered(value: Any) -> Any:
    """A form of ``value`` whose equality also compares object key order."""
    if isinstance(value, dict):
        return [[key, _ordered(item)] for key, item in value.items()]
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def _case_names() -> list[str]:
    # Collection needs the names before conformance_file can skip; a missing file yields
    # one id whose test then skips (or fails under EVENTYARD_STRICT_TESTS=1).
    path = CONFORMANCE / CASES_FILE
    if not path.is_file():
        return [f"{CASES_FILE}-missing"]
    return [json.loads(line)["name"] for line in path.read_text().splitlines() if line.strip()]


@cache
def _cases() -> dict[str, dict[str, Any]]:
    path = conformance_file(CASES_FILE)
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {case["name"]: case for case in cases}


def _case(name: str) -> dict[str, Any]:
    cases = _cases()  # skips (or fails) before the lookup when the file is absent
    return cases[name]


def _target(case: dict[str, Any]) -> dict[str, Any]:
    target_id = _concrete_text(case.get("target_id") or "<target-id>")
    return {"Id": target_id, "Arn": "arn:aws:sqs:eu-west-1:111111111111:queue", **case["target"]}


def _rule_arn(case: dict[str, Any]) -> str:
    arn = (
        case.get("rule_arn")
        or "arn:<partition>:events:<region>:111111111111:rule/<bus-name>/<rule-name>"
    )
    return _concrete_text(arn)


def _render(case: dict[str, Any]) -> bytes:
    event = _concrete(case["event"])
    _assert_no_tokens(event)
    renderer = compile_input(_target(case))
    return renderer.render(
        event,
        orjson.dumps(event),
        rule_arn=_rule_arn(case),
        rule_name=_concrete_text(case["rule_name"]),
        ingestion_time=DATE,
    )


def test_corpus_has_the_documented_cases() -> None:
    kinds = Counter(next(iter(case["expect"])) for case in _cases().values())
    assert kinds == {"body": 12, "body_json": 16, "no_delivery": 3, "put_targets_error": 2}


@pytest.mark.parametrize("name", _case_names())
def test_aws_recorded_target_input(name: str) -> None:
    case = _case(name)
    expect = case["expect"]
    if "put_targets_error" in expect:
        error = expect["put_targets_error"]
        for check in (validate_target_input, compile_input):
            with pytest.raises(ValidationError) as raised:
                check(_target(case))
            assert raised.value.code == error["code"]
            assert raised.value.status == error["http_status"]
            assert raised.value.message == _concrete_text(error["message"])
    elif "no_delivery" in expect:
        with pytest.raises(DeliveryError) as failed:
            _render(case)
        assert failed.value.retryable is False
        assert failed.value.error_code == "INVALID_INPUT"
    elif "body" in expect:
        assert _render(case).decode() == _concrete_text(expect["body"])
    else:
        wanted = _concrete(expect["body_json"])
        _assert_no_tokens(wanted)
        got = orjson.loads(_render(case))
        assert got == wanted
        assert _ordered(got) == _ordered(wanted), "same values, different key order"
