"""The context managers: plain Python, usable in scripts, the library form of the magics."""

from __future__ import annotations

from resmagic.scopes.database import db_transaction
from resmagic.scopes.experiment import experiment_log
from resmagic.scopes.gpu import gpu_scope
from resmagic.scopes.timing import timed

__all__ = ["db_transaction", "experiment_log", "gpu_scope", "timed"]
