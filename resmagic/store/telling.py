"""How a problem of the store's reaches the user when no measured cell will end to say it.

A full queue or an unwritable file is found by a report's publish: in a plain cell's loop
or a script nothing else would say it (a measured cell says it under its report).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from types import FrameType

__all__ = ["tell"]


def tell(text: str, say: Callable[[str], None] | None) -> None:
    """Say ``text`` where the user sees it; never raise into the block that published.

    ``say``: how the IPython layer says it (printed under the cell, as a measured cell's end
    would); None, a script: a ``RuntimeWarning`` at the user's own line. Warnings turned into
    errors (``-W error``) must not fail the block (the bus's rule): printed instead.
    """
    try:
        if say is not None:
            say(text)
        else:
            level = _first_outside_resmagic()
            warnings.warn(f"resmagic: {text}", RuntimeWarning, stacklevel=level)
    except Exception:
        with contextlib.suppress(Exception):
            print(f"resmagic: {text}", file=sys.stderr)


def _first_outside_resmagic() -> int:
    """The ``stacklevel`` of the caller's first frame outside resmagic (the user's line)."""
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("resmagic."):
        frame, level = frame.f_back, level + 1
    return level
