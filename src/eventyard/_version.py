"""The package version, in one place (imported by the package and its HTTP clients)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
