"""The SDK: what an application imports to publish and consume events.

- :mod:`~eventyard.sdk.client`: :class:`Client` and :class:`AsyncClient`, twins over the
  sans-I/O core of :mod:`~eventyard.sdk._core` (every request built and every answer
  parsed once, for both).
- :mod:`~eventyard.sdk.event`: :class:`Event`, what a producer publishes and a consumer
  receives.
- :mod:`~eventyard.sdk.consumer`: :class:`Consumer`, ``@consumer.on(pattern)``, and
  ``run_worker`` (``eventyard worker``).
- :mod:`~eventyard.sdk.handler`: one registered handler, how an attempt of it ends
  (``Outcome``), and the settle signals :class:`Retry` and :class:`Drop`.
- :mod:`~eventyard.sdk.settle`: what an outcome means for the message (acknowledge,
  retry after a delay, dead-letter); the worker and ``testing.TestRouter`` both use it.
- :mod:`~eventyard.sdk.webhooks`: ``verify`` (and ``sign``) for receivers of signed
  webhook deliveries, re-exported as :mod:`eventyard.webhooks`.
- :mod:`~eventyard.sdk.worker`: the runtime that polls queues and runs a consumer's
  handlers; it imports neither the consumer nor the client (both hand it what it runs).

May import: :mod:`eventyard.errors`, :mod:`eventyard.patterns`, :mod:`eventyard.envelope`,
:mod:`eventyard.logs`. Never :mod:`eventyard.server` or :mod:`eventyard.cli` (an
import-linter contract in ``make check`` holds this). The public names are re-exported
by :mod:`eventyard`.
"""

from __future__ import annotations

__all__: list[str] = []
