"""SQS AddPermission / RemovePermission: labelled statements in a queue's Policy.

``AddPermission`` writes what SQS writes: a statement whose ``Sid`` is the label,
allowing the listed accounts (``arn:aws:iam::<account>:root``) the listed actions
(``SQS:<Action>``) on the queue, in the queue's ``Policy`` attribute (created with
SQS's default ``Id`` when the queue has none). ``RemovePermission`` removes the
statement of a label and the whole policy with its last statement. Both edit the
policy document only: eventyard stores queue policies and returns them, but does not
yet enforce them (another account's queue is refused as a target; see docs/security.md).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from eventyard.server.api.sqs_requests import SqsError, invalid, missing

__all__ = ["MAX_PERMISSIONS", "add_permission", "remove_permission"]

# SQS allows 7 principals × actions in one statement and at most 7 statements' worth of
# permissions per AddPermission; a queue policy holds at most 20 statements.
MAX_PERMISSIONS = 20
_MAX_ACTIONS = 7
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
# the actions AddPermission may grant (SQS refuses the ones that manage the queue)
_ACTIONS = frozenset(
    {
        "*",
        "ChangeMessageVisibility",
        "DeleteMessage",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "PurgeQueue",
        "ReceiveMessage",
        "SendMessage",
    }
)


def _policy(raw: str | None, queue_arn: str) -> dict[str, Any]:
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            if not isinstance(parsed.get("Statement"), list):
                statement = parsed.get("Statement")
                parsed["Statement"] = [statement] if isinstance(statement, dict) else []
            return parsed
    return {"Version": "2012-10-17", "Id": f"{queue_arn}/SQSDefaultPolicy", "Statement": []}


def _label(params: dict[str, Any]) -> str:
    label = params.get("Label")
    if label is None or label == "":
        raise missing("Label")
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise invalid(
            f"Value {label} for parameter Label is invalid. Reason: a label is 1 to 80 "
            "characters of A-Z a-z 0-9 - _."
        )
    return label


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def add_permission(params: dict[str, Any], policy: str | None, queue_arn: str) -> str:
    """The Policy attribute after AddPermission ``params`` on a queue with ``policy``.

    Raises:
        SqsError: a missing or invalid Label, account id or action; the label exists
            (InvalidParameterValue); the policy is full (OverLimit).
    """
    label = _label(params)
    accounts = params.get("AWSAccountIds")
    actions = params.get("Actions")
    if not accounts:
        raise missing("AWSAccountIds")
    if not actions:
        raise missing("Actions")
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise invalid("AWSAccountIds must be a list of account ids.")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise invalid("Actions must be a list of action names.")
    for account in accounts:
        if not _ACCOUNT_RE.match(account):
            raise invalid(
                f"Value {account} for parameter AWSAccountIds is invalid. Reason: an "
                "account id is 12 digits."
            )
    for action in actions:
        if action not in _ACTIONS:
            raise invalid(
                f"Value SQS:{action} for parameter ActionName is invalid. Reason: Only "
                f"the queue owner is allowed to invoke this action. Actions AddPermission "
                f"may grant: {', '.join(sorted(_ACTIONS))}."
            )
    if len(actions) > _MAX_ACTIONS:
        raise SqsError(
            "OverLimit",
            "OverLimit",
            f"{len(actions)} Actions were found, maximum allowed is {_MAX_ACTIONS}.",
        )
    document = _policy(policy, queue_arn)
    statements: list[Any] = document["Statement"]
    if any(isinstance(s, dict) and s.get("Sid") == label for s in statements):
        raise invalid(f"Value {label} for parameter Label is invalid. Reason: Already exists.")
    if len(statements) >= MAX_PERMISSIONS:
        raise SqsError(
            "OverLimit",
            "OverLimit",
            f"{len(statements)} statements were found, maximum allowed is {MAX_PERMISSIONS}.",
        )
    statements.append(
        {
            "Sid": label,
            "Effect": "Allow",
            "Principal": {
                "AWS": _one_or_list([f"arn:aws:iam::{account}:root" for account in accounts])
            },
            "Action": _one_or_list([f"SQS:{action}" for action in actions]),
            "Resource": queue_arn,
        }
    )
    return orjson.dumps(document).decode()


def remove_permission(params: dict[str, Any], policy: str | None, queue_arn: str) -> str:
    """The Policy attribute after RemovePermission ``params`` ("" once it is empty).

    Raises:
        SqsError: a missing or invalid Label, or one the policy does not have.
    """
    label = _label(params)
    document = _policy(policy, queue_arn)
    statements: list[Any] = document["Statement"]
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == label)]
    if len(kept) == len(statements):
        raise invalid(
            f"Value {label} for parameter Label is invalid. Reason: can't find label on "
            "existing policy."
        )
    if not kept:
        return ""
    document["Statement"] = kept
    return orjson.dumps(document).decode()
