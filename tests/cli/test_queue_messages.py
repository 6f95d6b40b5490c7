"""``eventyard queues receive | peek | redrive``: read and move messages without boto3."""

from __future__ import annotations

import json
from pathlib import Path

from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error


def _bodies(stdout: str) -> list[str]:
    return [m["Body"] for m in json.loads(stdout)]


def test_receive_prints_the_messages_then_deletes_them(invoke: Invoke, client: Client) -> None:
    client.create_queue("rcv")
    for n in range(3):
        client.send_message("rcv", f'{{"n": {n}}}')
    result = invoke("queues", "receive", "rcv", "--wait", "0", "-o", "json")
    assert result.exit_code == 0, result.stderr
    messages = json.loads(result.stdout)
    assert sorted(m["Body"] for m in messages) == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert {m["ReceiveCount"] for m in messages} == {1}
    assert all(m["MessageId"] and m["Sent"].endswith("Z") for m in messages)
    attributes = client.get_queue_attributes("rcv")
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_receive_takes_at_most_max_and_more_than_ten_in_several_receives(
    invoke: Invoke, client: Client
) -> None:
    client.create_queue("rcv-many")
    for n in range(25):
        client.send_message("rcv-many", str(n))
    first = invoke("queues", "receive", "rcv-many", "--max", "12", "--wait", "0", "-o", "json")
    assert first.exit_code == 0, first.stderr
    rest = invoke("queues", "receive", "rcv-many", "--max", "100", "--wait", "0", "-o", "json")
    got = _bodies(first.stdout) + _bodies(rest.stdout)
    assert len(_bodies(first.stdout)) == 12
    assert sorted(got, key=int) == [str(n) for n in range(25)]


def test_receive_with_no_delete_leaves_the_messages_in_flight(
    invoke: Invoke, client: Client
) -> None:
    client.create_queue("rcv-keep", attributes={"VisibilityTimeout": "600"})
    client.send_message("rcv-keep", "kept")
    result = invoke("queues", "receive", "rcv-keep", "--no-delete", "--wait", "0")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["MessageId", "Receives", "Body"]
    assert row.split()[1:] == ["1", "kept"]
    assert client.get_queue_attributes("rcv-keep")["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_receive_of_an_empty_queue_prints_an_empty_list(invoke: Invoke, client: Client) -> None:
    client.create_queue("rcv-empty")
    result = invoke("queues", "receive", "rcv-empty", "--wait", "0", "-o", "json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


def test_receive_waits_for_a_message_sent_while_it_waits(invoke: Invoke, client: Client) -> None:
    client.create_queue("rcv-wait", attributes={"DelaySeconds": "1"})
    client.send_message("rcv-wait", "late")  # visible in 1 s: the long poll gets it
    result = invoke("queues", "receive", "rcv-wait", "--wait", "20", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert _bodies(result.stdout) == ["late"]


def test_peek_shows_messages_and_leaves_them_visible(invoke: Invoke, client: Client) -> None:
    client.create_queue("peeked", attributes={"VisibilityTimeout": "600"})
    for n in range(12):
        client.send_message("peeked", str(n))
    result = invoke("queues", "peek", "peeked", "--max", "50", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert sorted(_bodies(result.stdout), key=int) == [str(n) for n in range(12)]
    attributes = client.get_queue_attributes("peeked")
    assert attributes["ApproximateNumberOfMessages"] == "12"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    again = invoke("queues", "peek", "peeked", "--max", "3", "-o", "json")
    assert len(json.loads(again.stdout)) == 3


def test_redrive_moves_dead_letters_back_to_the_one_source_queue(
    invoke: Invoke, client: Client
) -> None:
    client.create_queue("rd-dlq")
    policy = {"deadLetterTargetArn": client.queue_arn("rd-dlq"), "maxReceiveCount": 1}
    client.create_queue("rd-src", attributes={"RedrivePolicy": json.dumps(policy)})
    for n in range(13):
        client.send_message("rd-dlq", str(n), attributes={"origin": "test"})
    result = invoke("queues", "redrive", "rd-dlq")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "moved 13 messages from rd-dlq to rd-src\n"
    assert client.get_queue_attributes("rd-dlq")["ApproximateNumberOfMessages"] == "0"
    moved = invoke("queues", "receive", "rd-src", "--max", "20", "--wait", "0", "-o", "json")
    messages = json.loads(moved.stdout)
    assert sorted((m["Body"] for m in messages), key=int) == [str(n) for n in range(13)]
    assert {m["Attributes"]["origin"] for m in messages} == {"test"}


def test_redrive_to_a_named_queue_with_a_max(invoke: Invoke, client: Client) -> None:
    client.create_queue("rd-any")
    client.create_queue("rd-dest")
    for n in range(5):
        client.send_message("rd-any", str(n))
    result = invoke("queues", "redrive", "rd-any", "--to", "rd-dest", "--max", "2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"From": "rd-any", "To": "rd-dest", "Moved": 2}
    assert client.get_queue_attributes("rd-dest")["ApproximateNumberOfMessages"] == "2"
    assert client.get_queue_attributes("rd-any")["ApproximateNumberOfMessages"] == "3"


def test_redrive_without_a_known_source_is_a_usage_error(invoke: Invoke, client: Client) -> None:
    client.create_queue("rd-orphan")
    result = invoke("queues", "redrive", "rd-orphan")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "error: no queue has rd-orphan as its dead-letter queue: give --to QUEUE"
    )


def test_redrive_to_a_missing_queue_moves_nothing(invoke: Invoke, client: Client) -> None:
    client.create_queue("rd-kept")
    client.send_message("rd-kept", "stay")
    result = invoke("queues", "redrive", "rd-kept", "--to", "rd-no-such-queue")
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: AWS.SimpleQueueService.NonExistentQueue: ")
    assert client.get_queue_attributes("rd-kept")["ApproximateNumberOfMessages"] == "1"


def test_receive_from_a_missing_queue_fails_with_one_line(invoke: Invoke) -> None:
    result = invoke("queues", "receive", "no-such-queue", "--wait", "0")
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: AWS.SimpleQueueService.NonExistentQueue: ")


def test_send_sends_a_body_given_as_text_or_file(
    invoke: Invoke, client: Client, tmp_path: Path
) -> None:
    client.create_queue("sent")
    result = invoke("queues", "send", "sent", "hello", "-o", "json")
    assert result.exit_code == 0, result.stderr
    message_id = json.loads(result.stdout)["MessageId"]
    body = tmp_path / "body.json"
    body.write_text('{"from": "file"}')
    assert invoke("queues", "send", "sent", f"@{body}").stdout.startswith("sent message ")
    [first, second] = client.receive_messages("sent", wait=0)
    assert (first.id, first.body, second.body) == (message_id, "hello", '{"from": "file"}')
