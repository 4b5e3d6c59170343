"""What every scope shares: decorator use, recursion, threads, coroutines, nesting, reports."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resmagic import db_transaction, experiment_log, gpu_scope, history, timed
from resmagic.bus import subscribe
from resmagic.report import Report, TimingReport
from resmagic.scopes.base import Scope

pytestmark = pytest.mark.usefixtures("fresh_history")

FACTORIES: dict[str, Callable[[Path], Scope[Any, Any]]] = {
    "gpu_scope": lambda tmp: gpu_scope(),
    "timed": lambda tmp: timed("t"),
    "experiment_log": lambda tmp: experiment_log(tmp / "run.log", name="resmagic-test-base"),
    "db_transaction": lambda tmp: db_transaction(tmp / "data.db"),
}


@pytest.fixture
def by_thread() -> Iterator[dict[int, Report]]:
    """Each published report, keyed by the thread that closed its scope."""
    got: dict[int, Report] = {}
    unsubscribe = subscribe(lambda r: got.__setitem__(threading.get_ident(), r))
    yield got
    unsubscribe()


def _timings() -> list[TimingReport]:
    return [r for r in history() if isinstance(r, TimingReport)]


@pytest.mark.parametrize("kind", FACTORIES)
def test_report_set_even_when_body_raises(kind: str, tmp_path: Path) -> None:
    scope = FACTORIES[kind](tmp_path)
    assert scope.report is None
    with pytest.raises(LookupError), scope:
        raise LookupError("missing")
    assert scope.report is not None
    assert (scope.report.status, scope.report.error) == ("error", "LookupError: missing")
    assert history()[-1] is scope.report


@pytest.mark.parametrize("kind", [k for k in FACTORIES if k != "db_transaction"])
def test_decorated_function_reports_each_call(kind: str, tmp_path: Path) -> None:
    scope = FACTORIES[kind](tmp_path)

    @scope
    def work(x: int) -> int:
        return x * 2

    assert [work(1), work(2), work(3)] == [2, 4, 6]
    reports = [r for r in history() if r.scope == kind]
    assert len(reports) == 3
    assert len({id(r) for r in reports}) == 3
    assert scope.report is reports[-1]


def test_db_transaction_refuses_to_decorate_and_says_what_to_write(tmp_path: Path) -> None:
    # The function would get no cursor, and its own connection would wait on our lock.
    with pytest.raises(TypeError, match=r"with db_transaction\(\.\.\.\) as"):

        @db_transaction(tmp_path / "d.db")
        def store() -> None:
            pass


def _started_within(report: Report | None, window: tuple[float, float]) -> bool:
    return report is not None and window[0] <= report.started_at <= window[1]


def test_one_scope_object_in_two_threads_gives_each_its_own_run() -> None:
    # A opens, B opens, A closes, B closes: runs that cross, which a stack on the object
    # hands to the wrong thread (review A1). Each report must start inside its own thread's
    # enter, whatever the durations.
    shared = timed("shared")
    b_in, a_out = threading.Event(), threading.Event()
    windows: dict[str, tuple[float, float]] = {}
    reports: dict[str, Report | None] = {}

    def a() -> None:
        t0 = time.time()
        with shared:
            windows["a"] = (t0, time.time())
            b_in.wait()
        reports["a"] = shared.report
        a_out.set()

    def b() -> None:
        while "a" not in windows:
            time.sleep(0.001)
        t0 = time.time()
        with shared:
            windows["b"] = (t0, time.time())
            b_in.set()
            a_out.wait()
        reports["b"] = shared.report

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _started_within(reports["a"], windows["a"])
    assert _started_within(reports["b"], windows["b"])
    assert shared.open_runs == 0


def test_one_scope_object_in_two_asyncio_tasks_gives_each_its_own_run() -> None:
    shared = timed("shared")
    windows: dict[str, tuple[float, float]] = {}
    reports: dict[str, Report | None] = {}

    async def a(b_in: asyncio.Event, a_out: asyncio.Event) -> None:
        t0 = time.time()
        with shared:
            windows["a"] = (t0, time.time())
            await b_in.wait()
        reports["a"] = shared.report
        a_out.set()

    async def b(b_in: asyncio.Event, a_out: asyncio.Event) -> None:
        while "a" not in windows:
            await asyncio.sleep(0)
        t0 = time.time()
        with shared:
            windows["b"] = (t0, time.time())
            b_in.set()
            await a_out.wait()
        reports["b"] = shared.report

    async def both() -> None:
        b_in, a_out = asyncio.Event(), asyncio.Event()
        await asyncio.gather(a(b_in, a_out), b(b_in, a_out))

    asyncio.run(both())
    assert _started_within(reports["a"], windows["a"])
    assert _started_within(reports["b"], windows["b"])


def test_exiting_a_scope_that_is_not_open_here_says_so() -> None:
    scope = timed()
    with pytest.raises(RuntimeError, match="not open in this thread or task"):
        scope.__exit__(None, None, None)


def test_a_run_can_close_in_another_context_than_it_opened() -> None:
    import contextvars

    run = timed("handed over").running()
    contextvars.copy_context().run(run.__enter__)  # IPython's async cells: a task's context
    run.__exit__(None, None, None)
    assert [t.label for t in _timings()] == ["handed over"]


def test_decorated_function_that_raises_still_reports() -> None:
    scope = timed("fails")

    @scope
    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        fail()
    assert scope.report is not None
    assert scope.report.status == "error"


def test_decorator_keeps_name_and_docstring() -> None:
    @timed()
    def train_epoch() -> None:
        """Train one epoch."""

    assert (train_epoch.__name__, train_epoch.__doc__) == ("train_epoch", "Train one epoch.")


def test_decorator_use_gives_a_fresh_copy_per_call(by_thread: dict[int, Report]) -> None:
    # A enters, B enters while A runs, A leaves first: with per-run state shared on the
    # decorator, A would be timed from B's start. Each run measures its own body to compare.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    spans: dict[str, float] = {}

    @timed("overlap")
    def run(role: str) -> None:
        start = time.perf_counter()
        if role == "a":
            a_in.set()
            assert b_in.wait(30)
        else:
            b_in.set()
            assert a_out.wait(30)
        spans[role] = time.perf_counter() - start

    a = threading.Thread(target=run, args=("a",))
    b = threading.Thread(target=run, args=("b",))
    a.start()
    assert a_in.wait(30)
    b.start()
    a.join()
    a_out.set()
    b.join()
    for thread, role in ((a, "a"), (b, "b")):
        assert thread.ident is not None
        report = by_thread[thread.ident]
        assert isinstance(report, TimingReport)
        assert report.wall_s >= spans[role]


def test_recursion_of_a_decorated_function_reports_each_call() -> None:
    @timed("fact")
    def fact(n: int) -> int:
        return 1 if n <= 1 else n * fact(n - 1)

    assert fact(6) == 720
    walls = [r.wall_s for r in _timings()]
    assert len(walls) == 6
    assert walls == sorted(walls)  # innermost closes first, each inside its caller
    assert {r.status for r in _timings()} == {"ok"}


def test_decorated_coroutine_is_timed_across_its_awaits() -> None:
    @timed("fetch")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.05)
        return x + 1

    assert asyncio.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(1)) == 2
    [report] = _timings()
    assert (report.label, report.status) == ("fetch", "ok")
    assert report.wall_s >= 0.05


def test_concurrent_decorated_coroutines_each_get_their_own_report() -> None:
    a_in, b_in = asyncio.Event(), asyncio.Event()
    spans: dict[str, float] = {}

    @timed("task")
    async def run(role: str) -> str:
        start = time.perf_counter()
        if role == "a":
            a_in.set()
            await b_in.wait()
        else:
            await a_in.wait()
            b_in.set()
            await asyncio.sleep(0.01)
        spans[role] = time.perf_counter() - start
        return role

    async def both() -> list[str]:
        return list(await asyncio.gather(run("a"), run("b")))

    assert asyncio.run(both()) == ["a", "b"]
    first, second = _timings()  # a finishes first
    assert first.wall_s >= spans["a"]
    assert second.wall_s >= spans["b"]


def test_cancelled_coroutine_reports_interrupted() -> None:
    started = asyncio.Event()

    @timed("slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def cancel_it() -> None:
        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    [report] = _timings()
    assert report.status == "interrupted"


def test_with_nested_on_the_same_object() -> None:
    scope = timed("same")
    with scope:
        with scope:
            pass
        inner = scope.report
    outer = scope.report
    assert inner is not None
    assert outer is not None
    assert inner is not outer
    assert _timings() == [inner, outer]
    assert inner.wall_s <= outer.wall_s


def test_gpu_scope_nested_on_the_same_object() -> None:
    scope = gpu_scope("host")
    with scope as a, scope as b:
        assert a is b is scope
    assert [r.scope for r in history()] == ["gpu_scope", "gpu_scope"]
