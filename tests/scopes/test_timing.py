"""timed: wall and CPU seconds, a label, CUDA synchronised only once CUDA is initialised."""

from __future__ import annotations

import time

import pytest

from resmagic import history, timed
from resmagic.errors import OptionError
from resmagic.report import TimingReport
from tests.fakes import FakeNvml, FakeTorch

Gpu = tuple[FakeTorch, FakeNvml]

pytestmark = pytest.mark.usefixtures("fresh_history")


def _report(scope: timed) -> TimingReport:
    assert scope.report is not None
    return scope.report


def test_sleeping_counts_as_wall_time_not_cpu_time() -> None:
    with timed() as t:
        time.sleep(0.2)
    report = _report(t)
    assert report.wall_s >= 0.2
    assert report.cpu_s < report.wall_s
    assert report.duration_s == report.wall_s


def test_busy_work_counts_as_cpu_time() -> None:
    with timed() as t:
        start = time.process_time()
        while time.process_time() - start < 0.05:
            pass
    report = _report(t)
    assert report.cpu_s >= 0.05
    assert report.wall_s > 0


def test_label_is_in_the_report_and_its_summary() -> None:
    with timed("train") as t:
        pass
    assert _report(t).label == "train"
    assert _report(t).summary().startswith("timed  train  wall ")
    assert history()[-1] is t.report


def test_no_cuda_sync_before_cuda_is_initialised(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    with timed() as t:
        pass
    assert torch.cuda.synchronized == []
    assert not _report(t).cuda_synced
    assert not torch.cuda.initialized


def test_cuda_sync_at_both_ends_once_initialised(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    with timed() as t:
        assert torch.cuda.synchronized == [0, 1]  # before the clock starts
    assert torch.cuda.synchronized == [0, 1, 0, 1]
    assert _report(t).cuda_synced


def test_cuda_initialised_inside_the_block_is_synced_at_the_end(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    with timed() as t:
        torch.cuda.init()
    assert torch.cuda.synchronized == [0, 1]
    assert _report(t).cuda_synced


def test_sync_cuda_false_never_syncs(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    with timed(sync_cuda=False) as t:
        pass
    assert torch.cuda.synchronized == []
    assert not _report(t).cuda_synced


def test_status_on_error() -> None:
    t = timed("step")
    with pytest.raises(ZeroDivisionError), t:
        1 / 0  # noqa: B018
    report = _report(t)
    assert (report.status, report.error) == ("error", "ZeroDivisionError: division by zero")
    assert report.wall_s >= 0


def test_status_on_interrupt() -> None:
    t = timed()
    with pytest.raises(KeyboardInterrupt), t:
        raise KeyboardInterrupt
    assert _report(t).status == "interrupted"


@pytest.mark.parametrize("value", ["yes", "never", 2, None])
def test_bad_sync_cuda_raises_option_error(value: object) -> None:
    with pytest.raises(OptionError, match="sync_cuda must be True, False or 'auto'"):
        timed(sync_cuda=value)  # type: ignore[arg-type]


def test_timed_without_its_parentheses_as_a_decorator_says_how_to_write_it() -> None:
    # `@timed` made timed(func): the function became the label, and its first call failed
    # with "missing 1 required positional argument: 'func'".
    def step() -> None:
        pass

    with pytest.raises(TypeError, match=r"decorate with @timed\(\) or @timed\('label'\)"):
        timed(step)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="label must be a string or None, not int"):
        timed(3)  # type: ignore[arg-type]


def test_one_timed_object_entered_by_many_threads_at_once_counts_every_run() -> None:
    # A run of an object open once lives on the object; two threads that enter at the same
    # moment must not both take that slot (one run would be lost, its exit would find
    # nothing: issue 26). A switch interval of 1 us makes the threads interleave mid-enter.
    import sys
    import threading

    import resmagic

    shared = timed("shared", keep="totals")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3000):
                with shared:
                    pass
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    resmagic.clear_timings()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert resmagic.timings()["shared"].count == 6 * 3000
    assert shared.open_runs == 0
    resmagic.clear_timings()
