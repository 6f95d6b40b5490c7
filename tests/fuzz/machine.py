"""A stateful fuzzer: hostile requests interleaved so that the resources they hit exist.

:class:`ApiMachine` mixes requests from botocore's model (:func:`model_request`) and
envelope garbage with steps that build a working path, each with fuzzed contents: a
queue, a bus, a rule on it matching ``fz.source``, targets (queue, bus, webhook) with
fuzzed ``Input``/``InputPath``/``InputTransformer``, PutEvents whose entries that rule
matches and whose ``Detail``/``Time`` are fuzzed, receives whose receipt handles later
steps delete or change. Every answer is checked with :func:`problems` as it arrives.

The machine talks to :data:`ApiMachine.server`, set by whoever runs it, and counts into
:data:`ApiMachine.tally`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from tests.fuzz.harness import Answer, InProcessServer, Tally
from tests.fuzz.requests import (
    ACCOUNT,
    BUSES,
    QUEUES,
    REGION,
    RULES,
    SOURCE,
    FuzzRequest,
    Long,
    encode,
    garbage_request,
    input_paths,
    json_text,
    model_request,
    pattern_text,
    queue_attributes,
    queue_url,
    receipt_handles,
    request_for,
    strings,
    template_text,
    times,
    wrong_types,
)

__all__ = ["ApiMachine", "FuzzFailure"]


class FuzzFailure(AssertionError):
    """An answer broke a promise; the message names the request and what went wrong."""


def _target(
    *, kind: str, target_id: str, queue: str, bus: str, shaping: dict[str, Any], dlq: str | None
) -> dict[str, Any]:
    arn = {
        "queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "bus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}",
        "http": "http://127.0.0.1:9/hook",
    }[kind]
    target = {"Id": target_id, "Arn": arn, **shaping}
    if dlq is not None:
        target["DeadLetterConfig"] = {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq}"}
        target["RetryPolicy"] = {"MaximumRetryAttempts": 0}
    return target


_shaping = st.one_of(
    st.just({}),
    st.builds(lambda text: {"Input": text}, json_text),
    st.builds(lambda path: {"InputPath": path}, input_paths),
    st.builds(
        lambda paths, template: {
            "InputTransformer": {"InputPathsMap": paths, "InputTemplate": template}
        },
        st.dictionaries(
            st.one_of(st.sampled_from(("a", "detail", "b", "aws.events.event")), strings),
            input_paths,
            max_size=4,
        ),
        template_text,
    ),
    st.builds(
        lambda value: {"InputTransformer": value},
        st.one_of(wrong_types, st.builds(lambda t: {"InputTemplate": t}, template_text)),
    ),
)

_details = st.one_of(
    st.just(Long('{"s":"' + "a" * 4000 + '"}')),
    st.builds(
        lambda s, n: encode({"s": s, "n": n}).decode("utf-8", "surrogatepass"),
        st.text(max_size=30),
        st.integers(),
    ),
    json_text,
)


class ApiMachine(RuleBasedStateMachine):
    """Requests against one shared in-process server; see the module docstring."""

    server: ClassVar[InProcessServer]
    tally: ClassVar[Tally]
    #: raise on the first broken promise (the suite: hypothesis then shrinks the
    #: sequence), or only count it (the bench).
    strict: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        # (queue, receipt handle) of received messages. Not a hypothesis Bundle: the
        # server outlives each sequence, so what a receive returns is external state.
        self.receipts: list[tuple[str, str]] = []

    def send(self, request: FuzzRequest) -> Answer:
        answer = self.server.call(request)
        found = self.tally.add(request, answer)
        if found and self.strict:
            raise FuzzFailure(f"{request!r}\n -> {answer.status} {answer.body[:500]!r}\n {found}")
        return answer

    def events(self, operation: str, params: dict[str, Any]) -> Answer:
        return self.send(request_for("events", operation, params))

    def sqs(self, operation: str, params: dict[str, Any]) -> Answer:
        return self.send(request_for("sqs", operation, params))

    # -- anything --------------------------------------------------------------------------
    @rule(request=model_request())
    def model(self, request: FuzzRequest) -> None:
        self.send(request)

    @rule(request=model_request("events"))
    def events_model(self, request: FuzzRequest) -> None:
        self.send(request)

    @rule(request=model_request("sqs"))
    def sqs_model(self, request: FuzzRequest) -> None:
        self.send(request)

    @rule(request=garbage_request())
    def garbage(self, request: FuzzRequest) -> None:
        self.send(request)

    # -- a working path, with fuzzed contents -------------------------------------------------
    @rule(
        name=st.sampled_from(QUEUES),
        attributes=st.one_of(st.just({}), st.just({}), st.just({}), queue_attributes),
    )
    def create_queue(self, name: str, attributes: dict[str, Any]) -> None:
        self.sqs("CreateQueue", {"QueueName": name, "Attributes": attributes})

    @rule(name=st.sampled_from(BUSES[1:]))
    def create_bus(self, name: str) -> None:
        self.events("CreateEventBus", {"Name": name})

    @rule(
        bus=st.sampled_from(BUSES),
        name=st.sampled_from(RULES),
        pattern=st.one_of(st.just('{"source":["' + SOURCE + '"]}'), pattern_text),
    )
    def put_rule(self, bus: str, name: str, pattern: str) -> None:
        self.events("PutRule", {"Name": name, "EventBusName": bus, "EventPattern": pattern})

    @rule(
        bus=st.sampled_from(BUSES),
        name=st.sampled_from(RULES),
        spec=st.builds(
            _target,
            kind=st.sampled_from(("queue", "queue", "queue", "bus", "http")),
            target_id=st.sampled_from(("t1", "t2", "t3")),
            queue=st.sampled_from(QUEUES),
            bus=st.sampled_from(BUSES),
            shaping=_shaping,
            dlq=st.one_of(st.none(), st.sampled_from(QUEUES)),
        ),
    )
    def put_targets(self, bus: str, name: str, spec: dict[str, Any]) -> None:
        self.events("PutTargets", {"Rule": name, "EventBusName": bus, "Targets": [spec]})

    @rule(
        entries=st.lists(
            st.fixed_dictionaries(
                {"Source": st.just(SOURCE), "DetailType": st.just("fz"), "Detail": _details},
                optional={
                    "EventBusName": st.sampled_from(BUSES),
                    "Time": times,
                    "Resources": st.lists(strings, max_size=3),
                },
            ),
            min_size=1,
            max_size=10,
        ),
        ascii_only=st.booleans(),
    )
    def put_events(self, entries: list[dict[str, Any]], ascii_only: bool) -> None:
        self.send(request_for("events", "PutEvents", {"Entries": entries}, ascii_only=ascii_only))

    @rule(event=json_text, pattern=pattern_text)
    def test_event_pattern(self, event: str, pattern: str) -> None:
        self.events("TestEventPattern", {"Event": event, "EventPattern": pattern})

    @rule(
        queue=st.sampled_from(QUEUES),
        body=strings,
        attributes=st.one_of(
            st.just({}),
            st.dictionaries(
                strings,
                st.fixed_dictionaries(
                    {"DataType": st.sampled_from(("String", "Number", "Binary", "Number.x"))},
                    optional={"StringValue": strings, "BinaryValue": strings},
                ),
                max_size=3,
            ),
        ),
    )
    def send_message(self, queue: str, body: Any, attributes: dict[str, Any]) -> None:
        params = {"QueueUrl": queue_url(queue), "MessageBody": body}
        if attributes:
            params["MessageAttributes"] = attributes
        self.sqs("SendMessage", params)

    @rule(queue=st.sampled_from(QUEUES), count=st.sampled_from((1, 10)))
    def receive(self, queue: str, count: int) -> None:
        answer = self.sqs(
            "ReceiveMessage",
            {
                "QueueUrl": queue_url(queue),
                "MaxNumberOfMessages": count,
                "WaitTimeSeconds": 0,
                "VisibilityTimeout": 0,
                "MessageAttributeNames": ["All"],
                "MessageSystemAttributeNames": ["All"],
            },
        )
        messages = orjson.loads(answer.body).get("Messages", []) if answer.status == 200 else []
        self.receipts.extend((queue, m["ReceiptHandle"]) for m in messages)
        del self.receipts[:-50]

    @rule(
        pick=st.integers(0, 1000),
        action=st.sampled_from(("delete", "change", "delete_batch", "change_batch")),
        timeout=st.one_of(st.sampled_from((0, 1, 43200, 43201, -1)), wrong_types),
    )
    def settle(self, pick: int, action: str, timeout: Any) -> None:
        queue, handle = self.receipts[pick % len(self.receipts)] if self.receipts else ("q1", "bm8")
        url = queue_url(queue)
        if action == "delete":
            self.sqs("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": handle})
        elif action == "change":
            self.sqs(
                "ChangeMessageVisibility",
                {"QueueUrl": url, "ReceiptHandle": handle, "VisibilityTimeout": timeout},
            )
        else:
            entries = [
                {"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": timeout},
                {"Id": "b", "ReceiptHandle": handle},
            ]
            operation = (
                "DeleteMessageBatch"
                if action == "delete_batch"
                else ("ChangeMessageVisibilityBatch")
            )
            self.sqs(operation, {"QueueUrl": url, "Entries": entries})

    @rule(queue=st.sampled_from(QUEUES), handle=receipt_handles())
    def settle_forged(self, queue: str, handle: Any) -> None:
        self.sqs("DeleteMessage", {"QueueUrl": queue_url(queue), "ReceiptHandle": handle})
        self.sqs(
            "ChangeMessageVisibility",
            {"QueueUrl": queue_url(queue), "ReceiptHandle": handle, "VisibilityTimeout": 5},
        )
