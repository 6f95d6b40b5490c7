"""Target input rendering (Input, InputPath, InputTransformer) and its PutTargets validation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventyard.errors import DeliveryError, ValidationError
from eventyard.server.transform import (
    MISSING,
    PREDEFINED_VARIABLES,
    InputRenderer,
    compile_input,
    parse_json_path,
    validate_target_input,
)

RULE_ARN = "arn:aws:events:eu-west-1:111111111111:rule/orders/ship-it"
RULE_NAME = "ship-it"
EVENT_TIME = "2024-06-11T08:33:04Z"
INGESTION_TIME = "2024-06-11T08:33:05Z"
EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6b1f9a4e-2c1d-4b8e-9f1a-3c5d7e9f0a1b",
    "detail-type": "Order Placed",
    "source": "shop.orders",
    "account": "111111111111",
    "time": EVENT_TIME,
    "region": "eu-west-1",
    "resources": ["arn:aws:shop:order/1", "arn:aws:shop:order/2"],
    "detail": {
        "id": "o-1",
        "total": 12.5,
        "count": 3,
        "paid": True,
        "gift": False,
        "note": None,
        "customer": {"id": "c-9", "tier": "gold"},
        "tags": ["a", "b"],
        "quoted": 'say "hi"',
        "multiline": "one\ntwo",
        "user-id": "u-7",
        "empty": {},
        "numbers": [1, 2],
    },
}
# Serialised with spaces, unlike orjson, so tests can tell these bytes from a re-encoding.
EVENT_JSON = orjson.dumps(EVENT).replace(b'":', b'": ')


def target(**settings: Any) -> dict[str, Any]:
    return {"Id": "t1", "Arn": "arn:aws:sqs:eu-west-1:111111111111:q", **settings}


def transformer(template: str, **paths: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"InputTemplate": template}
    if paths:
        settings["InputPathsMap"] = paths
    return target(InputTransformer=settings)


def render(
    spec: dict[str, Any], event: dict[str, Any] = EVENT, event_json: bytes = EVENT_JSON
) -> bytes:
    return compile_input(spec).render(
        event,
        event_json,
        rule_arn=RULE_ARN,
        rule_name=RULE_NAME,
        ingestion_time=INGESTION_TIME,
    )


def render_text(template: str, **paths: str) -> str:
    return render(transformer(template, **paths)).decode()


def rejected(spec: dict[str, Any], *, index: int = 1) -> str:
    with pytest.raises(ValidationError) as raised:
        validate_target_input(spec, index=index)
    assert raised.value.code == "ValidationException"
    assert raised.value.status == 400
    return raised.value.message


def undeliverable(spec: dict[str, Any]) -> DeliveryError:
    with pytest.raises(DeliveryError) as failed:
        render(spec)
    assert failed.value.retryable is False
    assert failed.value.error_code == "INVALID_INPUT"
    return failed.value


# --------------------------------------------------------------------------- JSONPath


def test_path_dollar_selects_the_whole_document() -> None:
    assert parse_json_path("$").find(EVENT) is EVENT


def test_path_dot_notation_walks_objects_and_allows_hyphens() -> None:
    assert parse_json_path("$.detail.customer.tier").find(EVENT) == "gold"
    assert parse_json_path("$.detail-type").find(EVENT) == "Order Placed"


def test_path_bracket_index_selects_array_elements_negative_from_the_end() -> None:
    assert parse_json_path("$.resources[0]").find(EVENT) == "arn:aws:shop:order/1"
    assert parse_json_path("$.resources[-1]").find(EVENT) == "arn:aws:shop:order/2"


def test_path_bracket_keys_with_either_quote_and_escapes() -> None:
    assert parse_json_path("$['detail-type']").find(EVENT) == "Order Placed"
    assert parse_json_path('$.detail["user-id"]').find(EVENT) == "u-7"
    assert parse_json_path(r"$['it\'s']").steps == ("it's",)
    assert parse_json_path("$['a.b'][1].c").steps == ("a.b", 1, "c")


def test_path_that_selects_nothing_is_missing_not_none() -> None:
    assert parse_json_path("$.detail.note").find(EVENT) is None
    for path in (
        "$.detail.absent",
        "$.resources[2]",
        "$.resources[-3]",
        "$.detail[0]",
        "$.resources.x",
    ):
        assert parse_json_path(path).find(EVENT) is MISSING
    assert parse_json_path("$.detail.id.deeper").find(EVENT) is MISSING


@pytest.mark.parametrize(
    "path",
    [
        "detail",
        "",
        "$detail",
        "$.",
        "$..detail",
        "$.detail.*",
        "$.resources[*]",
        "$.a[1:2]",
        "$.a[?(@.x)]",
        "$['a'",
        "$[0",
    ],
)
def test_path_outside_the_supported_subset_is_rejected(path: str) -> None:
    with pytest.raises(ValueError):
        parse_json_path(path)


# ------------------------------------------------------------- whole event, Input, InputPath


def test_no_input_setting_delivers_the_serialised_envelope_unchanged() -> None:
    assert render(target()) is EVENT_JSON


def test_constant_input_is_delivered_exactly_as_written() -> None:
    text = '{ "custom":  "value",\n "n": 1 }'
    assert render(target(Input=text)) == text.encode()


def test_input_path_object_is_delivered_as_json() -> None:
    assert orjson.loads(render(target(InputPath="$.detail.customer"))) == {
        "id": "c-9",
        "tier": "gold",
    }


def test_input_path_string_is_delivered_with_its_quotes() -> None:
    assert render(target(InputPath="$.detail.id")) == b'"o-1"'


def test_input_path_scalars_are_delivered_as_json_literals() -> None:
    assert render(target(InputPath="$.detail.count")) == b"3"
    assert render(target(InputPath="$.detail.paid")) == b"true"
    assert render(target(InputPath="$.detail.note")) == b"null"


def test_input_path_dollar_delivers_the_serialised_envelope() -> None:
    assert render(target(InputPath="$")) is EVENT_JSON


def test_input_path_selecting_nothing_delivers_nothing() -> None:
    error = undeliverable(target(InputPath="$.detail.absent"))
    assert "$.detail.absent" in error.message


# --------------------------------------------------------------------------- text templates


def test_string_template_inserts_strings_without_quotes() -> None:
    assert (
        render_text('"Order <id> from <src>"', id="$.detail.id", src="$.source")
        == '"Order o-1 from shop.orders"'
    )


def test_string_template_inserts_numbers_and_booleans_as_literal_text() -> None:
    text = render_text(
        '"<n> <t> <p> <g> <z>"',
        n="$.detail.count",
        t="$.detail.total",
        p="$.detail.paid",
        g="$.detail.gift",
        z="$.detail.note",
    )
    assert text == '"3 12.5 true false null"'


def test_string_template_renders_objects_and_arrays_without_quotes() -> None:
    assert (
        render_text('"<c> <t>"', c="$.detail.customer", t="$.detail.tags")
        == '"{id:c-9,tier:gold} [a,b]"'
    )


def test_string_template_missing_value_is_empty() -> None:
    assert render_text('"[<x>]"', x="$.detail.absent") == '"[]"'


def test_string_template_repeats_a_placeholder() -> None:
    assert render_text('"<id>/<id>"', id="$.detail.id") == '"o-1/o-1"'


def test_string_template_keeps_every_line_of_a_multi_line_template() -> None:
    assert render_text('"a <id>"\n"b <id>"', id="$.detail.id") == '"a o-1"\n"b o-1"'


def test_string_template_starting_with_brackets_inside_quotes_is_text() -> None:
    assert render_text('"{[/x <id>"', id="$.detail.id") == '"{[/x o-1"'


def test_string_template_keeps_escaped_quotes_and_raw_values_unescaped() -> None:
    template = r'"state \"<q>\" <m>"'
    assert (
        render_text(template, q="$.detail.quoted", m="$.detail.multiline")
        == '"state \\"say "hi"\\" one\ntwo"'
    )


def test_unquoted_text_template_is_delivered_as_plain_text() -> None:
    assert (
        render_text("<id> is <tier>", id="$.detail.id", tier="$.detail.customer.tier")
        == "o-1 is gold"
    )


def test_angle_brackets_that_are_not_placeholder_names_stay_literal() -> None:
    assert (
        render_text('"a < b, <not a name>, <<id>>"', id="$.detail.id")
        == '"a < b, <not a name>, <o-1>"'
    )


# --------------------------------------------------------------------------- JSON templates


def test_json_template_unquoted_string_becomes_a_json_string() -> None:
    assert render_text('{"id": <id>}', id="$.detail.id") == '{"id": "o-1"}'


def test_json_template_unquoted_string_is_escaped() -> None:
    body = render(transformer('{"q": <q>, "m": <m>}', q="$.detail.quoted", m="$.detail.multiline"))
    assert orjson.loads(body) == {"q": 'say "hi"', "m": "one\ntwo"}


def test_json_template_unquoted_object_array_and_scalars_embed_as_json() -> None:
    body = render(
        transformer(
            '{"c": <c>, "t": <t>, "n": <n>, "p": <p>, "z": <z>}',
            c="$.detail.customer",
            t="$.detail.tags",
            n="$.detail.total",
            p="$.detail.paid",
            z="$.detail.note",
        )
    )
    assert orjson.loads(body) == {
        "c": {"id": "c-9", "tier": "gold"},
        "t": ["a", "b"],
        "n": 12.5,
        "p": True,
        "z": None,
    }


def test_json_template_unquoted_missing_value_is_empty_string() -> None:
    assert render_text('{"x": <x>}', x="$.detail.absent") == '{"x": ""}'


def test_json_template_placeholder_in_array_literal() -> None:
    assert orjson.loads(render(transformer('[<id>, "hardcoded"]', id="$.detail.id"))) == [
        "o-1",
        "hardcoded",
    ]


def test_json_template_quoted_placeholder_is_spliced_into_the_string() -> None:
    body = render_text(
        '{"path": "users/<id>/x/<id>", "n": "<n>", "p": "<p>", "gone": "<x>"}',
        id="$.detail.id",
        n="$.detail.count",
        p="$.detail.paid",
        x="$.detail.absent",
    )
    assert body == '{"path": "users/o-1/x/o-1", "n": "3", "p": "true", "gone": ""}'


def test_json_template_quoted_and_unquoted_string_give_the_same_value() -> None:
    assert orjson.loads(render(transformer('{"id": <id>}', id="$.detail.id"))) == orjson.loads(
        render(transformer('{"id": "<id>"}', id="$.detail.id"))
    )


def test_json_template_splices_several_levels_deep() -> None:
    body = render(transformer('{"a": {"b": {"c": "u/<id>"} }, "d": ["<id>"]}', id="$.detail.id"))
    assert orjson.loads(body) == {"a": {"b": {"c": "u/o-1"}}, "d": ["o-1"]}


def test_json_template_keeps_the_template_text_around_values() -> None:
    assert render_text('{\n  "id" :   <id>\n}', id="$.detail.id") == '{\n  "id" :   "o-1"\n}'


def test_json_template_object_inside_quotes_is_not_delivered() -> None:
    undeliverable(transformer('{"c": "<c>"}', c="$.detail.customer"))


def test_json_template_array_inside_quotes_is_not_delivered() -> None:
    undeliverable(transformer('{"t": "<t>"}', t="$.detail.tags"))


def test_json_template_object_inside_quotes_fails_even_next_to_a_valid_use() -> None:
    undeliverable(transformer('{"bad": "x/<c>", "ok": <c>}', c="$.detail.customer"))


def test_json_template_quoted_value_containing_a_quote_is_not_delivered() -> None:
    undeliverable(transformer('{"q": "<q>"}', q="$.detail.quoted"))


def test_json_template_quoted_value_with_a_raw_newline_is_not_delivered() -> None:
    undeliverable(transformer('{"m": "<m>"}', m="$.detail.multiline"))


def test_json_template_spliced_json_that_happens_to_stay_valid_is_delivered() -> None:
    assert (
        render_text('{"e": "<e>", "n": "<n>"}', e="$.detail.empty", n="$.detail.numbers")
        == '{"e": "{}", "n": "[1,2]"}'
    )


def test_json_template_that_is_not_json_is_not_delivered() -> None:
    undeliverable(transformer('{"id": <id>,}', id="$.detail.id"))


def test_json_template_valid_only_for_some_values_is_checked_per_event() -> None:
    spec = transformer('{"n": -<n>}', n="$.detail.count")
    assert render(spec) == b'{"n": -3}'
    undeliverable(transformer('{"n": -<n>}', n="$.detail.id"))


# --------------------------------------------------------------------------- predefined variables


def test_predefined_rule_and_ingestion_time_variables_need_no_paths_map() -> None:
    text = render_text(
        '"<aws.events.rule-arn> <aws.events.rule-name> <aws.events.event.ingestion-time>"'
    )
    assert text == f'"{RULE_ARN} {RULE_NAME} {INGESTION_TIME}"'


def test_predefined_event_is_the_envelope_without_detail_in_aws_order() -> None:
    body = orjson.loads(render(transformer('{"e": <aws.events.event>}')))
    assert list(body["e"].items()) == [
        ("id", EVENT["id"]),
        ("account", "111111111111"),
        ("detailType", "Order Placed"),
        ("time", INGESTION_TIME),
        ("source", "shop.orders"),
        ("region", "eu-west-1"),
        ("resources", EVENT["resources"]),
        ("version", "0"),
    ]


def test_predefined_event_json_embeds_the_serialised_envelope() -> None:
    assert render(transformer('{"e": <aws.events.event.json>}')) == b'{"e": ' + EVENT_JSON + b"}"


def test_predefined_variables_render_as_text_in_string_templates() -> None:
    text = render_text('"<aws.events.event>"')
    assert text.startswith(f'"{{id:{EVENT["id"]},account:111111111111,detailType:Order Placed,')


def test_paths_map_entry_for_dollar_embeds_the_serialised_envelope() -> None:
    assert render(transformer("[<all>]", all="$")) == b"[" + EVENT_JSON + b"]"


def test_predefined_names_are_the_five_aws_variables() -> None:
    assert {
        "aws.events.rule-arn",
        "aws.events.rule-name",
        "aws.events.event.ingestion-time",
        "aws.events.event",
        "aws.events.event.json",
    } == PREDEFINED_VARIABLES


# --------------------------------------------------------------------------- compiled renderers


def test_compiled_renderer_is_reused_across_events() -> None:
    renderer = compile_input(transformer('{"id": <id>, "s": "<id>"}', id="$.detail.id"))
    assert isinstance(renderer, InputRenderer)
    second = {**EVENT, "detail": {"id": "o-2"}}
    outputs = [
        renderer.render(
            event,
            orjson.dumps(event),
            rule_arn=RULE_ARN,
            rule_name=RULE_NAME,
            ingestion_time=INGESTION_TIME,
        )
        for event in (EVENT, second, EVENT)
    ]
    assert outputs == [
        b'{"id": "o-1", "s": "o-1"}',
        b'{"id": "o-2", "s": "o-2"}',
        b'{"id": "o-1", "s": "o-1"}',
    ]


def test_renderer_failure_does_not_poison_later_events() -> None:
    renderer = compile_input(transformer('{"v": "<v>"}', v="$.detail.v"))
    kwargs: dict[str, Any] = {
        "rule_arn": RULE_ARN,
        "rule_name": RULE_NAME,
        "ingestion_time": INGESTION_TIME,
    }
    bad = {**EVENT, "detail": {"v": {"k": 1}}}
    good = {**EVENT, "detail": {"v": "fine"}}
    with pytest.raises(DeliveryError):
        renderer.render(bad, orjson.dumps(bad), **kwargs)
    assert renderer.render(good, orjson.dumps(good), **kwargs) == b'{"v": "fine"}'


def test_compile_input_validates_first() -> None:
    with pytest.raises(ValidationError):
        compile_input(target(Input="{", InputPath="$"))


# --------------------------------------------------------------------------- validation


def test_valid_settings_pass_validation() -> None:
    validate_target_input(target())
    validate_target_input(target(Input='{"a": 1}'))
    validate_target_input(target(InputPath="$.detail['user-id']"))
    validate_target_input(transformer('"<aws.events.rule-name> <a_b-C1>"', **{"a_b-C1": "$.x"}))


@pytest.mark.parametrize(
    "settings",
    [
        {"Input": "{}", "InputPath": "$"},
        {"Input": "{}", "InputTransformer": {"InputTemplate": '"x"'}},
        {"InputPath": "$", "InputTransformer": {"InputTemplate": '"x"'}},
        {"Input": "{}", "InputPath": "$", "InputTransformer": {"InputTemplate": '"x"'}},
    ],
)
def test_more_than_one_input_setting_is_rejected(settings: dict[str, Any]) -> None:
    assert (
        rejected(target(**settings))
        == "Only one of Input, InputPath, or InputTransformer must be provided for target t1."
    )


def test_template_placeholder_not_in_paths_map_is_rejected_naming_the_first() -> None:
    message = rejected(transformer('"<a> <nope> <other>"', a="$.a"))
    assert message == "InputTemplate for target t1 contains invalid placeholder nope."


def test_unknown_aws_events_variable_is_an_invalid_placeholder() -> None:
    message = rejected(transformer('"<aws.events.rule>"'))
    assert message == "InputTemplate for target t1 contains invalid placeholder aws.events.rule."


def test_input_that_is_not_json_is_rejected() -> None:
    assert rejected(target(Input="not json")) == "Input for target t1 is not a valid JSON text."
    assert rejected(target(Input="")) == "Input for target t1 is not a valid JSON text."


def test_input_longer_than_8192_characters_is_rejected() -> None:
    text = '"' + "x" * 8191 + '"'
    assert rejected(target(Input=text), index=3) == (
        f"1 validation error detected: Value '{text}' at 'targets.3.member.input' failed to "
        "satisfy constraint: Member must have length less than or equal to 8192"
    )


def test_input_path_longer_than_256_characters_is_rejected() -> None:
    path = "$." + "a" * 255
    assert rejected(target(InputPath=path)) == (
        f"1 validation error detected: Value '{path}' at 'targets.1.member.inputPath' failed to "
        "satisfy constraint: Member must have length less than or equal to 256"
    )


def test_input_path_not_starting_with_dollar_is_rejected() -> None:
    assert rejected(target(InputPath="detail")) == (
        "InputPath for target t1 is not a valid JSON path: a JSON path must start with '$'."
    )


def test_input_path_with_unsupported_syntax_is_rejected() -> None:
    assert rejected(target(InputPath="$.resources[*]")).startswith(
        "InputPath for target t1 is not a valid JSON path:"
    )


def test_paths_map_path_not_starting_with_dollar_is_rejected() -> None:
    assert rejected(transformer('"<a>"', a="detail.a")) == (
        "InputPathsMap for target t1 contains invalid JSON path detail.a for key a: "
        "a JSON path must start with '$'."
    )


def test_paths_map_with_more_than_100_entries_is_rejected() -> None:
    paths = {f"k{i}": "$.a" for i in range(101)}
    message = rejected(transformer('"x"', **paths))
    assert message.startswith("1 validation error detected: Value '{k0=$.a, k1=$.a, ")
    assert message.endswith(
        "' at 'targets.1.member.inputTransformer.inputPathsMap' failed to satisfy constraint: "
        "Member must have length less than or equal to 100"
    )


def test_paths_map_with_100_entries_is_accepted() -> None:
    validate_target_input(transformer('"x"', **{f"k{i}": "$.a" for i in range(100)}))


@pytest.mark.parametrize("key", ["AWS.x", "aws.events.rule-arn", "a b", "ä"])
def test_paths_map_key_outside_the_name_pattern_is_rejected(key: str) -> None:
    assert rejected(transformer('"x"', **{key: "$.a"})) == (
        f"1 validation error detected: Value '{{{key}=$.a}}' at "
        "'targets.1.member.inputTransformer.inputPathsMap' failed to satisfy constraint: "
        "Map keys must satisfy constraint: "
        r"[Member must satisfy regular expression pattern: [A-Za-z0-9\_\-]+]"
    )


def test_paths_map_key_of_bad_length_is_rejected() -> None:
    assert "Member must have length greater than or equal to 1" in rejected(
        transformer('"x"', **{"": "$.a"})
    )
    assert "Member must have length less than or equal to 256" in rejected(
        transformer('"x"', **{"k" * 257: "$.a"})
    )


def test_paths_map_path_longer_than_256_characters_is_rejected() -> None:
    message = rejected(transformer('"<a>"', a="$." + "a" * 255))
    assert message.endswith(
        "Map value must satisfy constraint: [Member must have length less than or equal to 256]"
    )


def test_missing_or_empty_template_is_rejected() -> None:
    assert rejected(target(InputTransformer={"InputPathsMap": {}})) == (
        "1 validation error detected: Value null at "
        "'targets.1.member.inputTransformer.inputTemplate' failed to satisfy constraint: "
        "Member must not be null"
    )
    assert rejected(target(InputTransformer={"InputTemplate": ""})).endswith(
        "failed to satisfy constraint: Member must have length greater than or equal to 1"
    )


def test_template_longer_than_8192_characters_is_rejected() -> None:
    assert rejected(transformer('"' + "x" * 8192 + '"')).endswith(
        "Member must have length less than or equal to 8192"
    )


def test_several_constraint_violations_are_reported_together() -> None:
    message = rejected(target(InputPath="$" * 257, InputTransformer={"InputTemplate": ""}))
    assert message.startswith("2 validation errors detected: Value '")
    assert "'targets.1.member.inputPath'" in message
    assert "'targets.1.member.inputTransformer.inputTemplate'" in message


def test_constraint_violations_come_before_the_one_setting_rule() -> None:
    assert rejected(target(Input="{}", InputPath="$" * 257)).startswith(
        "1 validation error detected:"
    )


def test_settings_of_the_wrong_type_are_rejected() -> None:
    assert rejected(target(Input={"a": 1})) == "Input for target t1 must be a string."
    assert (
        rejected(target(InputTransformer="x"))
        == "InputTransformer for target t1 must be an object."
    )
    assert rejected(target(InputTransformer={"InputTemplate": '"x"', "InputPathsMap": ["$"]})) == (
        "InputPathsMap for target t1 must be an object."
    )
    assert (
        rejected(transformer('"<a>"', a=1))
        == "InputPathsMap value a for target t1 must be a string."
    )
