"""The sampler: one thread for any number of watches, gone with the last, robust to bad probes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from resmagic.config import settings
from resmagic.probes import host
from resmagic.probes.reading import DeviceMemory
from resmagic.sampler import Sampler, Watch

WAIT = 30  # seconds: a liveness bound for events, never a performance claim


@pytest.fixture
def fresh() -> Iterator[Sampler]:
    """A sampler of the test's own, sampling every 2 ms; stopped afterwards.

    The shared sampler is stopped first: its thread, lingering after an earlier test, could
    otherwise exit mid-test and upset a thread count.
    """
    from resmagic.sampler import sampler as shared

    shared.shutdown()
    old = settings.sample_interval, settings.sampler_linger
    settings.sample_interval, settings.sampler_linger = 0.002, 0.0
    sampler = Sampler()
    yield sampler
    sampler.shutdown()
    settings.sample_interval, settings.sampler_linger = old


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "resmagic-sampler"]


def _started(sampler: Sampler, watch: Watch) -> threading.Thread:
    """Add ``watch`` to a sampler that has no thread yet; return the thread that started."""
    before = set(_sampler_threads())
    sampler.add(watch)
    [thread] = set(_sampler_threads()) - before
    return thread


def _host() -> list[DeviceMemory]:
    return [host.read()]


class Ticks:
    """A listener that counts samples, so a test can wait for the n-th without sleeping."""

    def __init__(self) -> None:
        self.semaphore = threading.Semaphore(0)

    def __call__(self, now: float, readings: Sequence[DeviceMemory]) -> None:
        self.semaphore.release()

    def wait(self, n: int) -> None:
        for _ in range(n):
            assert self.semaphore.acquire(timeout=WAIT), "the sampler stopped sampling"


def test_one_thread_no_matter_how_many_watches(fresh: Sampler) -> None:
    # Compare sets, not counts: another sampler's lingering thread may exit meanwhile.
    before = set(_sampler_threads())
    ticks = [Ticks() for _ in range(20)]
    thread = _started(fresh, Watch(_host, ticks[0]))
    for t in ticks[1:]:
        fresh.add(Watch(_host, t))
    for t in ticks:
        t.wait(2)  # every watch is being sampled
    assert fresh.watches == 20
    assert set(_sampler_threads()) - before == {thread}


def test_thread_joined_and_gone_when_last_watch_removed(fresh: Sampler) -> None:
    first = Watch(_host)
    thread = _started(fresh, first)
    second = fresh.add(Watch(_host))
    assert fresh.running
    fresh.remove(first)
    assert thread.is_alive()  # one watch left
    fresh.remove(second)
    assert not thread.is_alive()  # joined before remove() returned
    assert thread not in threading.enumerate()
    assert not fresh.running
    fresh.remove(second)  # removing twice is harmless


def test_adding_after_the_last_removal_starts_a_new_thread(fresh: Sampler) -> None:
    watch = Watch(_host)
    old = _started(fresh, watch)
    fresh.remove(watch)
    ticks = Ticks()
    new = _started(fresh, Watch(_host, ticks))
    ticks.wait(1)
    assert fresh.running
    assert new is not old
    assert not old.is_alive()


def test_exception_in_a_watch_read_is_recorded_and_others_go_on(fresh: Sampler) -> None:
    def broken() -> list[DeviceMemory]:
        raise OSError("probe went away")

    bad = fresh.add(Watch(broken))
    ticks = Ticks()
    good = fresh.add(Watch(_host, ticks))
    ticks.wait(3)
    assert bad.error == "OSError: probe went away"
    assert bad.samples == 0
    assert good.error is None
    assert good.samples >= 3
    assert fresh.running


def test_exception_in_a_listener_is_recorded_too(fresh: Sampler) -> None:
    def failing(now: float, readings: Sequence[DeviceMemory]) -> None:
        raise ValueError("view closed")

    bad = fresh.add(Watch(_host, failing))
    ticks = Ticks()
    fresh.add(Watch(_host, ticks))
    ticks.wait(2)
    assert bad.error == "ValueError: view closed"


def test_watch_keeps_the_running_maximum_per_device_and_source() -> None:
    values = iter([5, 9, 3])

    def read() -> list[DeviceMemory]:
        used = next(values)
        return [DeviceMemory("cuda:0", used, 16, "NVML"), DeviceMemory("host", 1, None, "RSS")]

    seen: list[int] = []
    watch = Watch(read, lambda now, readings: seen.append(readings[0].used_bytes))
    for _ in range(3):
        watch.sample()
    assert watch.peak("cuda:0", "NVML") == 9
    assert watch.peak("host", "RSS") == 1
    assert watch.peak("cuda:0", "torch allocator") is None
    assert (watch.samples, seen) == (3, [5, 9, 3])


def test_sampled_peak_catches_a_transient_held_across_a_sample(fresh: Sampler) -> None:
    level = {"used": 100}

    def read() -> list[DeviceMemory]:
        return [DeviceMemory("cuda:0", level["used"], None, "NVML")]

    ticks = Ticks()
    watch = fresh.add(Watch(read))
    fresh.add(Watch(list, ticks))
    level["used"] = 900
    ticks.wait(2)  # the next full round read 900
    level["used"] = 200
    ticks.wait(2)
    assert watch.peak("cuda:0", "NVML") == 900


def test_shutdown_drops_every_watch_and_stops_the_thread(fresh: Sampler) -> None:
    thread = _started(fresh, Watch(_host))
    fresh.add(Watch(_host))
    fresh.shutdown()
    assert fresh.watches == 0
    assert not fresh.running
    assert not thread.is_alive()
    fresh.shutdown()  # idempotent


def test_many_threads_adding_and_removing_leave_no_thread(fresh: Sampler, in_threads: Any) -> None:
    before = set(_sampler_threads())

    def churn(_: int) -> None:
        for _ in range(50):
            fresh.remove(fresh.add(Watch(_host)))

    in_threads(churn)
    assert fresh.watches == 0
    assert not fresh.running
    assert set(_sampler_threads()) == before  # every thread started was joined


def test_with_a_linger_back_to_back_watches_share_one_thread(fresh: Sampler) -> None:
    settings.sampler_linger = 30.0  # longer than the test: the thread must still be there
    first = Watch(_host)
    thread = _started(fresh, first)
    for _ in range(20):
        watch = fresh.add(Watch(_host))
        fresh.remove(watch)
    fresh.remove(first)
    assert thread.is_alive()
    assert _sampler_threads().count(thread) == 1
    again = fresh.add(Watch(_host))
    assert fresh.running
    assert [t for t in _sampler_threads() if t is not thread] == []  # reused, not a second
    fresh.remove(again)


def test_a_lingering_thread_stops_by_itself_and_a_new_watch_starts_another(
    fresh: Sampler,
) -> None:
    settings.sampler_linger = 0.01
    watch = Watch(_host)
    first = _started(fresh, watch)
    fresh.remove(watch)
    first.join(timeout=WAIT)
    assert not first.is_alive()  # stopped on its own, nobody joined it
    assert not fresh.running
    second = _started(fresh, Watch(_host))
    assert second is not first
    assert _sampler_threads().count(second) == 1


def test_shutdown_stops_a_lingering_thread_at_once(fresh: Sampler) -> None:
    settings.sampler_linger = 30.0
    watch = Watch(_host)
    thread = _started(fresh, watch)
    fresh.remove(watch)
    assert thread.is_alive()
    fresh.shutdown()
    assert not thread.is_alive()


def test_a_forked_child_samples_with_its_own_thread() -> None:
    """A child forked while the sampler runs (a DataLoader worker) gets a working sampler."""
    import os

    from resmagic.sampler import sampler

    parent = Watch(_host)
    sampler.add(parent)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = 0
        try:
            os.close(read_end)
            ticks = Ticks()
            child = sampler.add(Watch(_host, ticks))
            ticks.wait(2)
            ok = int(sampler.watches == 1 and sampler.running)
            sampler.remove(child)
        finally:
            os.write(write_end, str(ok).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    sampler.remove(parent)
    assert answer == "1", "the child's sampler did not sample with a thread of its own"


def test_a_watch_that_asks_for_the_next_sample_sooner_gets_it(fresh: Sampler) -> None:
    # An interval of an hour: only soon() can bring the samples the test waits for.
    settings.sample_interval = 3600.0
    ticks = Ticks()

    def read() -> list[DeviceMemory]:
        fresh.soon(0.001)  # as a guard does, from the sampler thread
        return _host()

    fresh.soon(0.001)
    fresh.add(Watch(read, ticks))
    assert all(ticks.semaphore.acquire(timeout=WAIT) for _ in range(3))


# A guard's watch is prompt: its samples' system calls each wait a switch interval for a busy
# loop to hand the GIL back, and at 5 ms a fast loop reached the OOM killer between two.
@pytest.fixture
def switching() -> Iterator[None]:
    """Python's default switch interval (5 ms) for the test; the test's own one after it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("switching")
def test_a_prompt_watch_lowers_the_switch_interval_while_it_is_sampled(fresh: Sampler) -> None:
    plain = fresh.add(Watch(_host))
    assert sys.getswitchinterval() == pytest.approx(0.005)
    first, second = fresh.add(Watch(_host, prompt=True)), fresh.add(Watch(_host, prompt=True))
    assert sys.getswitchinterval() == pytest.approx(0.001)
    fresh.remove(first)
    assert sys.getswitchinterval() == pytest.approx(0.001)  # the other one is sampled still
    fresh.remove(second)
    assert sys.getswitchinterval() == pytest.approx(0.005)
    fresh.remove(plain)


@pytest.mark.usefixtures("switching")
def test_a_switch_interval_the_user_set_meanwhile_is_kept(fresh: Sampler) -> None:
    watch = fresh.add(Watch(_host, prompt=True))
    sys.setswitchinterval(0.002)
    fresh.remove(watch)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    sys.setswitchinterval(0.0002)  # already below 1 ms: left as it is
    fresh.add(Watch(_host, prompt=True))
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    fresh.shutdown()
    assert sys.getswitchinterval() == pytest.approx(0.0002)


@pytest.mark.usefixtures("switching")
def test_shutdown_gives_the_switch_interval_back(fresh: Sampler) -> None:
    fresh.add(Watch(_host, prompt=True))
    fresh.shutdown()
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.usefixtures("switching")
def test_a_child_forked_under_a_prompt_watch_gets_the_interval_back() -> None:
    import os

    from resmagic.sampler import sampler

    watch = sampler.add(Watch(_host, prompt=True))
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                os.write(write_end, repr(sys.getswitchinterval()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answer = float(pipe.read())
        os.waitpid(pid, 0)
        assert sys.getswitchinterval() == pytest.approx(0.001)  # the parent's guard goes on
    finally:
        sampler.remove(watch)
    assert answer == pytest.approx(0.005)


STARTS_NO_THREAD = """
import sys
sys.stdin.readline()
sys.setswitchinterval(0.005)
from resmagic.sampler import Sampler, Watch
sampler = Sampler()
try:
    sampler.add(Watch(list, prompt=True))
    print("added", flush=True)
except RuntimeError:
    print("refused", sys.getswitchinterval(), sampler.watches, sampler.running, flush=True)
sys.stdin.readline()
sampler.add(Watch(list, prompt=True))
print("sampled", sys.getswitchinterval(), sampler.watches, sampler.running, flush=True)
sampler.shutdown()
"""


def test_a_sampler_thread_that_cannot_start_leaves_no_watch_and_the_interval_back() -> None:
    # A container at its pids.max (a real cgroup v1 pids limit of one task): the thread
    # cannot start, and the guard that asked fails; nothing it added may stay behind.
    from tests import cgroups

    with cgroups.pids_cgroup(1) as group:
        child = cgroups.start_inside(group, STARTS_NO_THREAD)
        try:
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write("go\n")
            child.stdin.flush()
            refused = child.stdout.readline()
            (group / "pids.max").write_text("max")
            out, err = child.communicate("on\n", timeout=WAIT)
        finally:
            child.kill()
            child.wait()
    assert refused.split() == ["refused", "0.005", "0", "False"], err
    assert out.split() == ["sampled", "0.001", "1", "True"], err
