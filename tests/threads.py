"""Counting threads when the shared sampler may be lingering."""

from __future__ import annotations

import threading


def settled_thread_count() -> int:
    """Threads alive once the shared sampler's idle thread, if any, has been stopped.

    An idle sampler thread leaves by itself ``settings.sampler_linger`` seconds after the
    last watch; counting it would make a before/after comparison depend on timing. A thread
    that still has a watch is not stopped, so a leaked watch still shows in the count.
    """
    from resmagic.sampler import sampler

    if sampler.watches == 0:
        sampler.shutdown()
    return threading.active_count()
