"""Connection ``AuthParameters``: their model constraints, completeness and updates.

What :mod:`eventyard.server.api.connections` needs to trust the ``AuthParameters`` of a
CreateConnection or UpdateConnection request: the constraints of AWS's service model,
reported with AWS's wording and locations through
:class:`~eventyard.server.api.validation.Violations` (:func:`check_auth`); that the block
of the authorization type is there, complete and alone (:func:`check_blocks`); the
refusal of what eventyard does not serve (private connectivity, KMS keys); and how an
update's members replace the stored ones (:func:`merge_auth`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from eventyard.errors import ValidationError
from eventyard.server.api.validation import Violations

__all__ = [
    "AUTH_TYPES",
    "BLOCKS",
    "HTTPS_ENDPOINT",
    "OAUTH_METHODS",
    "REQUIRED",
    "camel",
    "check_auth",
    "check_blocks",
    "merge_auth",
    "refuse_unsupported",
    "without_nulls",
]

#: ``ConnectionAuthorizationType``, in the order AWS lists it in its messages
AUTH_TYPES: Final = ("BASIC", "OAUTH_CLIENT_CREDENTIALS", "API_KEY")
BLOCKS: Final = {
    "BASIC": "BasicAuthParameters",
    "API_KEY": "ApiKeyAuthParameters",
    "OAUTH_CLIENT_CREDENTIALS": "OAuthParameters",
}
OAUTH_METHODS: Final = ("GET", "POST", "PUT")
#: the model's ``HttpsEndpoint`` pattern (endpoints of destinations and of OAuth)
HTTPS_ENDPOINT: Final = r"^((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@\x26=+$,A-Za-z0-9])+)([).!';/?:,])?$"
_AUTH_HEADER: Final = r"^[ \t]*[^\x00-\x1F:\x7F]+([ \t]+[^\x00-\x1F:\x7F]+)*[ \t]*$"
_HEADER_KEY: Final = r"^[!#$%&'*+-.^_`|~0-9a-zA-Z]+$"
_HEADER_VALUE: Final = r"^[ \t]*[\x20-\x7E]+([ \t]+[\x20-\x7E]+)*[ \t]*$"
_QUERY_KEY: Final = r"[^\x00-\x1F\x7F]+"
_QUERY_VALUE: Final = r"[^\x00-\x09\x0B\x0C\x0E-\x1F\x7F]+"
# the members each auth block must have once complete (secrets included)
REQUIRED: Final = {
    "BasicAuthParameters": ("Username", "Password"),
    "ApiKeyAuthParameters": ("ApiKeyName", "ApiKeyValue"),
    "OAuthParameters": ("ClientParameters", "AuthorizationEndpoint", "HttpMethod"),
}


def camel(name: str) -> str:
    """A member's name as AWS's messages locate it: ``AuthParameters`` → ``authParameters``."""
    return name[0].lower() + name[1:]


def check_parameters(v: Violations, parameters: Any, path: str, label: str) -> None:
    """The model constraints of ``ConnectionHttpParameters`` at ``path``."""
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise Violations.wrong_type(label, parameters, "an object")
    nested = Violations(parameters)
    for name, key_pattern, value_pattern in (
        ("HeaderParameters", _HEADER_KEY, _HEADER_VALUE),
        ("QueryStringParameters", _QUERY_KEY, _QUERY_VALUE),
        ("BodyParameters", None, None),
    ):
        where = f"{path}.{camel(name)}"
        items = nested.objects(name, where, max_items=100) or []
        for index, item in enumerate(items, start=1):
            member = f"{where}.{index}.member"
            nested.string("Key", f"{member}.key", source=item, max_len=512, pattern=key_pattern)
            nested.string(
                "Value", f"{member}.value", source=item, max_len=512, pattern=value_pattern
            )
            secret = item.get("IsValueSecret")
            if secret is not None and not isinstance(secret, bool):
                raise Violations.wrong_type(
                    f"{label}.{name}[{index - 1}].IsValueSecret", secret, "a boolean"
                )
    v.items.extend(nested.items)


def check_auth(v: Violations, auth: Mapping[str, Any] | None, *, complete: bool) -> None:
    """The model constraints of ``AuthParameters`` (``complete``: CreateConnection's
    shape, where every member of a block is required)."""
    if auth is None:
        return
    base = "authParameters"
    for block, members in (
        ("BasicAuthParameters", ("Username", "Password")),
        ("ApiKeyAuthParameters", ("ApiKeyName", "ApiKeyValue")),
    ):
        found = v.structure(block, source=auth, label=f"AuthParameters.{block}")
        for member in members if found is not None else ():
            v.string(
                member,
                f"{base}.{camel(block)}.{camel(member)}",
                source=found,
                label=f"AuthParameters.{block}.{member}",
                required=complete,
                min_len=1,
                max_len=512,
                pattern=_AUTH_HEADER,
            )
    oauth = v.structure("OAuthParameters", source=auth, label="AuthParameters.OAuthParameters")
    if oauth is not None:
        where = f"{base}.oAuthParameters"
        client = v.structure(
            "ClientParameters",
            source=oauth,
            label="AuthParameters.OAuthParameters.ClientParameters",
        )
        if client is None and complete:
            v.add(None, f"{where}.clientParameters", "must not be null")
        for member in ("ClientID", "ClientSecret") if client is not None else ():
            v.string(
                member,
                f"{where}.clientParameters.{camel(member)}",
                source=client,
                required=complete,
                min_len=1,
                max_len=512,
                pattern=_AUTH_HEADER,
            )
        v.string(
            "AuthorizationEndpoint",
            f"{where}.authorizationEndpoint",
            source=oauth,
            required=complete,
            min_len=1,
            max_len=2048,
            pattern=HTTPS_ENDPOINT,
        )
        method = v.string("HttpMethod", f"{where}.httpMethod", source=oauth, required=complete)
        # AWS takes the method in any case ("put" was recorded as accepted)
        if method is not None and method.upper() not in OAUTH_METHODS:
            v.add(method, f"{where}.httpMethod", "must satisfy enum value set: [GET, POST, PUT]")
        check_parameters(
            v,
            oauth.get("OAuthHttpParameters"),
            f"{where}.oAuthHttpParameters",
            "AuthParameters.OAuthParameters.OAuthHttpParameters",
        )
    check_parameters(
        v,
        auth.get("InvocationHttpParameters"),
        f"{base}.invocationHttpParameters",
        "AuthParameters.InvocationHttpParameters",
    )


def refuse_unsupported(params: Mapping[str, Any], auth: Mapping[str, Any] | None) -> None:
    if params.get("KmsKeyIdentifier"):
        raise ValidationError(
            "KmsKeyIdentifier is not supported by eventyard: connection secrets are sealed "
            "with the server's master key."
        )
    if params.get("InvocationConnectivityParameters") or (auth or {}).get("ConnectivityParameters"):
        raise ValidationError(
            "Private connectivity (InvocationConnectivityParameters, ConnectivityParameters) "
            "is not supported by eventyard: endpoints are reached directly, within the "
            "outbound policy."
        )


def check_blocks(auth_type: str, auth: Mapping[str, Any]) -> None:
    """The auth block of ``auth_type`` is there, complete, and alone.

    Raises:
        ValidationError: it is missing or incomplete, or another type's block is given.
    """
    block = BLOCKS[auth_type]
    others = [b for b in BLOCKS.values() if b != block and auth.get(b) is not None]
    if others:
        raise ValidationError(
            f"AuthParameters.{others[0]} is not allowed with AuthorizationType {auth_type}: "
            f"give AuthParameters.{block}."
        )
    found = auth.get(block)
    if not isinstance(found, dict):
        raise ValidationError(
            f"AuthParameters.{block} is required for AuthorizationType {auth_type}."
        )
    for member in REQUIRED[block]:
        if found.get(member) is None:
            raise ValidationError(f"AuthParameters.{block}.{member} is required.")
    client = found.get("ClientParameters")
    if isinstance(client, dict):
        for member in ("ClientID", "ClientSecret"):
            if client.get(member) is None:
                raise ValidationError(
                    f"AuthParameters.{block}.ClientParameters.{member} is required."
                )


def without_nulls(value: Any) -> Any:
    """``value`` without its null members (boto3 and the CLI send none; a null is a
    member not given)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def merge_auth(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """UpdateConnection's ``AuthParameters`` over the stored ones: the members given
    replace those stored, block by block; parameter lists are replaced whole."""
    merged = copy.deepcopy(dict(old))
    for block, value in new.items():
        if value is None:
            continue  # a null member is one not given
        if block in REQUIRED and isinstance(value, dict) and isinstance(merged.get(block), dict):
            inner = merged[block]
            for key, member in value.items():
                if member is None:
                    continue
                if key == "ClientParameters" and isinstance(inner.get(key), dict):
                    inner[key] = {**inner[key], **member}
                else:
                    inner[key] = copy.deepcopy(member)
        else:
            merged[block] = copy.deepcopy(value)
    return merged
