"""A SIGTERM held back while the process finishes something it cannot leave half done.

Jupyter shuts a kernel down by asking, then sends SIGTERM 2.5 s later and SIGKILL 2.5 s
after that. Python's default SIGTERM ends the process at once, wherever it is: in the middle
of the sink's last request, leaving an MLflow run ``RUNNING`` for good. :func:`held` puts a
handler in place of the default that only notes the signal (and calls ``noted``, which may
cut the work short), then delivers the signal as it was meant once the work is done.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

__all__ = ["held"]


@contextlib.contextmanager
def held(noted: Callable[[], None]) -> Iterator[None]:
    """Hold SIGTERM back for the block, calling ``noted`` when one comes; deliver it after.

    Only Python's default handler is replaced, and only on the main thread: a program's own
    handler stays in charge, and elsewhere the block runs as it would.
    """
    came: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        came.append(signum)
        noted()

    previous = None
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not the main thread: nothing to hold
            previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            if came:
                signal.raise_signal(signal.SIGTERM)
