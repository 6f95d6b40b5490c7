"""``eventyard targets secret``: the signing secrets of webhook targets.

A webhook target with a secret signs each delivery the Standard Webhooks way
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``); receivers check it with
:func:`eventyard.webhooks.verify`. The commands call eventyard's own operations
(``PutTargetSigningSecret``, ``DeleteTargetSigningSecret``, ``DescribeTargetSigning``)
through :class:`eventyard.sdk.client.Client`:

- ``rotate``: a new current secret (printed once; generated unless ``--secret`` gives
  one), the previous one still signing until ``retire`` (``--replace``: at once);
- ``retire``: the previous secret stops signing (the end of a rotation);
- ``delete``: deliveries are no longer signed;
- ``show``: whether the target signs, and when its secrets were made (never a secret).
"""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from eventyard.cli.output import (
    BusOption,
    Output,
    OutputOption,
    TokenOption,
    UrlOption,
    done,
    emit_json,
    emit_table,
    open_client,
    read_text,
)

__all__ = ["secret_app"]

secret_app = typer.Typer(
    name="secret",
    help="Sign a webhook target's deliveries: rotate, retire, delete and show its secrets.",
    no_args_is_help=True,
)

RuleArgument = Annotated[str, typer.Argument(help="The rule name.")]
TargetArgument = Annotated[str, typer.Argument(metavar="ID", help="The webhook target's id.")]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")


@secret_app.command("rotate")
def secret_rotate(
    rule: RuleArgument,
    target_id: TargetArgument,
    *,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Use this secret (whsec_ + base64 of 24 to 64 bytes; @file, or - for "
            "stdin) instead of a new random one."
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Drop the other secrets at once (a leaked secret), no overlap."
        ),
    ] = False,
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Give a webhook target a new signing secret, printed once: keep it for the receiver.

    Until `retire`, the previous secret signs too, so receivers switch without a gap.
    """
    given = None if secret is None else read_text(secret, what="--secret").strip()
    with open_client(url, token) as client:
        result = client.put_signing_secret(
            rule, target_id, bus=bus, secret=given, keep_previous=not replace
        )
    if output is Output.json:
        emit_json(result)
        return
    count = result.get("SecretCount", 1)
    typer.echo(result["Secret"])
    note = "; the previous one still signs until `retire`" if count > 1 else ""
    typer.echo(f"new signing secret of {bus}/{rule}/{target_id}{note}", err=True)


@secret_app.command("retire")
def secret_retire(
    rule: RuleArgument,
    target_id: TargetArgument,
    *,
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """End a rotation: the previous secret stops signing, the current one stays."""
    with open_client(url, token) as client:
        left = client.delete_signing_secret(rule, target_id, bus=bus, previous=True)
    done(
        output,
        f"{bus}/{rule}/{target_id} signs with {left} secret(s)",
        {"Id": target_id, "SecretCount": left},
    )


@secret_app.command("delete")
def secret_delete(
    rule: RuleArgument,
    target_id: TargetArgument,
    *,
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Stop signing a webhook target's deliveries (every secret is deleted)."""
    with open_client(url, token) as client:
        client.delete_signing_secret(rule, target_id, bus=bus)
    done(
        output,
        f"{bus}/{rule}/{target_id} no longer signs its deliveries",
        {"Id": target_id, "SecretCount": 0},
    )


@secret_app.command("show")
def secret_show(
    rule: RuleArgument,
    target_id: TargetArgument,
    *,
    bus: BusOption = "default",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Whether a webhook target signs its deliveries, and when its secrets were made."""
    with open_client(url, token) as client:
        signing = client.describe_signing(rule, target_id, bus=bus)
    if output is Output.json:
        emit_json(signing)
        return
    secrets = signing.get("Secrets") or []
    emit_table(
        ["Secret", "Created"],
        [
            ("current" if i == 0 else "previous", _when(s.get("CreationTime")))
            for i, s in enumerate(secrets)
        ],
    )
    if not secrets:
        typer.echo(f"{bus}/{rule}/{target_id} does not sign its deliveries", err=True)
