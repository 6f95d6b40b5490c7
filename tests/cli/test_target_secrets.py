"""``eventyard targets secret`` and ``targets add --http-parameters`` against a real server."""

from __future__ import annotations

import json

from typer.testing import Result

from eventyard import webhooks
from eventyard.sdk.client import Client
from tests.cli.conftest import Invoke, one_line_error

HOOK = "http://127.0.0.1:9/hook/*"


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _webhook_rule(invoke: Invoke, rule: str) -> None:
    _ok(invoke("rules", "create", rule, "--pattern", '{"source": ["cli-secrets"]}'))
    _ok(
        invoke(
            "targets",
            "add",
            rule,
            "--id",
            "hook",
            "--arn",
            HOOK,
            "--http-parameters",
            '{"PathParameterValues": ["$.detail.id"], "HeaderParameters": {"X-A": "b"}}',
        )
    )


def test_rotate_show_retire_delete(invoke: Invoke, client: Client) -> None:
    _webhook_rule(invoke, "cli-secrets")
    [target] = client.list_targets("cli-secrets")
    assert target["HttpParameters"] == {
        "PathParameterValues": ["$.detail.id"],
        "HeaderParameters": {"X-A": "b"},
    }

    rotated = invoke("targets", "secret", "rotate", "cli-secrets", "hook")
    first = _ok(rotated).strip()
    assert len(webhooks.decode_secret(first)) == 32
    assert "previous" not in rotated.stderr  # nothing to keep yet

    second = invoke("targets", "secret", "rotate", "cli-secrets", "hook", "-o", "json")
    made = json.loads(_ok(second))
    assert made["SecretCount"] == 2 and made["Secret"] != first

    shown = _ok(invoke("targets", "secret", "show", "cli-secrets", "hook"))
    assert [line.split()[0] for line in shown.splitlines()] == ["Secret", "current", "previous"]
    assert first not in shown and made["Secret"] not in shown

    retired = _ok(invoke("targets", "secret", "retire", "cli-secrets", "hook"))
    assert retired == "default/cli-secrets/hook signs with 1 secret(s)\n"
    described = client.describe_signing("cli-secrets", "hook")
    assert described["Signed"] and len(described["Secrets"]) == 1

    own = "whsec_" + "QUJD" * 8
    given = invoke(
        "targets", "secret", "rotate", "cli-secrets", "hook", "--secret", "-", "--replace",
        input=own + "\n",
    )  # fmt: skip
    assert _ok(given).strip() == own
    assert len(client.describe_signing("cli-secrets", "hook")["Secrets"]) == 1

    _ok(invoke("targets", "secret", "delete", "cli-secrets", "hook"))
    result = invoke("targets", "secret", "show", "cli-secrets", "hook", "-o", "json")
    assert json.loads(_ok(result)) == {"Signed": False, "Secrets": []}


def test_errors_are_one_line(invoke: Invoke) -> None:
    _webhook_rule(invoke, "cli-secrets-bad")
    result = invoke(
        "targets", "secret", "rotate", "cli-secrets-bad", "hook", "--secret", "whsec_QUJD"
    )
    assert one_line_error(result) == (
        "error: ValidationException: A signing secret must hold 24 to 64 random bytes; "
        "this one holds 3."
    )
    result = invoke("targets", "secret", "show", "cli-secrets-bad", "ghost")
    assert one_line_error(result) == (
        "error: ResourceNotFoundException: Target ghost does not exist on rule cli-secrets-bad."
    )
    result = invoke(
        "targets", "add", "cli-secrets-bad", "--id", "h2", "--arn", HOOK,
        "--http-parameters", "[1]",
    )  # fmt: skip
    assert one_line_error(result) == "error: --http-parameters must be a JSON object"
