"""The HTTP surface: the AWS JSON endpoint (EventBridge and SQS), health and metrics.

Every request but the health checks passes :mod:`~eventyard.server.api.authn` first
(the Host check, then SigV4 or a bearer token, or dev mode).

May import: the rest of the server below it (runtime, router, delivery, store), and
the shared modules (errors, patterns, envelope, logs). Never the SDK or the CLI.
"""

from __future__ import annotations

__all__: list[str] = []
