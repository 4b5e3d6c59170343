"""The stops waiting for a safe point, one per thread, shared by every way of delivering.

The target thread claims its stop with one ``dict.pop`` (atomic under the GIL) and takes no
lock: it may be stopped, by a trace event or a pending call, while it holds any lock,
resmagic's included.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

from resmagic.delivery.where import safe_point

__all__ = ["Stop", "claim", "claim_at", "waiting"]


class Stop:
    """One exception waiting to be raised at a safe point of one thread.

    Args:
        exc: the exception class, raised by calling it with no arguments.
        anchor: the frame of the block that asked for it (its ``with``), if it is the user's:
            the stop may land in the user's code that runs above it.
    """

    __slots__ = ("anchor", "callbacks", "exc", "looks")

    def __init__(self, exc: type[BaseException], anchor: FrameType | None = None) -> None:
        self.exc = exc
        self.anchor = anchor
        self.callbacks = False
        """Relaxed: also into the user's code that a library calls back (a ``forward``, a
        callback), and by the fallback from the user's line nearest to the thread."""
        self.looks = 0
        """How many samples the fallback (:mod:`.asyncexc`) has looked at the thread."""


waiting: dict[int, Stop] = {}
"""Thread id -> the stop to raise there at its next safe point."""


def claim(thread: int, stop: Stop) -> bool:
    """Take ``stop`` off the waiting list for ``thread``: True if it was still waiting."""
    taken = waiting.pop(thread, None)
    if taken is not None and taken is not stop:
        waiting.setdefault(thread, taken)  # a newer one: leave it for its own delivery
        return False
    return taken is stop


def claim_at(
    frame: FrameType,
    stop: Stop,
    thread: int,
    *,
    handling: bool | None = None,
    line: int | None = None,
) -> bool:
    """Claim ``stop`` if ``frame`` (the thread's innermost) is a safe point for it now.

    ``handling`` defaults to whether the calling thread handles an exception (the caller runs
    in ``thread``, from a trace or monitoring callback); ``line``, to ``frame``'s.
    """
    if handling is None:
        handling = sys.exc_info()[0] is not None
    safe = safe_point(
        frame, handling=handling, anchor=stop.anchor, callbacks=stop.callbacks, line=line
    )
    return safe and claim(thread, stop)


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=waiting.clear)
