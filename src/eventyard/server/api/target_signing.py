"""The signing secrets of webhook targets, as the control plane changes and hides them.

Three eventyard operations of the EventBridge JSON API (same endpoint, same
authentication and account scope as ``PutTargets``; not AWS operations, so boto3 has no
method for them: ``eventyard targets secret`` and the SDK's client call them):

- ``PutTargetSigningSecret`` ``{Rule, EventBusName?, TargetId, Secret?, KeepPrevious?}``:
  make ``Secret`` (``whsec_...``; generated when absent) the target's current secret and
  answer ``{Secret, CreationTime, SecretCount}``: the only answer that ever holds a
  secret. With ``KeepPrevious`` (the default) the secret it replaces stays valid and
  deliveries carry both signatures, so receivers can switch over without losing a
  delivery; ``KeepPrevious: false`` replaces every secret at once (a leaked secret).
- ``DeleteTargetSigningSecret`` ``{Rule, EventBusName?, TargetId, Previous?}``:
  ``Previous: true`` ends a rotation (the previous secret stops signing); otherwise every
  secret goes and deliveries are no longer signed.
- ``DescribeTargetSigning`` ``{Rule, EventBusName?, TargetId}``: ``{Signed,
  Secrets: [{CreationTime}]}``, newest first, never a secret.

The secrets live in the rule's document, on their target, under :data:`SIGNING`, sealed
by the master key (:mod:`eventyard.server.delivery.signing`): they follow the target's
life (``RemoveTargets`` or ``DeleteRule`` deletes them) and a ``PutTargets`` that
replaces the target with the same ``Id`` and an HTTP ``Arn`` keeps them. This module
holds the document changes; :mod:`eventyard.server.api.targets` runs them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from eventyard.errors import ResourceNotFound, ValidationError
from eventyard.server.catalog import SIGNING
from eventyard.server.delivery.signing import MAX_SECRETS
from eventyard.server.delivery.targets import target_kind

__all__ = [
    "OPERATIONS",
    "carry_signing",
    "delete_secrets",
    "describe_signing",
    "hide_signing",
    "put_secret",
    "refuse_signing_member",
]

#: the eventyard operations of this module, in the EventBridge API namespace
OPERATIONS = ("PutTargetSigningSecret", "DeleteTargetSigningSecret", "DescribeTargetSigning")


def _target(doc: Mapping[str, Any], target_id: str, rule: str) -> dict[str, Any]:
    for target in doc.get("Targets", ()):
        if target.get("Id") == target_id:
            return dict(target)
    raise ResourceNotFound(f"Target {target_id} does not exist on rule {rule}.")


def _secrets(target: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((target.get(SIGNING) or {}).get("Secrets") or ())


def _replace(doc: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    doc["Targets"] = [target if t.get("Id") == target["Id"] else t for t in doc["Targets"]]
    return doc


def put_secret(
    doc: dict[str, Any], target_id: str, record: dict[str, Any], *, keep_previous: bool
) -> tuple[dict[str, Any], int]:
    """Make ``record`` (a sealed secret) the current secret of target ``target_id``.

    Returns:
        The changed rule document and how many secrets the target now signs with.

    Raises:
        ResourceNotFound: the rule has no such target.
        ValidationError: the target is not a webhook (an HTTP URL).
    """
    target = _target(doc, target_id, str(doc.get("Name")))
    if target_kind(str(target.get("Arn", ""))) != "http":
        raise ValidationError(
            f"Target {target_id} of rule {doc.get('Name')} is not an HTTP target: only "
            "webhook targets sign their deliveries."
        )
    kept = _secrets(target)[: MAX_SECRETS - 1] if keep_previous else []
    secrets = [record, *kept]
    target[SIGNING] = {"Secrets": secrets}
    return _replace(doc, target), len(secrets)


def delete_secrets(
    doc: dict[str, Any], target_id: str, *, previous_only: bool
) -> tuple[dict[str, Any], int]:
    """Drop the previous secret (``previous_only``) or all of target ``target_id``'s.

    Returns:
        The changed rule document and how many secrets remain.

    Raises:
        ResourceNotFound: the rule has no such target.
    """
    target = _target(doc, target_id, str(doc.get("Name")))
    secrets = _secrets(target)[:1] if previous_only else []
    if secrets:
        target[SIGNING] = {"Secrets": secrets}
    else:
        target.pop(SIGNING, None)
    return _replace(doc, target), len(secrets)


def describe_signing(doc: Mapping[str, Any], target_id: str) -> dict[str, Any]:
    """``{Signed, Secrets: [{CreationTime}]}`` of target ``target_id``, no secret in it.

    Raises:
        ResourceNotFound: the rule has no such target.
    """
    secrets = _secrets(_target(doc, target_id, str(doc.get("Name"))))
    return {
        "Signed": bool(secrets),
        "Secrets": [{"CreationTime": record.get("CreationTime")} for record in secrets],
    }


def hide_signing(targets: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The targets without their sealed secrets: what ListTargetsByRule returns."""
    return [{k: v for k, v in target.items() if k != SIGNING} for target in targets]


def carry_signing(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` (a PutTargets target) with the secrets of the target it replaces, if any.

    A target that is no longer a webhook loses them.
    """
    if old is None or SIGNING not in old or target_kind(str(new.get("Arn", ""))) != "http":
        return new
    return {**new, SIGNING: copy.deepcopy(old[SIGNING])}


def refuse_signing_member(target: Mapping[str, Any], index: int) -> None:
    """Refuse a PutTargets target that carries the member where secrets are kept.

    Raises:
        ValidationError: it does (secrets are set with ``PutTargetSigningSecret``).
    """
    if SIGNING in target:
        raise ValidationError(
            f"Parameter Targets[{index - 1}] is not valid. Reason: {SIGNING} is kept by "
            "eventyard; set signing secrets with PutTargetSigningSecret (eventyard targets "
            "secret)."
        )
