"""The server: everything ``eventyard serve`` runs.

- :mod:`~eventyard.server.config`: :class:`Settings` and where they come from.
- :mod:`~eventyard.server.command` and :mod:`~eventyard.server.serve`: the ``serve``
  command, binding, uvicorn, graceful shutdown.
- :mod:`~eventyard.server.runtime`: the running components and their lifecycle.
- :mod:`~eventyard.server.accounts`: which account owns a resource, internal names,
  the ARNs and queue URLs an account sees.
- :mod:`~eventyard.server.admin` and :mod:`~eventyard.server.admin_command`: the admin
  channel of a data directory and the ``accounts`` / ``keys`` commands.
- :mod:`~eventyard.server.auth`: SigV4, accounts and keys, the master key, bus policies.
- :mod:`~eventyard.server.router`: ingest, match, enqueue (the heart).
- :mod:`~eventyard.server.transform`: Input, InputPath and InputTransformer.
- :mod:`~eventyard.server.signals`: long-poll wake-ups.
- :mod:`~eventyard.server.api`: the HTTP surface (AWS JSON for EventBridge and SQS,
  the native endpoints).
- :mod:`~eventyard.server.delivery`: the delivery engine and its target kinds.
- :mod:`~eventyard.server.store`: the store protocol and its backends.

May import: :mod:`eventyard.errors`, :mod:`eventyard.patterns`, :mod:`eventyard.envelope`,
:mod:`eventyard.logs`. Never :mod:`eventyard.sdk` or :mod:`eventyard.cli`: the two sides
meet only on the wire (import-linter contracts in ``make check``). Importing this package
is cheap; its modules load what they need.
"""

from __future__ import annotations

__all__: list[str] = []
