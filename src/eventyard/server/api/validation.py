"""Request validation for the EventBridge API, with AWS's exact texts.

AWS checks every request against its service model first and answers violations with one
``ValidationException`` that lists them all: ``2 validation errors detected: Value 'x' at
'name' failed to satisfy constraint: Member must …; Value …``. :class:`Violations`
collects them in that form while typed getters read the parameters (a value of the wrong
JSON type is rejected at once, never left to fail later as a 500).

The module also holds the small parsers the control plane needs before it can trust a
value: the shape of a bus resource policy, opaque pagination tokens, the syntax of
``rate()``/``cron()`` schedule expressions, and the Jackson parser location AWS appends
to invalid-JSON pattern errors.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from eventyard.errors import ValidationError

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
    "first_token_location",
    "json_syntax_error",
    "parse_policy",
    "valid_schedule_expression",
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


# -- schedule expressions ------------------------------------------------------------------

_RATE_RE = re.compile(r"rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.isdigit():
        return low <= int(text) <= high
    return text.upper() in names


def _cron_item(item: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return False
    if base == "*":
        return True
    first, dash, last = base.partition("-")
    if not _cron_value(first, low, high, names):
        return False
    return not dash or _cron_value(last, low, high, names)


def _cron_field(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> bool:
    return all(_cron_item(item, low, high, names) for item in field.split(","))


def _day_of_month(field: str) -> bool:
    if field in ("?", "L", "LW"):
        return True
    if field.endswith("W") and field[:-1].isdigit():
        return 1 <= int(field[:-1]) <= 31
    return _cron_field(field, 1, 31)


def _day_of_week(field: str) -> bool:
    if field in ("?", "L"):
        return True
    if "#" in field:
        day, _, nth = field.partition("#")
        return _cron_value(day, 1, 7, _DAYS) and nth.isdigit() and 1 <= int(nth) <= 5
    if field.endswith("L") and len(field) > 1:
        return _cron_value(field[:-1], 1, 7, _DAYS)
    return _cron_field(field, 1, 7, _DAYS)


def valid_schedule_expression(expression: str) -> bool:
    """Whether ``rate(…)`` or ``cron(…)`` is a schedule expression AWS accepts.

    ``rate``: a positive integer and ``minute|hour|day``, singular exactly when the value is 1.
    ``cron``: six fields (minutes hours day-of-month month day-of-week year), with exactly
    one of the two day fields ``?``.
    """
    rate = _RATE_RE.fullmatch(expression)
    if rate is not None:
        return (rate.group(1) == "1") == (not rate.group(2).endswith("s"))
    if not (expression.startswith("cron(") and expression.endswith(")")):
        return False
    fields = expression[5:-1].split(" ")
    if len(fields) != 6:
        return False
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        return False
    return (
        _cron_field(minutes, 0, 59)
        and _cron_field(hours, 0, 23)
        and _day_of_month(dom)
        and _cron_field(month, 1, 12, _MONTHS)
        and _day_of_week(dow)
        and _cron_field(year, 1970, 2199)
    )


# -- Jackson parser locations --------------------------------------------------------------

_SNIPPET = 500
_VALUE_LIST = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"


def _source(text: str) -> str:
    if len(text) <= _SNIPPET:
        return f'(String)"{text}"'
    return f'(String)"{text[:_SNIPPET]}"[truncated {len(text) - _SNIPPET} chars]'


def _char_desc(char: str) -> str:
    code = ord(char)
    if code < 32 or 127 <= code <= 159:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"


def _identifier_part(char: str) -> bool:
    return char.isalnum() or char in "_$"


class _SyntaxFault(Exception):
    def __init__(self, reason: str, location: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location


class _Scanner:
    """Walks JSON text the way Jackson's ``ReaderBasedJsonParser`` does, up to its first error.

    Only what AWS's pattern compiler reads matters: the first root value. Locations are
    Jackson's: 1-based line and column, ``column`` counted from the current read position.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.row = 1
        self.row_start = 0

    def where(
        self, pos: int | None = None, row: int | None = None, start: int | None = None
    ) -> str:
        pos = self.pos if pos is None else pos
        row = self.row if row is None else row
        start = self.row_start if start is None else start
        return f"[Source: {_source(self.text)}; line: {row}, column: {pos - start + 1}]"

    def fail(self, reason: str, pos: int | None = None) -> _SyntaxFault:
        return _SyntaxFault(reason, self.where(pos))

    def unexpected(self, index: int, message: str) -> _SyntaxFault:
        # Jackson reports an unexpected character at the character itself (position - 1).
        return self.fail(f"Unexpected character ({_char_desc(self.text[index])}): {message}", index)

    def skip_ws(self) -> str | None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t":
                self.pos += 1
            elif char in "\r\n":
                self.pos += 1
                if char == "\r" and self.pos < len(text) and text[self.pos] == "\n":
                    self.pos += 1
                self.row += 1
                self.row_start = self.pos
            elif ord(char) < 32:
                self.pos += 1
                raise self.fail(
                    f"Illegal character ({_char_desc(char)}): only regular white space "
                    "(\\r, \\n, \\t) is allowed between tokens"
                )
            else:
                return char
        return None

    def invalid_token(self, start: int) -> _SyntaxFault:
        end = start + 1
        while end < len(self.text) and _identifier_part(self.text[end]) and end - start < 256:
            end += 1
        token = self.text[start:end] + ("..." if end - start >= 256 else "")
        self.pos = end
        return self.fail(f"Unrecognized token '{token}': was expecting {_VALUE_LIST}")

    def eof_in(self, kind: str, start: tuple[int, int, int]) -> _SyntaxFault:
        marker = self.where(*start)
        return self.fail(
            f"Unexpected end-of-input: expected close marker for {kind} (start marker at {marker})"
        )

    def first_token_end(self) -> str:
        """The location right after the first token (for ``Filter is not an object``)."""
        char = self.skip_ws()
        if char is None or char in "{[":
            self.pos += char is not None
        elif char == '"':
            self.pos += 1
        else:
            self.value(root=True)
        return self.where()

    def value(self, *, root: bool = False) -> None:
        char = self.skip_ws()
        if char is None:
            return
        index = self.pos
        if char == "{":
            self.container(index, "}", "Object")
        elif char == "[":
            self.container(index, "]", "Array")
        elif char == '"':
            self.pos += 1
            self.string()
        elif char == "-" or char.isdigit():
            self.number(root=root)
        elif char in "tfn":
            word = {"t": "true", "f": "false", "n": "null"}[char]
            if self.text.startswith(word, index) and not (
                index + len(word) < len(self.text)
                and _identifier_part(self.text[index + len(word)])
            ):
                self.pos += len(word)
            else:
                raise self.invalid_token(index)
        elif char == "}":
            self.pos += 1
            raise self.unexpected(index, "expected a value")
        elif char.isalpha() or char in "_$":
            raise self.invalid_token(index)
        else:
            self.pos += 1
            raise self.unexpected(index, f"expected a valid value {_VALUE_LIST}")

    def container(self, open_index: int, closer: str, kind: str) -> None:
        start = (open_index, self.row, self.row_start)
        self.pos += 1
        first = True
        while True:
            char = self.skip_ws()
            if char is None:
                raise self.eof_in(kind, start)
            if char in "]}":
                self.pos += 1
                if char != closer:
                    expected = closer
                    raise self.fail(
                        f"Unexpected close marker '{char}': expected '{expected}' "
                        f"(for {kind} starting at {self.where(*start)})"
                    )
                return
            if not first:
                if char != ",":
                    self.pos += 1
                    raise self.unexpected(
                        self.pos - 1, f"was expecting comma to separate {kind} entries"
                    )
                self.pos += 1
                char = self.skip_ws()
                if char is None:
                    raise self.eof_in(kind, start)
            first = False
            if kind == "Object":
                if char != '"':
                    self.pos += 1
                    raise self.unexpected(
                        self.pos - 1, "was expecting double-quote to start field name"
                    )
                self.pos += 1
                self.string()
                char = self.skip_ws()
                if char is None:
                    raise self.eof_in(kind, start)
                if char != ":":
                    self.pos += 1
                    raise self.unexpected(
                        self.pos - 1, "was expecting a colon to separate field name and value"
                    )
                self.pos += 1
            self.value()
            if self.skip_ws() is None:
                raise self.eof_in(kind, start)

    def string(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == '"':
                return
            if char == "\\":
                if self.pos >= len(text):
                    break
                escaped = text[self.pos]
                self.pos += 1
                if escaped == "u":
                    for _ in range(4):
                        if self.pos >= len(text):
                            raise self.fail("Unexpected end-of-input in character escape sequence")
                        if text[self.pos] not in "0123456789abcdefABCDEF":
                            self.pos += 1
                            raise self.unexpected(
                                self.pos - 1, "expected a hex-digit for character escape sequence"
                            )
                        self.pos += 1
                elif escaped not in '"\\/bfnrt':
                    raise self.fail(f"Unrecognized character escape {_char_desc(escaped)}")
            elif ord(char) < 32:
                raise self.fail(
                    f"Illegal unquoted character ({_char_desc(char)}): has to be escaped using "
                    "backslash to be included in string value"
                )
        raise self.fail("Unexpected end-of-input: was expecting closing quote for a string value")

    def number(self, *, root: bool) -> None:
        text = self.text
        if text[self.pos] == "-":
            self.pos += 1
            if self.pos >= len(text):
                raise self.fail("Unexpected end-of-input in a Number value")
            if not text[self.pos].isdigit():
                self.pos += 1
                raise self.fail(
                    f"Unexpected character ({_char_desc(text[self.pos - 1])}) in numeric value: "
                    "expected digit (0-9) to follow minus sign, for valid numeric value"
                )
        if text[self.pos] == "0" and self.pos + 1 < len(text) and text[self.pos + 1].isdigit():
            self.pos += 2
            raise self.fail("Invalid numeric value: Leading zeroes not allowed")
        self.digits()
        for mark, what in ((".", "Decimal point"), ("e", "Exponent indicator")):
            if self.pos < len(text) and text[self.pos].lower() == mark:
                self.pos += 1
                if mark == "e" and self.pos < len(text) and text[self.pos] in "+-":
                    self.pos += 1
                if self.pos >= len(text) or not text[self.pos].isdigit():
                    bad = text[self.pos] if self.pos < len(text) else None
                    self.pos += 1
                    if bad is None:
                        raise self.fail("Unexpected end-of-input in a Number value")
                    raise self.fail(
                        f"Unexpected character ({_char_desc(bad)}) in numeric value: "
                        f"{what} not followed by a digit"
                    )
                self.digits()
        if root and self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char not in " \t\r\n":
                raise self.unexpected(self.pos - 1, "Expected space separating root-level values")

    def digits(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1


def json_syntax_error(text: str) -> tuple[str, str] | None:
    """Jackson's reason and location for the first JSON syntax error of a pattern.

    AWS parses patterns with Jackson: invalid JSON is reported with Jackson's own text
    followed by ``\\n at [Source: (String)"<pattern>"; line: L, column: C]``.

    Args:
        text: the pattern as sent.

    Returns:
        ``(reason, location)``, the location being ``[Source: …]``; None if it parses.
    """
    scanner = _Scanner(text)
    try:
        scanner.value(root=True)
    except _SyntaxFault as fault:
        return fault.reason, fault.location
    return None


def first_token_location(text: str) -> str:
    """Jackson's location after the first token of ``text`` (``[Source: …]``).

    AWS reports ``Filter is not an object`` there, having read a token that is not ``{``.
    """
    return _Scanner(text).first_token_end()
