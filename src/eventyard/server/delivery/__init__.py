"""Delivery: the engine that takes matched events to their targets, with retries and DLQs.

The router commits an event with one delivery record per (rule, target) match; the
:class:`DeliveryEngine` of some process claims them from the store (with a lease) and
delivers them; :class:`TargetSpec` is what the engine needs to
know about a target (built from the AWS ``Target`` dict with
:meth:`TargetSpec.from_target`). Target kinds live in :mod:`eventyard.server.delivery.targets`.

May import: :mod:`eventyard.server.store`, :mod:`eventyard.server.config` and the shared
modules. Never the router or the API, which sit above it (an import-linter layers
contract).
"""

from __future__ import annotations

from eventyard.server.delivery.engine import DeliveryEngine
from eventyard.server.delivery.spec import TargetSpec

__all__ = ["DeliveryEngine", "TargetSpec"]
