"""resmagic's version: one source, read by the package, the store, the sinks and setuptools."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
