"""``HttpParameters``: applied to a URL and an event, and checked as PutTargets checks them."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from eventyard.errors import DeliveryError, ValidationError
from eventyard.server.delivery.http_parameters import (
    HttpParameters,
    apply_http_parameters,
    check_http_parameters,
    http_parameters_violations,
)

EVENT = {
    "id": "e-1",
    "source": "shop",
    "detail-type": "OrderPlaced",
    "detail": {
        "order": "o/17",
        "total": 12.5,
        "paid": True,
        "lines": [{"sku": "a"}, {"sku": "b"}],
        "note": "ligne\nnouvelle",
        "city": "Zürich",
    },
}
EVENT_JSON = orjson.dumps(EVENT)
WHERE, LABEL = "targets.1.member.httpParameters", "Targets[0].HttpParameters"


def _apply(doc: dict[str, Any], url: str = "https://h.example/a/*/b/*") -> tuple[str, Any]:
    return apply_http_parameters(doc, url, EVENT_JSON)


def test_path_values_fill_the_wildcards_in_order_one_encoded_segment_each() -> None:
    url, headers = _apply({"PathParameterValues": ["x y", "$.detail.order"]})
    assert url == "https://h.example/a/x%20y/b/o%2F17"
    assert headers == {}


def test_wildcards_outside_the_path_are_left_alone_and_the_count_must_match() -> None:
    url, _ = _apply({"PathParameterValues": ["v"]}, "https://h.example/p/*?q=*")
    assert url == "https://h.example/p/v?q=*"
    with pytest.raises(DeliveryError) as caught:
        _apply({"PathParameterValues": ["only-one"]})
    assert not caught.value.retryable
    assert caught.value.error_code == "INVALID_PARAMETER"
    assert "2 path wildcard(s)" in caught.value.message


def test_without_path_values_a_star_stays_a_star() -> None:
    url, _ = _apply({"HeaderParameters": {"X-A": "1"}}, "https://h.example/a*b")
    assert url == "https://h.example/a*b"


def test_headers_static_and_from_the_original_event() -> None:
    _, headers = _apply(
        {
            "HeaderParameters": {
                "X-Static": "  spaced value ",
                "X-Order": "$.detail.order",
                "X-Total": "$.detail.total",
                "X-Paid": "$.detail.paid",
                "X-Lines": "$.detail.lines",
                "X-Sku": "$.detail.lines[1].sku",
                "X-Missing": "$.detail.nothing",
            }
        },
        "https://h.example/",
    )
    assert headers == {
        "X-Static": "  spaced value ",
        "X-Order": "o/17",
        "X-Total": "12.5",
        "X-Paid": "true",
        "X-Lines": '[{"sku":"a"},{"sku":"b"}]',
        "X-Sku": "b",
    }


@pytest.mark.parametrize("path", ["$.detail.note", "$.detail.city"])
def test_a_header_value_that_cannot_be_sent_fails_the_delivery_for_good(path: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        _apply({"HeaderParameters": {"X-Bad": path}}, "https://h.example/")
    assert (caught.value.retryable, caught.value.error_code) == (False, "INVALID_PARAMETER")
    assert "X-Bad" in caught.value.message


def test_query_parameters_are_encoded_and_appended_after_an_existing_query() -> None:
    url, _ = _apply(
        {
            "QueryStringParameters": {
                "order": "$.detail.order",
                "q": "a b&c=d",
                "gone": "$.detail.nothing",
                "é": "ü",
            }
        },
        "https://h.example/p?x=1",
    )
    assert url == "https://h.example/p?x=1&order=o%2F17&q=a%20b%26c%3Dd&%C3%A9=%C3%BC"
    url, _ = _apply({"QueryStringParameters": {"k": "v"}}, "https://h.example/p")
    assert url == "https://h.example/p?k=v"


def test_a_path_parameter_that_selects_nothing_fails_the_delivery() -> None:
    with pytest.raises(DeliveryError, match=r"\$\.detail\.nothing selects nothing") as caught:
        _apply({"PathParameterValues": ["$.detail.nothing", "x"]})
    assert not caught.value.retryable


def test_static_values_never_parse_the_event() -> None:
    params = HttpParameters.from_doc({"HeaderParameters": {"X-A": "b"}})
    assert params is not None and not params.reads_event
    assert params.apply("https://h.example/", b"not json") == ("https://h.example/", {"X-A": "b"})


def test_paths_read_an_event_given_parsed_or_refuse_one_that_is_not_an_object() -> None:
    params = HttpParameters.from_doc({"HeaderParameters": {"X-Src": "$.source"}})
    assert params is not None
    assert params.apply("https://h.example/", EVENT)[1] == {"X-Src": "shop"}
    for bad in (b"not json", b"[1, 2]"):
        with pytest.raises(DeliveryError):
            params.apply("https://h.example/", bad)


def test_nothing_to_apply() -> None:
    assert HttpParameters.from_doc(None) is None
    assert HttpParameters.from_doc({}) is None
    assert HttpParameters.from_doc({"HeaderParameters": {}}) is None
    assert apply_http_parameters(None, "https://h.example/", b"{}") == ("https://h.example/", {})
    with pytest.raises(DeliveryError, match="not valid"):
        apply_http_parameters({"PathParameterValues": "x"}, "https://h.example/", b"{}")


# -- PutTargets' checks --------------------------------------------------------------------


def test_valid_parameters_have_no_violation() -> None:
    doc = {
        "PathParameterValues": ["a", "$.detail.x"],
        "HeaderParameters": {"X-Api-Key": "k 1", "Accept": "$.detail.type"},
        "QueryStringParameters": {"page size": "10\r\n"},
    }
    assert http_parameters_violations(doc, WHERE, LABEL) == []
    assert http_parameters_violations(None, WHERE, LABEL) == []


def test_the_model_constraints_in_aws_words() -> None:
    found = http_parameters_violations(
        {
            "PathParameterValues": ["ok", "   "],
            "HeaderParameters": {"Bad Key": "x", "K": "v" * 513},
            "QueryStringParameters": {"k": "\x01"},
        },
        WHERE,
        LABEL,
    )
    assert found == [
        f"Value '[ok,    ]' at '{WHERE}.pathParameterValues' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must satisfy regular expression pattern: "
        r"^(?!\s*$).+]",
        f"Value '{{Bad Key=x, K={'v' * 513}}}' at '{WHERE}.headerParameters' failed to "
        "satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular "
        "expression pattern: ^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$]",
        f"Value '{{Bad Key=x, K={'v' * 513}}}' at '{WHERE}.headerParameters' failed to "
        "satisfy constraint: Map value must satisfy constraint: [Member must have length "
        "less than or equal to 512]",
        f"Value '{{k=\x01}}' at '{WHERE}.queryStringParameters' failed to satisfy "
        "constraint: Map value must satisfy constraint: [Member must satisfy regular "
        r"expression pattern: [^\x00-\x09\x0B\x0C\x0E-\x1F\x7F]+]",
    ]


@pytest.mark.parametrize(
    ("doc", "label"),
    [
        ("text", "Targets[0].HttpParameters: expected an object, got a string"),
        ({"PathParameterValues": {"a": 1}}, "PathParameterValues: expected a list"),
        ({"PathParameterValues": [1]}, "PathParameterValues[0]: expected a string"),
        ({"HeaderParameters": ["a"]}, "HeaderParameters: expected an object, got a list"),
        ({"QueryStringParameters": {"k": 1}}, "QueryStringParameters.k: expected a string"),
    ],
)
def test_a_wrong_type_is_refused_at_once(doc: Any, label: str) -> None:
    with pytest.raises(ValidationError, match=r"Invalid type for parameter .*" + re.escape(label)):
        http_parameters_violations(doc, WHERE, LABEL)


@pytest.mark.parametrize(
    ("doc", "arn", "message"),
    [
        (
            {"HeaderParameters": {"X": "1"}},
            "arn:aws:sqs:us-east-1:111111111111:q",
            "apply to HTTP targets",
        ),
        (
            {"HeaderParameters": {"X": "1"}},
            "arn:aws:events:us-east-1:111111111111:event-bus/b",
            "apply to HTTP targets",
        ),
        ({"HeaderParameters": {"Webhook-Signature": "x"}}, "https://h/", "may not set"),
        ({"HeaderParameters": {"host": "x"}}, "https://h/", "may not set host"),
        ({"QueryStringParameters": {"k": "$.a..b"}}, "https://h/", "not a valid JSON path"),
        ({"PathParameterValues": ["$[*]"]}, "https://h/*", "not a valid JSON path"),
        ({"PathParameterValues": ["a"]}, "https://h/no-wildcard", "has 0 path wildcard"),
        ({"PathParameterValues": ["a"]}, "https://h/*/*", "has 2 path wildcard"),
    ],
)
def test_eventyard_rules(doc: dict[str, Any], arn: str, message: str) -> None:
    with pytest.raises(ValidationError, match="Target t1: ") as caught:
        check_http_parameters(doc, target_id="t1", arn=arn)
    assert message in caught.value.message


def test_eventyard_rules_accept_what_they_should() -> None:
    check_http_parameters(
        {"PathParameterValues": ["a", "$.detail.b"], "HeaderParameters": {"Accept": "x"}},
        target_id="t1",
        arn="https://h.example/*/x/*",
    )
    # an API destination's endpoint is not known here: the count is checked at delivery
    check_http_parameters(
        {"PathParameterValues": ["a"]},
        target_id="t1",
        arn="arn:aws:events:us-east-1:111111111111:api-destination/d/1",
    )
