"""Cleanup lines: a raise at the start of any other line leaves no lock held.

Each construct below is run once per line event, raising at that event's line start (a trace
function raises there, as the guard does), at every line start cleanup_lines() allows.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from resmagic.delivery.lines import cleanup_lines

lock = threading.Lock()


class StopError(Exception):
    pass


class Held:
    def __enter__(self) -> Held:
        lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        lock.release()


def empty_try() -> None:
    lock.acquire()
    try:
        pass
    finally:
        lock.release()


def real_try() -> None:
    lock.acquire()
    try:
        x = 1
        x += 1
    finally:
        lock.release()


def try_except_else() -> None:
    lock.acquire()
    try:
        x = 1
    except ValueError:
        pass
    else:
        x = 2
    finally:
        lock.release()
    del x


def nested_in_a_loop() -> None:
    for _ in range(2):
        lock.acquire()
        try:
            try:  # noqa: SIM105
                pass
            except KeyError:
                pass
        finally:
            lock.release()


def with_blocks() -> None:
    with lock:
        pass
    with Held():
        pass
    with Held(), open(__file__) as f:
        f.readline()


# fmt: off
def one_liners() -> None:
    lock.acquire(); x = 1; lock.release()  # noqa: E702
    lock.acquire()
    try: x = 2  # noqa: E701
    finally: lock.release()  # noqa: E701
    del x
# fmt: on


def continue_in_finally_loop() -> None:
    i = 0
    while i < 3:
        lock.acquire()
        try:
            i += 1
            continue
        finally:
            lock.release()


def early_return() -> int:
    lock.acquire()
    try:
        return 1
    finally:
        lock.release()


def comprehension() -> None:
    lock.acquire()
    try:
        squares = [j * j for j in range(3)]
    finally:
        lock.release()
    del squares


def caught_inside() -> None:
    lock.acquire()
    try:
        try:
            raise ValueError
        except ValueError:
            v = 1
    finally:
        lock.release()
    del v


CONSTRUCTS = [
    empty_try,
    real_try,
    try_except_else,
    nested_in_a_loop,
    with_blocks,
    one_liners,
    continue_in_finally_loop,
    early_return,
    comprehension,
    caught_inside,
]


def _raise_at(construct: Callable[[], object], k: int) -> int | None:
    """Run ``construct``, raising StopError at its k-th allowed line start; the line, or None."""
    codes = {c.__code__ for c in CONSTRUCTS}
    seen = itertools.count(1)

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if (
            event == "line"
            and frame.f_lineno not in cleanup_lines(frame.f_code)
            and sys.exc_info()[0] is None
            and next(seen) == k
        ):
            raise StopError(frame.f_lineno)
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code in codes else None

    sys.settrace(calls)
    try:
        construct()
    except StopError as stop:
        return int(stop.args[0])
    finally:
        sys.settrace(None)
    return None


@pytest.mark.parametrize("construct", CONSTRUCTS, ids=lambda c: c.__name__)
def test_a_raise_at_any_line_start_but_the_cleanup_lines_leaves_no_lock_held(
    construct: Callable[[], object],
) -> None:
    held_at = []
    for k in itertools.count(1):
        line = _raise_at(construct, k)
        if line is None:
            break
        if lock.locked():
            lock.release()
            held_at.append(line - construct.__code__.co_firstlineno)
    assert k > 1  # some line start was allowed
    assert held_at == []


def test_the_try_line_the_finally_body_and_the_with_exit_are_cleanup_lines() -> None:
    first = real_try.__code__.co_firstlineno
    lines = {line - first for line in cleanup_lines(real_try.__code__)}
    assert {2, 6} <= lines  # `try:` and `lock.release()`
    assert {1, 3, 4}.isdisjoint(lines)  # `lock.acquire()` and the try body
    first = with_blocks.__code__.co_firstlineno
    lines = {line - first for line in cleanup_lines(with_blocks.__code__)}
    assert {1, 3, 5} <= lines  # each `with` line: its exit runs there too
