"""eventyard: a self-hosted event router that speaks the Amazon EventBridge API."""

from __future__ import annotations

from eventyard import errors

__all__ = ["__version__", "errors"]

__version__ = "0.1.0"
