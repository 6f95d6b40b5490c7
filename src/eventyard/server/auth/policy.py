"""Evaluate an event bus's resource policy for a request from an account.

A bus policy is the JSON document PutPermission / RemovePermission and the ``Policy``
parameter of CreateEventBus / UpdateEventBus / PutPermission store on the bus
(:mod:`eventyard.server.api.buses`): ``{"Version": "2012-10-17", "Statement": [...]}``, each
statement with ``Sid``, ``Effect``, ``Principal``, ``Action``, ``Resource`` and optionally
``Condition``. PutPermission's own statements look like::

    {"Sid": "s1", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
     "Action": "events:PutEvents", "Resource": "arn:aws:events:us-east-1:444455556666:event-bus/b"}

Evaluation follows IAM's logic for a resource policy
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

* an explicit ``Deny`` that matches wins over everything;
* otherwise a matching ``Allow`` allows;
* otherwise the bus owner's own account is allowed (its identity has full rights in its
  own account: eventyard has no IAM users), and every other account is denied.

A statement matches when its principal (``"*"``, ``{"AWS": ...}`` with an account id,
``arn:aws:iam::ACCOUNT:root`` or ``"*"``; ``NotPrincipal``), action (IAM wildcards,
case-insensitive; ``NotAction``), resource (wildcards; ``NotResource``) and every
condition match. Conditions support the string operators (``StringEquals``,
``StringNotEquals``, ``StringEqualsIgnoreCase``, ``StringNotEqualsIgnoreCase``,
``StringLike``, ``StringNotLike``), their ``IfExists`` forms, ``ArnEquals``/``ArnLike``
and their negations, ``Null``, and the ``ForAnyValue:``/``ForAllValues:`` qualifiers, on
the keys ``aws:PrincipalOrgID``, ``aws:PrincipalAccount``, ``aws:PrincipalArn``,
``aws:SourceAccount``, ``aws:SourceArn``, ``events:source``, ``events:detail-type`` and
``events:eventBusInvocation``. As IAM documents, a key absent from the request makes a
condition false, except for negated operators (true) and ``IfExists`` (true). An
operator eventyard does not know makes an ``Allow`` statement match nothing and a
``Deny`` statement match everything it otherwise matches: unknown means closed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "PUT_EVENTS",
    "Decision",
    "PolicyRequest",
    "Refusal",
    "evaluate",
    "principal_arn",
    "refusal",
]

PUT_EVENTS = "events:PutEvents"
_ACCOUNT_ROOT_RE = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):root$")
_ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")


class Decision(enum.Enum):
    """The outcome of an evaluation."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"

    @property
    def allowed(self) -> bool:
        """Whether the request may proceed."""
        return self is Decision.ALLOW


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One request, as a policy sees it.

    Attributes:
        caller_account: the account of the key that signed the request (or, for a rule
            forwarding to a bus of another account, the rule's account).
        bus_arn: the ARN of the bus the request targets.
        bus_account: the account that owns that bus.
        action: the API action, ``events:PutEvents`` by default.
        org_id: the caller's organization id, None when it has none.
        source: the entry's ``Source`` (``events:source``).
        detail_type: the entry's ``DetailType`` (``events:detail-type``).
        source_arn: the ARN of the rule that forwards the event, for bus-to-bus
            targets (``aws:SourceArn``); None for a direct PutEvents.
    """

    caller_account: str
    bus_arn: str
    bus_account: str
    action: str = PUT_EVENTS
    org_id: str | None = None
    source: str | None = None
    detail_type: str | None = None
    source_arn: str | None = None

    def context(self) -> dict[str, list[str]]:
        """The condition keys (lower-cased, as IAM compares them) with their values."""
        keys: dict[str, str | None] = {
            "aws:principalaccount": self.caller_account,
            "aws:principalarn": principal_arn(self.caller_account),
            "aws:principalorgid": self.org_id,
            "events:source": self.source,
            "events:detail-type": self.detail_type,
            "aws:sourcearn": self.source_arn,
            "aws:sourceaccount": self.caller_account if self.source_arn else None,
            "events:eventbusinvocation": "true" if self.source_arn else None,
        }
        return {key: [value] for key, value in keys.items() if value is not None}


def principal_arn(account_id: str) -> str:
    """The ARN that stands for an account as a principal."""
    return f"arn:aws:iam::{account_id}:root"


def evaluate(
    policy: Mapping[str, Any] | str | None,
    request: PolicyRequest,
    *,
    satisfied: frozenset[str] = frozenset(),
) -> Decision:
    """Decide whether the bus policy ``policy`` lets ``request`` through.

    Args:
        policy: the policy as a mapping, or its JSON text as stored on the bus, or None
            when the bus has no policy. A text that is not a JSON object with a
            ``Statement`` grants nothing (its explicit denies cannot be read either).
        request: the caller, the bus and the event.
        satisfied: condition keys (lower-case) to take as satisfied whatever the
            request's value: their conditions hold in ``Allow`` statements and fail in
            ``Deny`` ones. It answers "would this pass if the source were acceptable?"
            (:func:`refusal`).
    """
    statements = _statements(policy)
    context = request.context()
    allowed = False
    for statement in statements:
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            continue
        deny = effect == "Deny"
        if not _matches(statement, request, context, deny=deny, satisfied=satisfied):
            continue
        if deny:
            return Decision.EXPLICIT_DENY
        allowed = True
    if allowed or request.caller_account == request.bus_account:
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


_SOURCE = frozenset({"events:source"})
_DETAIL_TYPE = frozenset({"events:detail-type"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a policy refuses a request: a PutEvents entry's ``ErrorCode`` and message."""

    code: str
    message: str


def refusal(policy: Mapping[str, Any] | str | None, request: PolicyRequest) -> Refusal | None:
    """None when ``policy`` allows ``request``; else the refusal, with AWS's error code.

    ``NotAuthorizedForSourceException`` when the event's source is what stops it (it
    would pass with a source the conditions accept), ``NotAuthorizedForDetailTypeException``
    when its detail type is, else ``AccessDeniedException``.
    """
    decision = evaluate(policy, request)
    if decision.allowed:
        return None
    who = f"User: {principal_arn(request.caller_account)} is not authorized to perform: "
    if request.source is not None and evaluate(policy, request, satisfied=_SOURCE).allowed:
        return Refusal(
            "NotAuthorizedForSourceException",
            f"{who}{request.action} with source {request.source} on resource: "
            f"{request.bus_arn}: the resource-based policy does not allow that source",
        )
    if (
        request.detail_type is not None
        and evaluate(policy, request, satisfied=_DETAIL_TYPE).allowed
    ):
        return Refusal(
            "NotAuthorizedForDetailTypeException",
            f"{who}{request.action} with detail type {request.detail_type} on resource: "
            f"{request.bus_arn}: the resource-based policy does not allow that detail type",
        )
    because = (
        "with an explicit deny in a resource-based policy"
        if decision is Decision.EXPLICIT_DENY
        else f"because no resource-based policy allows the {request.action} action"
    )
    return Refusal(
        "AccessDeniedException", f"{who}{request.action} on resource: {request.bus_arn} {because}"
    )


def _statements(policy: Mapping[str, Any] | str | None) -> list[Mapping[str, Any]]:
    if policy is None:
        return []
    if isinstance(policy, str):
        try:
            policy = orjson.loads(policy)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(policy, Mapping):
            return []
    statement = policy.get("Statement")
    if isinstance(statement, Mapping):
        return [statement]  # IAM allows a single statement object
    if isinstance(statement, list):
        return [item for item in statement if isinstance(item, Mapping)]
    return []


def _values(value: Any) -> list[str] | None:
    """A policy element that is a string or a list of strings; None when malformed."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _matches(
    statement: Mapping[str, Any],
    request: PolicyRequest,
    context: Mapping[str, list[str]],
    *,
    deny: bool,
    satisfied: frozenset[str] = frozenset(),
) -> bool:
    principal = _element(statement, "Principal", "NotPrincipal", _principal_matcher(request))
    action = _element(
        statement, "Action", "NotAction", lambda v: _wildcard(v.lower(), request.action.lower())
    )
    resource = _element(
        statement, "Resource", "NotResource", lambda v: _wildcard(v, request.bus_arn)
    )
    if not (principal and action and resource):
        return False
    condition = statement.get("Condition")
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        return deny  # unreadable: an Allow grants nothing, a Deny still denies
    return all(
        _condition(operator, block, context, deny=deny, satisfied=satisfied)
        for operator, block in condition.items()
    )


def _element(
    statement: Mapping[str, Any], name: str, negated: str, match: Callable[[str], bool]
) -> bool:
    """Whether ``name`` (or ``Not<name>``) of the statement matches the request."""
    if name in statement:
        return _any_match(statement[name], match, principal=name.endswith("Principal"))
    if negated in statement:
        return not _any_match(statement[negated], match, principal=negated.endswith("Principal"))
    return False  # a statement without the element matches nothing


def _any_match(element: Any, match: Callable[[str], bool], *, principal: bool) -> bool:
    if principal and isinstance(element, Mapping):
        # {"AWS": ...}: the only principal type an account can be
        element = element.get("AWS")
        if element is None:
            return False
    values = _values(element)
    return values is not None and any(match(value) for value in values)


def _principal_matcher(request: PolicyRequest) -> Callable[[str], bool]:
    def match(value: str) -> bool:
        if value == "*":
            return True
        if _ACCOUNT_ID_RE.match(value):
            return value == request.caller_account
        root = _ACCOUNT_ROOT_RE.match(value)
        return root is not None and root.group(1) == request.caller_account

    return match


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` any one character.

    Matched segment by segment, left to right, without backtracking (the segments
    between stars are found at their leftmost place, which is always right): at most
    ``len(value) * len(pattern)`` steps, whatever the pattern, unlike a regex.
    """
    if ignore_case:
        pattern, value = pattern.casefold(), value.casefold()
    segments = pattern.split("*")
    if len(segments) == 1:
        return len(value) == len(pattern) and _segment_at(pattern, value, 0)
    first, *middle, last = segments
    if len(first) + len(last) > len(value):
        return False
    if not _segment_at(first, value, 0) or not _segment_at(last, value, len(value) - len(last)):
        return False
    position, end = len(first), len(value) - len(last)
    for segment in middle:
        found = _find_segment(segment, value, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True


def _segment_at(segment: str, value: str, start: int) -> bool:
    return all(c == "?" or c == value[start + i] for i, c in enumerate(segment))


def _find_segment(segment: str, value: str, start: int, end: int) -> int:
    """The leftmost place in ``value[start:end]`` where ``segment`` matches, or -1."""
    if "?" not in segment:
        return value.find(segment, start, end)
    for position in range(start, end - len(segment) + 1):
        if _segment_at(segment, value, position):
            return position
    return -1


_Compare = Callable[[str, str], bool]

_OPERATORS: dict[str, tuple[_Compare, bool]] = {
    # name: (compare(policy value, request value), negated)
    "stringequals": (lambda p, v: p == v, False),
    "stringnotequals": (lambda p, v: p == v, True),
    "stringequalsignorecase": (lambda p, v: p.casefold() == v.casefold(), False),
    "stringnotequalsignorecase": (lambda p, v: p.casefold() == v.casefold(), True),
    "stringlike": (_wildcard, False),
    "stringnotlike": (_wildcard, True),
    "arnequals": (_wildcard, False),
    "arnlike": (_wildcard, False),
    "arnnotequals": (_wildcard, True),
    "arnnotlike": (_wildcard, True),
}


def _condition(
    operator: str,
    block: Any,
    context: Mapping[str, list[str]],
    *,
    deny: bool,
    satisfied: frozenset[str] = frozenset(),
) -> bool:
    """Whether one operator's block holds (every key in it must hold)."""
    if not isinstance(block, Mapping):
        return deny
    if satisfied:
        taken = [key for key in block if str(key).lower() in satisfied]
        if taken:
            if deny:
                return False  # a Deny on a satisfied key does not apply
            block = {key: value for key, value in block.items() if key not in taken}
    name = operator.lower()
    qualifier = ""
    if ":" in name:
        qualifier, _, name = name.partition(":")
        if qualifier not in ("foranyvalue", "forallvalues"):
            return deny
    if name == "null":
        results = [_null(key, expected, context) for key, expected in block.items()]
        return all(deny if result is None else result for result in results)
    if_exists = name.endswith("ifexists")
    if if_exists:
        name = name.removesuffix("ifexists")
    known = _OPERATORS.get(name)
    if known is None:
        return deny
    compare, negated = known
    for key, expected in block.items():
        wanted = _values(expected)
        if wanted is None:
            return deny
        present = context.get(str(key).lower())
        if present is None:
            # Absent key: false, except negated operators and IfExists (IAM's rule);
            # ForAllValues over no values is vacuously true.
            if not (negated or if_exists or qualifier == "forallvalues"):
                return False
            continue
        if not _holds(compare, negated, wanted, present, qualifier):
            return False
    return True


def _holds(
    compare: _Compare, negated: bool, wanted: Iterable[str], present: list[str], qualifier: str
) -> bool:
    wanted = list(wanted)

    def one(value: str) -> bool:
        hit = any(compare(pattern, value) for pattern in wanted)
        return not hit if negated else hit

    if qualifier == "forallvalues":
        return all(one(value) for value in present)
    return any(one(value) for value in present)


def _null(key: Any, expected: Any, context: Mapping[str, list[str]]) -> bool | None:
    """``Null``: whether the key's absence is as expected; None when malformed."""
    values = _values(expected)
    if values is None or len(values) != 1 or values[0].lower() not in ("true", "false"):
        return None
    absent = str(key).lower() not in context
    return absent == (values[0].lower() == "true")
