"""Request validation for the EventBridge API, with AWS's exact texts.

AWS checks every request against its service model first and answers violations with one
``ValidationException`` that lists them all: ``2 validation errors detected: Value 'x' at
'name' failed to satisfy constraint: Member must …; Value …``. :class:`Violations`
collects them in that form while typed getters read the parameters (a value of the wrong
JSON type is rejected at once, never left to fail later as a 500).

The module also holds the small parsers the control plane needs before it can trust a
value: the shape of a bus resource policy and opaque pagination tokens. (Schedule
expressions are parsed by :mod:`eventyard.server.schedules.expression`; the Jackson wording
and location of invalid-JSON pattern errors come from the pattern scanner,
:mod:`eventyard.patterns.tokens`.)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from eventyard.errors import ValidationError
from eventyard.server.delivery.http_parameters import http_parameters_violations

__all__ = [
    "ACTION_PATTERN",
    "BUS_NAME_OR_ARN_PATTERN",
    "BUS_NAME_PATTERN",
    "NAME_PATTERN",
    "PRINCIPAL_PATTERN",
    "STATEMENT_ID_PATTERN",
    "Violations",
    "bus_settings",
    "check_condition",
    "check_tags",
    "check_target",
    "decode_token",
    "encode_token",
    "parse_policy",
]

NAME_PATTERN = r"[\.\-_A-Za-z0-9]+"
BUS_NAME_PATTERN = r"[/\.\-_A-Za-z0-9]+"
BUS_NAME_OR_ARN_PATTERN = (
    r"(arn:aws[\w-]*:events:[a-z]+-[a-z]+-[\w-]+:[0-9]{12}:event-bus\/)?[/\.\-_A-Za-z0-9]+"
)
STATEMENT_ID_PATTERN = r"[a-zA-Z0-9-_]+"
PRINCIPAL_PATTERN = r"(\d{12}|\*)"
ACTION_PATTERN = r"events:[a-zA-Z]+"

_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _java_text(value: Any) -> str:
    """A value as AWS's Java validator prints it inside ``Value '…'``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(v) for v in value) + "]"
    return str(value)


class Violations:
    """The model-constraint violations of one request, reported together.

    Args:
        params: the request parameters.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.items: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        """Record that ``value`` at ``path`` breaks ``constraint`` ("must …" text)."""
        shown = "null" if value is None else f"'{_java_text(value)}'"
        self.items.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: Member {constraint}"
        )

    def check(self) -> None:
        """Raise the collected violations, if any, as AWS's single ValidationException.

        Raises:
            ValidationError: at least one violation was recorded.
        """
        count = len(self.items)
        if count:
            plural = "s" if count > 1 else ""
            raise ValidationError(
                f"{count} validation error{plural} detected: " + "; ".join(self.items)
            )

    @staticmethod
    def wrong_type(label: str, value: Any, expected: str) -> ValidationError:
        """The error for a parameter of the wrong JSON type."""
        return ValidationError(
            f"Invalid type for parameter {label}: expected {expected}, got {_json_type(value)}."
        )

    def string(
        self,
        key: str,
        path: str,
        *,
        source: Mapping[str, Any] | None = None,
        label: str | None = None,
        required: bool = False,
        min_len: int | None = None,
        max_len: int | None = None,
        pattern: str | None = None,
    ) -> str | None:
        """Read a string member and check the model constraints AWS checks.

        Args:
            key: the member name in ``source`` (the request by default).
            path: AWS's camelCase location of the member, e.g. ``targets.1.member.id``.
            source: the structure holding the member, when not the request itself.
            label: the name used in a wrong-type message (``key`` by default).
            required: whether a missing member is a violation.
            min_len: minimum length, if any.
            max_len: maximum length, if any.
            pattern: the regular expression the whole value must match, if any.

        Returns:
            The value, or None when it is absent.

        Raises:
            ValidationError: the member is present but not a string.
        """
        value = (self.params if source is None else source).get(key)
        if value is None:
            if required:
                self.add(None, path, "must not be null")
            return None
        if not isinstance(value, str):
            raise self.wrong_type(label or key, value, "a string")
        self.text(value, path, min_len=min_len, max_len=max_len, pattern=pattern)
        return value

    def text(
        self,
        value: str,
        path: str,
        *,
        min_len: int | None = None,
        max_len: int | None = None,
        pattern: str | None = None,
    ) -> None:
        """Check the length and pattern constraints of a string already read."""
        if min_len is not None and len(value) < min_len:
            self.add(value, path, f"must have length greater than or equal to {min_len}")
        if max_len is not None and len(value) > max_len:
            self.add(value, path, f"must have length less than or equal to {max_len}")
        if pattern is not None and value and re.fullmatch(pattern, value) is None:
            self.add(value, path, f"must satisfy regular expression pattern: {pattern}")

    def enum(self, key: str, path: str, allowed: tuple[str, ...]) -> str | None:
        """Read a string member that must be one of ``allowed``."""
        value = self.string(key, path)
        if value is not None and value not in allowed:
            self.add(value, path, f"must satisfy enum value set: [{', '.join(allowed)}]")
        return value

    def integer(
        self,
        key: str,
        path: str,
        *,
        source: Mapping[str, Any] | None = None,
        label: str | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        """Read an integer member with an optional inclusive range."""
        value = (self.params if source is None else source).get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(label or key, value, "an integer")
        if low is not None and value < low:
            self.add(value, path, f"must have value greater than or equal to {low}")
        if high is not None and value > high:
            self.add(value, path, f"must have value less than or equal to {high}")
        return value

    def boolean(self, key: str) -> bool:
        """Read an optional boolean member (absent is False)."""
        value = self.params.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.wrong_type(key, value, "a boolean")
        return value

    def objects(
        self,
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int | None = None,
        max_items: int | None = None,
    ) -> list[dict[str, Any]] | None:
        """Read a list of structures (e.g. ``Targets``, ``Tags``)."""
        value = self.sequence(
            key, path, required=required, min_items=min_items, max_items=max_items
        )
        if value is not None and not all(isinstance(item, dict) for item in value):
            raise ValidationError(
                f"Invalid type for parameter {key}: every item must be an object."
            )
        return value

    def strings(
        self,
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int | None = None,
        max_items: int | None = None,
    ) -> list[str] | None:
        """Read a list of strings (e.g. ``Ids``, ``TagKeys``)."""
        value = self.sequence(
            key, path, required=required, min_items=min_items, max_items=max_items
        )
        if value is not None and not all(isinstance(item, str) for item in value):
            raise ValidationError(f"Invalid type for parameter {key}: every item must be a string.")
        return value

    def sequence(
        self,
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int | None = None,
        max_items: int | None = None,
    ) -> list[Any] | None:
        """Read a list member and check its length."""
        value = self.params.get(key)
        if value is None:
            if required:
                self.add(None, path, "must not be null")
            return None
        if not isinstance(value, list):
            raise self.wrong_type(key, value, "a list")
        if min_items is not None and len(value) < min_items:
            self.add(value, path, f"must have length greater than or equal to {min_items}")
        if max_items is not None and len(value) > max_items:
            self.add(value, path, f"must have length less than or equal to {max_items}")
        return value

    def structure(
        self, key: str, *, source: Mapping[str, Any] | None = None, label: str | None = None
    ) -> dict[str, Any] | None:
        """Read an optional structure member."""
        value = (self.params if source is None else source).get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.wrong_type(label or key, value, "an object")
        return value


# -- structures shared by several operations ------------------------------------------


def check_target(v: Violations, target: Mapping[str, Any], index: int) -> None:
    """Check the model constraints of the ``index``-th (1-based) PutTargets target."""
    where, label = f"targets.{index}.member", f"Targets[{index - 1}]"
    for key, path, required, high in (
        ("Id", "id", True, 64),
        ("Arn", "arn", True, 1600),
        ("RoleArn", "roleArn", False, 1600),
    ):
        v.string(
            key,
            f"{where}.{path}",
            source=target,
            label=f"{label}.{key}",
            required=required,
            min_len=1,
            max_len=high,
            pattern=NAME_PATTERN if key == "Id" else None,
        )
    retry = v.structure("RetryPolicy", source=target, label=f"{label}.RetryPolicy")
    for key, path, low, high in (
        ("MaximumRetryAttempts", "maximumRetryAttempts", 0, 185),
        ("MaximumEventAgeInSeconds", "maximumEventAgeInSeconds", 60, 86400),
    ):
        if retry is not None:
            v.integer(
                key,
                f"{where}.retryPolicy.{path}",
                source=retry,
                label=f"{label}.RetryPolicy.{key}",
                low=low,
                high=high,
            )
    dlq = v.structure("DeadLetterConfig", source=target, label=f"{label}.DeadLetterConfig")
    if dlq is not None:
        v.string(
            "Arn",
            f"{where}.deadLetterConfig.arn",
            source=dlq,
            label=f"{label}.DeadLetterConfig.Arn",
            min_len=1,
            max_len=1600,
        )
    sqs = v.structure("SqsParameters", source=target, label=f"{label}.SqsParameters")
    if sqs is not None:
        v.string(
            "MessageGroupId",
            f"{where}.sqsParameters.messageGroupId",
            source=sqs,
            label=f"{label}.SqsParameters.MessageGroupId",
            min_len=1,
            max_len=128,
        )
    v.items += http_parameters_violations(
        target.get("HttpParameters"), f"{where}.httpParameters", f"{label}.HttpParameters"
    )


def check_tags(v: Violations) -> list[dict[str, str]]:
    """Read the request's ``Tags`` (``[{Key, Value}]``); duplicate keys are an error.

    Raises:
        ValidationError: a key appears twice (AWS's text), or a tag has the wrong type.
    """
    tags = v.objects("Tags", "tags") or []
    for index, tag in enumerate(tags, start=1):
        for key, low, high in (("Key", 1, 128), ("Value", None, 256)):
            v.string(
                key,
                f"tags.{index}.member.{key.lower()}",
                source=tag,
                label=f"Tags[{index - 1}].{key}",
                required=True,
                min_len=low,
                max_len=high,
            )
    if len({tag.get("Key") for tag in tags}) != len(tags):
        raise ValidationError("Invalid parameter: Duplicated keys are not allowed.")
    return [{"Key": t["Key"], "Value": t["Value"]} for t in tags if "Key" in t and "Value" in t]


def bus_settings(v: Violations) -> dict[str, Any]:
    """Read ``Description``, ``DeadLetterConfig`` and ``LogConfig`` of a bus request.

    Returns:
        The members given; an empty ``DeadLetterConfig`` (no ``Arn``) is returned as ``{}``.
    """
    found: dict[str, Any] = {}
    description = v.string("Description", "description", max_len=512)
    if description is not None:
        found["Description"] = description
    v.string("KmsKeyIdentifier", "kmsKeyIdentifier", max_len=2048, pattern=r"^[a-zA-Z0-9_\-/:]*$")
    dlq = v.structure("DeadLetterConfig")
    if dlq is not None:
        arn = v.string(
            "Arn",
            "deadLetterConfig.arn",
            source=dlq,
            label="DeadLetterConfig.Arn",
            min_len=1,
            max_len=1600,
        )
        found["DeadLetterConfig"] = {"Arn": arn} if arn else {}
    log_config = v.structure("LogConfig")
    if log_config is not None:
        nested = Violations(log_config)
        nested.enum("IncludeDetail", "logConfig.includeDetail", ("NONE", "FULL"))
        nested.enum("Level", "logConfig.level", ("OFF", "ERROR", "INFO", "TRACE"))
        v.items.extend(nested.items)
        found["LogConfig"] = {
            k: log_config[k] for k in ("IncludeDetail", "Level") if k in log_config
        }
    return found


def check_condition(v: Violations) -> dict[str, str] | None:
    """Read PutPermission's ``Condition`` (``{Type, Key, Value}``, all three required).

    Returns:
        The condition's members, or None when there is no condition.
    """
    condition = v.structure("Condition")
    if condition is None:
        return None
    found: dict[str, str] = {}
    for key in ("Type", "Key", "Value"):
        value = v.string(
            key,
            f"condition.{key.lower()}",
            source=condition,
            label=f"Condition.{key}",
            required=True,
        )
        if value is not None:
            found[key] = value
    return found


def parse_policy(text: str) -> dict[str, Any]:
    """The resource policy of a PutPermission ``Policy`` text, checked for its shape.

    Only the shape the control plane relies on is checked (a JSON object whose
    ``Statement`` is a list of objects); the statements themselves are kept as given.

    Raises:
        ValidationError: the text is not JSON, or not a policy of that shape.
    """
    try:
        policy = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"Parameter Policy is not valid: it is not JSON ({exc}).") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list):
        raise ValidationError(
            "Parameter Policy is not valid: it must be a JSON object with a Statement list."
        )
    if not all(isinstance(statement, dict) for statement in policy["Statement"]):
        raise ValidationError(
            "Parameter Policy is not valid: every item of Statement must be a JSON object."
        )
    return policy


# -- pagination ------------------------------------------------------------------------


def encode_token(scope: str, position: str) -> str:
    """An opaque NextToken: where a listing of ``scope`` stopped."""
    return base64.urlsafe_b64encode(orjson.dumps([scope, position])).decode()


def decode_token(token: str | None, scope: str) -> str | None:
    """The position a NextToken of ``scope`` carries; None when there is no token.

    Raises:
        ValidationError: the token is not one this listing handed out.
    """
    if token is None:
        return None
    try:
        scope_seen, position = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError):
        scope_seen = position = None
    if scope_seen != scope or not isinstance(position, str):
        raise ValidationError("The NextToken value is not valid.")
    return position
