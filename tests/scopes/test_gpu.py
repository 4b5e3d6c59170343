"""gpu_scope: a host row always, rows per GPU, cache cleanup, nested peaks, reclaim after OOM."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack

import pytest

from resmagic import gpu_scope, history
from resmagic.config import settings
from resmagic.errors import DeviceError, OptionError
from resmagic.probes import host, peaks, torch_cuda
from resmagic.probes.reading import DeviceMemory
from resmagic.report import GpuReport
from resmagic.sampler import Watch, sampler
from resmagic.units import format_bytes
from tests.children import HELD, holding_children
from tests.fakes import FakeNvml, FakeOutOfMemoryError, FakeTorch, spike

GiB, MiB = 1 << 30, 1 << 20
Gpu = tuple[FakeTorch, FakeNvml]

pytestmark = pytest.mark.usefixtures("fresh_history")


def _report(scope: gpu_scope) -> GpuReport:
    assert scope.report is not None
    return scope.report


def _rows(scope: gpu_scope) -> list[tuple[str, str]]:
    return [(d.name, d.source) for d in _report(scope).devices]


def _touched(n: int) -> bytearray:
    return bytearray(b"x") * n


@pytest.fixture
def cuda(fake_gpu: Gpu) -> FakeTorch:
    torch, _ = fake_gpu
    torch.cuda.init()
    return torch


class TestRows:
    def test_host_row_always_present(self) -> None:
        with gpu_scope() as scope:
            pass
        report = _report(scope)
        row = report.device("host")
        assert row.source == "RSS"
        assert row.total_bytes is not None
        assert 0 < row.before_bytes <= row.peak_bytes
        assert row.after_bytes <= row.peak_bytes
        assert report.status == "ok"
        assert history()[-1] is report

    def test_rows_per_fake_device_once_cuda_is_initialised(self, cuda: FakeTorch) -> None:
        with gpu_scope() as scope:
            pass
        assert _rows(scope) == [
            ("host", "RSS"),
            ("cuda:0", "torch allocator"),
            ("cuda:1", "torch allocator"),
            ("cuda:0", "NVML"),
            ("cuda:1", "NVML"),
        ]
        assert _report(scope).notes == ()
        assert _report(scope).device("cuda:1", "torch allocator").total_bytes == 16 * GiB

    def test_before_cuda_init_nvml_rows_and_a_note_saying_why_no_allocator_rows(
        self, fake_gpu: Gpu
    ) -> None:
        with gpu_scope() as scope:
            pass
        assert _rows(scope) == [("host", "RSS"), ("cuda:0", "NVML"), ("cuda:1", "NVML")]
        assert _report(scope).notes == (
            "torch allocator: CUDA not initialised yet (no tensor on a GPU so far)",
        )

    def test_without_any_gpu_the_notes_say_why(self, fake_gpu: Gpu) -> None:
        _, nv = fake_gpu
        nv.fail_init = True
        with gpu_scope() as scope:
            pass
        assert _rows(scope) == [("host", "RSS")]
        assert "NVML unavailable: NVML Shared Library Not Found" in _report(scope).notes

    def test_device_index_selects_one_gpu(self, cuda: FakeTorch) -> None:
        with gpu_scope("cuda:1") as scope:
            pass
        assert _rows(scope) == [("host", "RSS"), ("cuda:1", "torch allocator"), ("cuda:1", "NVML")]

    def test_device_host_measures_the_host_only(self, cuda: FakeTorch) -> None:
        with gpu_scope("host") as scope:
            pass
        assert _rows(scope) == [("host", "RSS")]
        assert _report(scope).notes == ()

    def test_allocator_peak_is_exact_and_after_shows_what_is_still_held(
        self, cuda: FakeTorch
    ) -> None:
        cuda.cuda.malloc(0, 1 * GiB)
        with gpu_scope(0) as scope:
            spike(cuda.cuda, 0, 4 * GiB)
            cuda.cuda.malloc(0, 512 * MiB)
        row = _report(scope).device("cuda:0", "torch allocator")
        assert (row.before_bytes, row.peak_bytes, row.after_bytes) == (1 * GiB, 5 * GiB, 1536 * MiB)
        assert row.peak_exact
        assert row.delta_bytes == 512 * MiB

    def test_cuda_initialised_inside_the_block_counts_from_zero(self, fake_gpu: Gpu) -> None:
        torch, _ = fake_gpu
        with gpu_scope() as scope:
            torch.cuda.init()
            torch.cuda.malloc(0, 2 * GiB)
        row = _report(scope).device("cuda:0", "torch allocator")
        assert (row.before_bytes, row.peak_bytes, row.after_bytes) == (0, 2 * GiB, 2 * GiB)
        assert row.peak_exact


class TestCache:
    def test_no_empty_cache_and_no_cuda_init_before_cuda_is_initialised(
        self, fake_gpu: Gpu
    ) -> None:
        torch, _ = fake_gpu
        with gpu_scope():
            pass
        assert torch.cuda.empty_cache_calls == 0
        assert not torch.cuda.initialized  # and the fixture checks no side-effect init

    def test_empty_cache_before_and_after_once_cuda_is_initialised(self, cuda: FakeTorch) -> None:
        with gpu_scope() as scope:
            assert cuda.cuda.empty_cache_calls == 1
            spike(cuda.cuda, 0, 2 * GiB)
        assert cuda.cuda.empty_cache_calls == 2
        assert cuda.cuda.devices[0].reserved == 0  # "after" shows what is still held
        assert _report(scope).device("cuda:0").after_bytes == 0

    def test_empty_cache_false_leaves_the_cache(self, cuda: FakeTorch) -> None:
        with gpu_scope(empty_cache=False):
            spike(cuda.cuda, 0, 2 * GiB)
        assert cuda.cuda.empty_cache_calls == 0
        assert cuda.cuda.devices[0].reserved == 2 * GiB

    def test_gc_option_collects_cycles_and_is_off_by_default(self) -> None:
        class Node:
            pass

        def cycle() -> weakref.ref[Node]:
            node = Node()
            node.me = node  # type: ignore[attr-defined]
            return weakref.ref(node)

        gc.disable()  # only our option may collect
        try:
            plain = cycle()
            with gpu_scope("host"):
                pass
            alive_without = plain() is not None
            collected = cycle()
            with gpu_scope("host", gc=True):
                pass
            alive_with = collected() is not None
        finally:
            gc.enable()
        assert alive_without
        assert not alive_with

    def test_the_collections_gc_asks_for_count_in_the_duration(self) -> None:
        spent: list[float] = []
        started: list[float] = []

        def clock(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            else:
                spent.append(time.perf_counter() - started.pop())

        garbage: list[list[int]] = [[] for _ in range(200_000)]  # something for gc to walk
        gc.callbacks.append(clock)
        try:
            with gpu_scope("host", gc=True) as scope:
                pass
        finally:
            gc.callbacks.remove(clock)
        del garbage
        assert len(spent) >= 2  # before and after the block
        assert _report(scope).duration_s >= sum(spent)


class TestPeaks:
    def test_outer_scope_sees_the_inner_scopes_peak(self, cuda: FakeTorch) -> None:
        with gpu_scope(0) as outer, gpu_scope(0) as inner:
            spike(cuda.cuda, 0, 3 * GiB)
        assert _report(inner).device("cuda:0", "torch allocator").peak_bytes == 3 * GiB
        assert _report(outer).device("cuda:0", "torch allocator").peak_bytes == 3 * GiB

    def test_outer_host_peak_survives_the_inner_scopes_reset(self) -> None:
        if not host.peak_is_exact():
            pytest.skip(f"no exact host peak here: {host.status()}")
        with gpu_scope("host") as outer:
            block = _touched(200 * MiB)
            del block
            with gpu_scope("host") as inner:  # resets VmHWM
                pass
        outer_row = _report(outer).device("host")
        inner_row = _report(inner).device("host")
        assert outer_row.peak_bytes - outer_row.before_bytes >= 190 * MiB
        assert inner_row.peak_bytes - inner_row.before_bytes < 20 * MiB

    def test_nvml_peak_is_sampled_and_labelled_so(
        self, fake_gpu: Gpu, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _, nv = fake_gpu
        monkeypatch.setattr(settings, "sample_interval", 0.002)
        ticks = threading.Semaphore(0)
        with gpu_scope() as scope:
            # The sampler samples its watches in order, each tick: two ticks of a watch
            # added after the scope's mean the scope's watch read the transient at least once.
            nv.devices[0].used = 6 * GiB
            marker = sampler.add(Watch(list, lambda *_: ticks.release()))
            try:
                for _ in range(2):
                    assert ticks.acquire(timeout=30), "the sampler stopped sampling"
            finally:
                sampler.remove(marker)
            nv.devices[0].used = 1 * GiB
        row = _report(scope).device("cuda:0", "NVML")
        assert (row.before_bytes, row.peak_bytes, row.after_bytes) == (0, 6 * GiB, 1 * GiB)
        assert not row.peak_exact

    def test_sampler_stops_when_the_scope_closes(self, fake_gpu: Gpu) -> None:
        watches = sampler.watches
        with gpu_scope():
            assert sampler.watches == watches + 1  # NVML peaks need sampling
            assert sampler.running
        assert sampler.watches == watches

    def test_host_only_with_an_exact_peak_samples_only_the_workers(self) -> None:
        # Child processes come and go inside a block: only sampling sees them (issue 16).
        if not host.peak_is_exact():
            pytest.skip(f"no exact host peak here: {host.status()}")
        watches = sampler.watches
        with gpu_scope("host") as scope:
            assert sampler.watches == watches + 1
            run = scope._latest
            assert run is not None
            assert run.watch is not None
            assert {r.name for r in run.watch.read()} <= {"workers", "container"}


# Runs in a child that the kernel itself refuses the VmHWM reset: after setuid (if root) and
# PR_SET_DUMPABLE 0, /proc/self/clear_refs belongs to root and cannot be opened for writing.
# Everything is imported before that: the interpreter may live where the new user cannot read.
_REFUSED_RESET = """
import ctypes, json, os, sys, threading
from resmagic import gpu_scope, settings
from resmagic.probes import host, peaks
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
settings.sample_interval = 0.01
seen = threading.Semaphore(0)
scope = gpu_scope("host")
scope.follow(lambda now, readings: seen.release())
with scope:
    held = b"x" * (200 * 2**20)
    for _ in range(3):  # hold it across whole samples, however slow the machine
        assert seen.acquire(timeout=30), "the sampler never sampled"
    del held
row = scope.report.device("host", "RSS")
print(json.dumps({"status": str(host.status()), "exact": row.peak_exact,
                  "rise": row.peak_bytes - row.before_bytes}))
"""


def test_without_a_vmhwm_reset_the_host_peak_is_sampled_and_says_so() -> None:
    """Where the kernel refuses the reset (a locked-down container), the peak is sampled."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _REFUSED_RESET], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == (
        "host: RSS exact, peak sampled: cannot reset VmHWM (Permission denied)"
    )
    assert result["exact"] is False
    assert abs(result["rise"] - 200 * MiB) <= 0.05 * 200 * MiB


def _fill(n: int) -> None:
    held = _touched(n)  # a local of the failing frame, as in a training step
    raise MemoryError(f"could not allocate after {len(held)} bytes")


def _held_after(scope: gpu_scope, body: object = _fill, n: int = 300 * MiB) -> int:
    """RSS still held after ``body`` failed inside ``scope``, with the exception kept alive.

    The exception stays referenced (IPython keeps it in ``sys.last_value``) while measuring.
    """
    gc.collect()
    base = host.rss_bytes()
    kept: BaseException | None = None
    try:
        with scope:
            body(n)  # type: ignore[operator]
    except (MemoryError, ValueError, FakeOutOfMemoryError) as exc:
        kept = exc
    assert kept is not None
    gc.collect()
    held = host.rss_bytes() - base
    del kept
    return held


@pytest.fixture
def rss_settles() -> Iterator[None]:
    yield
    gc.collect()


@pytest.mark.usefixtures("rss_settles")
class TestReclaim:
    def test_reclaim_oom_returns_the_memory_of_a_failed_frame(self) -> None:
        scope = gpu_scope("host", reclaim="oom")
        held = _held_after(scope)
        assert held < 30 * MiB, f"{held / MiB:.0f} MiB still held"
        assert _report(scope).reclaimed
        assert _report(scope).status == "error"

    def test_reclaim_never_keeps_the_frame_for_debugging(self) -> None:
        scope = gpu_scope("host", reclaim="never")
        held = _held_after(scope)
        assert held > 280 * MiB, f"only {held / MiB:.0f} MiB held"
        assert not _report(scope).reclaimed

    def test_reclaim_oom_keeps_frames_of_other_errors(self) -> None:
        def fail(n: int) -> None:
            held = _touched(n)
            raise ValueError(len(held))

        scope = gpu_scope("host")
        assert _held_after(scope, fail) > 280 * MiB
        assert not _report(scope).reclaimed

    def test_reclaim_always_frees_after_any_error(self) -> None:
        def fail(n: int) -> None:
            held = _touched(n)
            raise ValueError(len(held))

        scope = gpu_scope("host", reclaim="always")
        assert _held_after(scope, fail) < 30 * MiB
        assert _report(scope).reclaimed

    def test_reclaim_follows_the_exception_chain(self) -> None:
        def fail(n: int) -> None:
            try:
                _fill(n)
            except MemoryError as exc:
                raise ValueError("step failed") from exc

        scope = gpu_scope("host", reclaim="always")
        assert _held_after(scope, fail) < 30 * MiB

    def test_cuda_out_of_memory_reclaims_and_empties_the_cache(self, cuda: FakeTorch) -> None:
        def fail(n: int) -> None:
            held = _touched(n)
            spike(cuda.cuda, 0, 2 * GiB)
            raise FakeOutOfMemoryError(f"CUDA out of memory ({len(held)})")

        scope = gpu_scope(empty_cache=False)
        assert _held_after(scope, fail) < 30 * MiB
        assert _report(scope).reclaimed
        assert cuda.cuda.empty_cache_calls == 1
        assert cuda.cuda.devices[0].reserved == 0


class TestBadInput:
    def test_bad_device_raises_device_error_before_anything_runs(self, fake_gpu: Gpu) -> None:
        watches, ran = sampler.watches, []
        refused = r"no device cuda:2: this process sees 2 GPU\(s\)"
        with pytest.raises(DeviceError, match=refused), gpu_scope("cuda:2"):
            ran.append("body")
        with pytest.raises(DeviceError, match="cuda:0, cuda:1"):

            @gpu_scope(7)
            def step() -> None:
                ran.append("step")

        assert ran == []
        assert history() == []
        assert sampler.watches == watches

    def test_device_on_a_machine_without_gpu_says_why(self, fake_gpu: Gpu) -> None:
        torch, nv = fake_gpu
        torch.cuda.devices.clear()
        nv.devices.clear()
        with pytest.raises(DeviceError, match=r"no device cuda:0: this process sees no GPU \("):
            gpu_scope(0)

    @pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", -1, True, 1.5, "cuda:\u0661"])
    def test_unreadable_device_says_what_to_type(self, device: object) -> None:
        with pytest.raises(DeviceError, match=r"unknown device .*use 'cuda:N'.*'host'"):
            gpu_scope(device)

    @pytest.mark.parametrize("device", [None, "cuda", "host", "cpu", "CPU", " host "])
    def test_device_spellings_that_need_no_gpu(self, device: object) -> None:
        with gpu_scope(device) as scope:
            pass
        assert _report(scope).device("host")

    def test_bad_reclaim_raises_option_error(self) -> None:
        with pytest.raises(OptionError, match="reclaim must be 'oom', 'always' or 'never'"):
            gpu_scope(reclaim="sometimes")  # type: ignore[arg-type]


class TestFollowers:
    """A live view follows the scope's samples; its failure is never the block's."""

    @pytest.fixture(autouse=True)
    def fast_sampling(self) -> Iterator[None]:
        old = settings.sample_interval
        settings.sample_interval = 0.005
        yield
        settings.sample_interval = old

    def test_a_follower_sees_every_device_and_its_samples_count_toward_the_peak(self) -> None:
        seen: list[int] = []
        got_two = threading.Event()

        def follow(now: float, readings: Sequence[DeviceMemory]) -> None:
            seen.extend(r.used_bytes for r in readings if r.name == "host")
            if len(seen) >= 2:
                got_two.set()

        scope = gpu_scope()
        scope.follow(follow)
        with scope:
            buf = _touched(64 * MiB)
            assert got_two.wait(30), "the follower got no samples"
            del buf
        assert max(seen) <= _report(scope).device("host").peak_bytes

    def test_following_an_open_scope_is_refused_not_silently_deaf(self) -> None:
        scope = gpu_scope("host")
        with scope, pytest.raises(RuntimeError, match="before entering"):
            scope.follow(lambda now, readings: None)
        assert _report(scope).status == "ok"

    def test_a_failing_follower_is_dropped_and_the_block_is_untouched(self) -> None:
        calls = []

        def broken(now: float, readings: Sequence[DeviceMemory]) -> None:
            calls.append(now)
            raise RuntimeError("view broke")

        scope = gpu_scope()
        scope.follow(broken)
        marker = threading.Event()
        with scope:
            ticks = sampler.add(Watch(list, lambda *_: marker.set()))
            try:
                for _ in range(3):  # several sampler rounds after the first failure
                    marker.clear()
                    assert marker.wait(30)
            finally:
                sampler.remove(ticks)
        assert _report(scope).status == "ok"
        assert len(calls) == 1


class TestProbeFaults:
    """A driver that fails mid-block never turns a block that succeeded into a failure."""

    def test_a_failure_stays_with_the_run_it_happened_in(self, fake_gpu: Gpu) -> None:
        # One scope object, two runs of it (nested here, threads alike): the inner run
        # opening must not wipe the note the outer run took at its own opening.
        _, nv = fake_gpu
        scope = gpu_scope()
        nv.lost = True
        with scope:
            nv.lost = False
            with scope:
                pass
            inner = _report(scope)
        outer = _report(scope)
        assert not any("reading failed" in note for note in inner.notes)
        assert any("NVML: reading failed" in note for note in outer.notes)

    def test_nvml_lost_at_close_is_a_note_not_an_exception(self, fake_gpu: Gpu) -> None:
        _, nv = fake_gpu
        with gpu_scope() as scope:
            assert ("cuda:0", "NVML") in {(r.name, r.source) for r in scope.opened()}
            nv.lost = True
        report = _report(scope)
        assert report.status == "ok"
        assert history()[-1] is report
        assert [r.source for r in report.devices] == ["RSS"]
        assert any(
            "NVML: reading failed" in note and "GPU is lost" in note for note in report.notes
        )

    def test_allocator_peak_that_cannot_be_read_is_a_note(
        self, cuda: FakeTorch, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from resmagic.probes import peaks

        def broken() -> dict[str, int]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        with gpu_scope() as scope:
            monkeypatch.setattr(peaks.torch_peaks, "_read", broken)
        report = _report(scope)
        assert report.status == "ok"
        assert any("peak not read" in note for note in report.notes)
        assert peaks.torch_peaks.depth == 0  # no frame left behind
        assert not any(r.peak_exact for r in report.devices if r.source == "torch allocator")

    def test_a_block_that_raises_keeps_its_own_error(self, fake_gpu: Gpu) -> None:
        _, nv = fake_gpu
        scope = gpu_scope()

        def block() -> None:
            with scope:
                nv.lost = True
                raise KeyError("own")

        with pytest.raises(KeyError):
            block()
        assert _report(scope).error == "KeyError: 'own'"


def test_allocator_rows_report_the_cache_the_allocator_keeps(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    with gpu_scope(empty_cache=False) as scope:
        spike(torch.cuda, 0, 64 * MiB)
    report = _report(scope)
    row = next(d for d in report.devices if d.name == "cuda:0" and d.source == "torch allocator")
    assert row.reserved_bytes == torch.cuda.memory_reserved(0)
    assert row.reserved_bytes is not None
    assert row.reserved_bytes >= 64 * MiB
    assert f"exact; cache {format_bytes(row.reserved_bytes)})" in row.summary()
    nvml_row = next(d for d in report.devices if d.source == "NVML")
    assert nvml_row.reserved_bytes is None


def test_launched_ranks_holding_at_the_end_are_rows_of_their_own_not_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Forks of this process while WORLD_SIZE is set: ranks, as notebook_launcher's (issue 28).
    monkeypatch.setenv("WORLD_SIZE", "2")
    with ExitStack() as held, gpu_scope("host") as scope:
        held.enter_context(holding_children(2))
    report = _report(scope)
    names = [d.name for d in report.devices]
    assert "workers" not in names  # the ranks are all the children: nothing left in workers
    for rank in ("rank 0", "rank 1"):
        row = report.device(rank)
        assert (row.source, row.before_bytes) == ("USS", 0)
        assert HELD <= row.after_bytes <= HELD * 1.05  # exact: read from smaps_rollup
        assert row.peak_bytes >= row.after_bytes


def test_launched_ranks_that_ended_keep_the_peak_the_sampler_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = threading.Event()

    def listener(now: float, readings: Sequence[DeviceMemory]) -> None:
        holding = [r for r in readings if r.name.startswith("rank ") and r.used_bytes >= HELD]
        if len(holding) == 2:
            seen.set()

    scope = gpu_scope("host")
    scope.follow(listener)
    with scope, holding_children(2):  # mp.spawn returns once its ranks have ended
        assert seen.wait(120), "the sampler never saw both ranks holding their memory"
    for rank in ("rank 0", "rank 1"):
        row = _report(scope).device(rank)
        assert (row.after_bytes, row.peak_exact) == (0, False)
        assert HELD <= row.peak_bytes <= HELD * 1.05


_CONTAINER_PEAK = """
import json, sys
sys.stdin.readline()  # moved into the cgroup by now
from resmagic import gpu_scope
with gpu_scope("host") as scope:
    held = b"x" * (100 << 20)
    del held
row = scope.report.device("container")
print(json.dumps({"exact": row.peak_exact, "rise": row.peak_bytes - row.before_bytes,
                  }))
"""


def test_under_a_limit_the_container_row_keeps_its_exact_peak() -> None:
    """The container's counter is reset and read only where its row exists (issue 26)."""
    import json

    from tests.cgroups import child_cgroup, run_inside

    with child_cgroup() as path:
        done = run_inside(path, _CONTAINER_PEAK)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["exact"] is True
    assert seen["rise"] >= 90 * MiB


def test_without_a_limit_no_container_peak_is_reset() -> None:
    from resmagic.probes import cgroup

    if cgroup.read():
        pytest.skip("this machine's cgroup has a memory limit")
    with gpu_scope("host") as scope:
        run = scope._latest
        assert run is not None
        assert cgroup.SOURCE not in run.frames
        assert peaks.container_peaks.depth == 0


def test_the_first_frame_shows_an_exact_host_peak_where_the_counter_is() -> None:
    # The open reads no VmHWM (issue 26); the panel's first frame still marks the host
    # peak exact (at the RSS the run opened with: the counter was reset to it).
    if not host.peak_is_exact():
        pytest.skip(f"no exact host peak here: {host.status()}")
    with gpu_scope("host") as scope:
        (row,) = [r for r in scope.opened() if r.name == "host"]
        assert row.peak_bytes is not None  # what the panel marks exact by
        assert row.peak_bytes >= row.used_bytes


def test_host_like_rows_read_in_straight_lines_are_what_the_probes_read() -> None:
    # issue 26 (G8): a block reads the built-in host-like probes without the protocol's
    # calls; the rows (and a failure's note) must be the probes' own.
    from resmagic.probes import table
    from resmagic.scopes import gpu_reads

    def by_probes(failures: dict[str, str]) -> list[DeviceMemory]:
        rows: list[DeviceMemory] = []
        for probe in table.HOST_LIKE:
            got, failure = probe.read(scope._wants, peak=False)
            rows += got
            if failure is not None:
                failures.setdefault(probe.source, failure)
        return rows

    def shape(rows: list[DeviceMemory]) -> list[tuple[str, str, int | None, object, object]]:
        return [(r.name, r.source, r.total_bytes, r.peak_bytes, r.reserved_bytes) for r in rows]

    scope = gpu_scope("host")
    assert gpu_reads.DIRECT
    assert shape(gpu_reads.read_host_like(scope._wants, {})) == shape(by_probes({}))
    files = host._files.ensure()
    statm = files.statm
    files.statm = -1  # no descriptor: the host read fails (EBADF) as a lost /proc would
    try:
        direct: dict[str, str] = {}
        probed: dict[str, str] = {}
        assert shape(gpu_reads.read_host_like(scope._wants, direct)) == shape(by_probes(probed))
    finally:
        files.statm = statm
    assert direct == probed
    assert direct[host.SOURCE].startswith("RSS: reading failed (OSError")


def test_torch_imported_inside_the_block_gets_its_rows_and_exact_peak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 26 (G5): a block opened while torch was not imported reads no GPU source at
    # open; it must check again at close, as the first cell of a notebook imports torch.
    torch = FakeTorch(n_devices=1)
    torch_cuda._totals.clear()
    with gpu_scope() as scope:
        monkeypatch.setattr(torch_cuda, "backend", torch)  # `import torch` in the block
        torch.cuda.init()
        torch.cuda.malloc(0, 300 << 20)
        torch.cuda.free(0, 200 << 20)
    torch_cuda._totals.clear()
    report = _report(scope)
    row = report.device("cuda:0", "torch allocator")
    assert (row.before_bytes, row.after_bytes, row.peak_bytes) == (0, 100 << 20, 300 << 20)
    assert row.peak_exact
    assert not any(note.startswith("torch allocator") for note in report.notes)
    assert torch.cuda.side_effect_inits == []
