"""Moved to :mod:`resmagic.ipython.which_cell`; kept for code that imports it from here."""

from __future__ import annotations

from resmagic.ipython.which_cell import execute_request, running_cell_id

__all__ = ["execute_request", "running_cell_id"]
