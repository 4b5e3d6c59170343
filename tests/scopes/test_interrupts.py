"""Ctrl-C is held back while a scope opens and closes, and only then (scopes/interrupts.py)."""

from __future__ import annotations

import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from resmagic import bus, gpu_scope, timed
from resmagic.scopes import base, interrupts
from resmagic.scopes.interrupts import around, held_back, holding, protect


@pytest.fixture(autouse=True)
def _pythons_handler() -> Iterator[None]:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    yield
    assert holding() == 0
    assert interrupts.state.noted_at is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.fixture
def sigint_sink() -> Iterator[Callable[[int], list[str]]]:
    """``sink(times)``: subscribe a report sink that sends ``times`` real SIGINTs as it runs.

    Returns the sink's steps as they ran: a Ctrl-C that went through stops it early.
    """
    unsubscribers: list[Callable[[], None]] = []

    def subscribe(times: int = 1) -> list[str]:
        steps = ["subscribed"]

        def sink(report: object) -> None:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
                steps.append("after a SIGINT")

        unsubscribers.append(bus.subscribe(sink))
        return steps

    yield subscribe
    for unsubscribe in unsubscribers:
        unsubscribe()


def test_the_handler_is_resmagics_only_while_a_scope_is_open() -> None:
    with gpu_scope("host"):
        inside = signal.getsignal(signal.SIGINT)
        assert holding() == 1
    assert inside is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_in_the_body_is_raised_at_once() -> None:
    ran = []

    def body() -> None:
        signal.raise_signal(signal.SIGINT)
        ran.append("after")  # never: outside resmagic's own code it acts as Python's

    with pytest.raises(KeyboardInterrupt), gpu_scope("host") as scope:
        body()
    assert ran == []
    assert scope.report is not None
    assert scope.report.status == "interrupted"


def test_a_ctrl_c_while_closing_is_raised_after_the_close(
    sigint_sink: Callable[[int], list[str]],
) -> None:
    steps = sigint_sink(1)
    with pytest.raises(KeyboardInterrupt), gpu_scope("host") as scope:
        pass
    assert steps == ["subscribed", "after a SIGINT"]  # the sink ran to its end
    assert scope.report is not None
    assert scope.report.status == "ok"  # the body had finished


def test_nested_scopes_put_pythons_handler_back_once_the_outermost_closes() -> None:
    with gpu_scope("host"):
        with gpu_scope("host"):
            assert holding() == 2
        assert holding() == 1
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler


def test_timed_alone_holds_nothing_back() -> None:
    with timed("fast"):
        assert holding() == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_programs_own_handler_is_left_in_place() -> None:
    seen: list[int] = []

    def own(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, own)
    try:
        with gpu_scope("host"):
            assert signal.getsignal(signal.SIGINT) is own
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT]


def test_a_handler_installed_in_the_body_stays() -> None:
    def own(signum: int, frame: FrameType | None) -> None:
        pass

    try:
        with gpu_scope("host"):
            signal.signal(signal.SIGINT, own)
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_no_hold_outside_the_main_thread() -> None:
    seen: list[int] = []

    def run() -> None:
        with gpu_scope("host"):
            seen.append(holding())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [0]


def test_a_second_ctrl_c_after_force_after_s_goes_through(
    monkeypatch: pytest.MonkeyPatch, sigint_sink: Callable[[int], list[str]]
) -> None:
    monkeypatch.setattr(interrupts, "FORCE_AFTER_S", 0.0)
    steps = sigint_sink(2)
    with pytest.raises(KeyboardInterrupt), gpu_scope("host"):
        pass
    assert steps == ["subscribed", "after a SIGINT"]  # the second one stopped the sink


def test_held_back_raises_what_arrived_while_the_function_ran() -> None:
    ran = []

    @held_back()
    def hook() -> None:
        signal.raise_signal(signal.SIGINT)
        ran.append("to its end")

    with pytest.raises(KeyboardInterrupt):
        hook()
    assert ran == ["to its end"]


def test_held_back_hands_the_interrupt_to_then() -> None:
    handed: list[str] = []

    @held_back(then=lambda word: handed.append(word))
    def hook(word: str) -> None:
        signal.raise_signal(signal.SIGINT)

    hook("cell")
    assert handed == ["cell"]


def test_an_inner_protected_function_leaves_the_interrupt_to_the_outer() -> None:
    order: list[str] = []

    @protect
    def inner() -> None:
        signal.raise_signal(signal.SIGINT)
        order.append("inner ended")
        assert not interrupts.due()

    @held_back()
    def outer() -> None:
        inner()
        order.append("outer ended")

    with pytest.raises(KeyboardInterrupt):
        outer()
    assert order == ["inner ended", "outer ended"]


def test_around_closes_what_it_entered_when_a_ctrl_c_arrives_meanwhile(
    sigint_sink: Callable[[int], list[str]],
) -> None:
    steps = sigint_sink(1)
    outer = gpu_scope("host")
    inner = timed("inner")

    class Both:
        def __enter__(self) -> None:
            outer.__enter__()
            with inner:  # its report's sink sends the SIGINT, while Both enters
                pass

        def __exit__(self, *exc: object) -> None:
            outer.__exit__(*exc)  # type: ignore[arg-type]

    with pytest.raises(KeyboardInterrupt), around(Both()):
        steps.append("body")
    assert "body" not in steps
    assert outer.report is not None
    assert outer.report.status == "interrupted"


def test_a_timed_run_whose_exit_never_came_is_dropped_by_the_next_block() -> None:
    """What a Ctrl-C on the first instruction of timed's __exit__ leaves (no hold there)."""
    before = len(base._open_runs.get())
    left = timed("left")
    left.__enter__()  # its first run is kept on the object: nothing on the stack
    assert len(base._open_runs.get()) == before
    left.__enter__()  # a second run while the first is open goes on the stack
    gone = weakref.ref(left)
    del left
    assert gone() is None
    assert len(base._open_runs.get()) == before + 1
    with timed("next"):
        assert len(base._open_runs.get()) == before + 1
    assert len(base._open_runs.get()) == before
