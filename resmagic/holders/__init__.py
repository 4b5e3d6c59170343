"""Who holds the memory: the names behind the bytes a session keeps (``resmagic.who()``).

A walk from the roots a user can name: the namespace (IPython's own bookkeeping left out),
the output cache (``Out[7]``, ``_``), and the frames of the last error. Each tensor or array
is counted once, by its storage, under the first name found; other names that reach the same
storage are listed beside it. Modules, classes and functions are not walked into, torch and
numpy are looked at only if already imported, and a time budget stops the walk (the result
says so). Nothing here initialises CUDA.
"""

from __future__ import annotations

from resmagic.holders.result import Holder, Holders, held_device
from resmagic.holders.walk import device_name, who

__all__ = ["Holder", "Holders", "device_name", "held_device", "who"]
