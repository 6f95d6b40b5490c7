"""The ``eventyard`` command line, except ``serve`` (which :mod:`eventyard.__main__` adds).

One module per command group; every command talks to a server through the SDK's
:class:`~eventyard.sdk.client.Client` and fails the same way (``error: …`` on stderr,
exit 2 for usage, 1 for everything else).

May import: :mod:`eventyard.sdk`, :mod:`eventyard.errors`, :mod:`eventyard.patterns`,
:mod:`eventyard.envelope`, :mod:`eventyard.logs`. Never :mod:`eventyard.server` (an
import-linter contract in ``make check`` holds this).
"""

from __future__ import annotations

__all__: list[str] = []
