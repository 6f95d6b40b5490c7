"""The HTTP surface: the AWS JSON endpoint (EventBridge and SQS), health and metrics."""

from __future__ import annotations

__all__: list[str] = []
