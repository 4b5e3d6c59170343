"""``gpu_scope``: memory per device before, at peak and after a block, and OOM recovery."""

from __future__ import annotations

import contextlib
import gc as _gc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from resmagic.bus import current_cell
from resmagic.errors import OptionError
from resmagic.guard import Guard, parse_fraction
from resmagic.probes import cgroup, host, nvml, torch_cuda
from resmagic.probes.devices import HOST, check_exists, parse_device
from resmagic.probes.peaks import PeakCounter
from resmagic.probes.probe import Probe
from resmagic.probes.reading import DeviceMemory
from resmagic.report import DeviceReport, GpuReport, describe_error
from resmagic.report_makers import device_report, gpu_report
from resmagic.sampler import Listener, Watch, sampler
from resmagic.scopes import RECLAIM, Reclaim
from resmagic.scopes.base import Scope
from resmagic.scopes.gpu_reads import (
    DIRECT,
    GPU_PROBES,
    HOST_PROBES,
    gpu_idle,
    plan,
    read_host_like,
)
from resmagic.scopes.outcome import (
    ended_ranks,
    exact_children,
    holders_at_error,
    holders_named,
    is_out_of_memory,
    oom_killed,
    shown,
    unguarded,
)
from resmagic.scopes.ranked import ranks_of
from resmagic.scopes.reclaim import clear_frames

__all__ = ["gpu_scope", "is_out_of_memory", "parse_device"]


_ALL_PROBES = HOST_PROBES + GPU_PROBES  # one tuple for every scope: plan()'s cache key


_idle_notes: dict[str | None, tuple[str, ...]] = {}
"""``why_no_gpu`` of a scope with every GPU source while they are idle, by NVML's reason:
the same texts every block until torch is imported or NVML is reset (issue 26, G4)."""


@dataclass(slots=True)
class _Run:
    started_at: float
    t0: float
    before: dict[tuple[str, str], DeviceMemory]
    frames: dict[str, tuple[PeakCounter, dict[str, int]]]  # source -> its counter and frame
    watch: Watch | None
    oom_kills: int | None  # the container's OOM-kill counter when the run opened
    failures: dict[str, str]  # source -> what went wrong reading it, once per source
    guard: Guard | None = None


class gpu_scope(Scope["gpu_scope", GpuReport]):
    """Measure memory per device around a block, clean the CUDA cache, and free memory after OOM.

    Host memory is always measured (RSS; exact peak from the kernel's ``VmHWM`` on Linux). Each
    CUDA device is measured by the torch allocator (exact peak) once torch has initialised
    CUDA, and by NVML (device-wide, peak sampled) where a driver is present. Nothing here
    initialises CUDA.

    Args:
        device: ``None`` for every GPU, ``"cuda:N"``/``N`` for one, ``"host"`` for none.
        empty_cache: call ``torch.cuda.empty_cache()`` before and after (only if CUDA is
            initialised), so "after" shows what the block still holds.
        gc: run ``gc.collect()`` before and after; off by default because it costs
            milliseconds per call on a big heap.
        reclaim: after which exceptions to clear the traceback's frames and empty the cache,
            so memory held by the failed block's locals comes back: ``"oom"`` (out-of-memory
            errors only, keeping ``%debug`` usable for the rest), ``"always"`` or ``"never"``.
        held_by: variables (e.g. ``globals()``; in IPython the user namespace) to name the
            report's ``holders`` from, when the block leaves more than ``settings.held_mib``
            held or runs out of memory (then before its frames are cleared). None: never.
        guard: stop the block with :class:`~resmagic.errors.MemoryLimitError` once the
            container's working set passes this share of its memory limit (0.9 or ``"90%"``),
            before the OOM killer kills the process; None: no guard. Sampled, so one huge
            allocation between two samples can still beat it (see :mod:`resmagic.guard`).
        ranks: inside a ``torch.distributed`` process group, gather every rank's figures
            (status, wall, each device's before, peak and after) into rank 0's report
            (``report.ranks``: :class:`~resmagic.ranktable.RankTable`, ``peak("host")`` says
            which rank peaked); every rank must open its ranks scopes in the same order, as
            with collectives. No gather, and no error, where no group is initialised.
        ranks_timeout_s: how long rank 0 waits for the others' records before it names them
            missing; None: ``settings.ranks_timeout_s`` (60 s).

    Raises:
        DeviceError: the device does not exist here.
        OptionError: ``reclaim`` is not one of the three values, ``guard`` no share,
            ``ranks`` no bool, or ``ranks_timeout_s`` no positive number of seconds.

    Examples:
        >>> with gpu_scope() as scope:
        ...     buf = bytearray(10 << 20)
        >>> scope.report.device("host").peak_bytes >= scope.report.device("host").before_bytes
        True
    """

    def __init__(
        self,
        device: object = None,
        *,
        empty_cache: bool = True,
        gc: bool = False,
        reclaim: Reclaim = "oom",
        held_by: Mapping[str, Any] | None = None,
        guard: float | str | None = None,
        ranks: bool = False,
        ranks_timeout_s: float | None = None,
    ) -> None:
        super().__init__()
        if reclaim not in RECLAIM:
            msg = f"reclaim must be 'oom', 'always' or 'never', not {reclaim!r}"
            raise OptionError(msg)
        self.guard = parse_fraction(guard) if guard is not None else None
        self.device = parse_device(device)
        if isinstance(self.device, int):
            check_exists(self.device)
        self.empty_cache = empty_cache
        self.gc = gc
        self.reclaim = reclaim
        self.held_by = held_by
        if ranks is not False or ranks_timeout_s is not None:  # ranks_of checks both
            self.ranks = ranks_of(ranks, ranks_timeout_s, "gpu_scope", None)
        self._probes: tuple[Probe, ...] = HOST_PROBES if self.device == HOST else _ALL_PROBES
        self._listeners: list[Listener] = []
        self._latest: _Run | None = None

    def follow(self, listener: Listener) -> None:
        """Sample every device while open and hand each sample to ``listener`` (a live view).

        Called from the sampler thread with ``(time.monotonic(), readings)``. What the
        listener is shown counts toward the report's peak, so a live view never shows more
        than the peak it ends with.

        Raises:
            RuntimeError: the scope is open already; follow it before entering.
        """
        if self.open_runs:
            # The open run's watch was chosen on entry; a listener added now would never hear.
            msg = "gpu_scope.follow() must be called before entering the scope"
            raise RuntimeError(msg)
        self._listeners.append(listener)

    def unfollow(self, listener: Listener) -> None:
        """Hand ``listener`` no more samples (a view whose cell has ended); None if it was not."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- readings --------------------------------------------------------------------------

    def readings(self) -> list[DeviceMemory]:
        """Every reading this scope reports, taken now; safe to call from any thread."""
        return self._read_from(self._probes, {})

    def opened(self) -> list[DeviceMemory]:
        """The readings the newest open run took when it opened ([] when none is open).

        The host row's peak there is its RSS at open where its peak counter is exact (the
        counter was reset as the run opened): what the counter would have said.
        """
        run = self._latest
        if run is None:
            return []
        exact_host = host.SOURCE in run.frames
        return [
            replace(r, peak_bytes=r.used_bytes)
            if exact_host and r.source == host.SOURCE and r.peak_bytes is None
            else r
            for r in run.before.values()
        ]

    def why_no_gpu(self, seen: set[str]) -> tuple[str, ...]:
        """In words, why rows from these sources leave out a GPU source (``()`` for host only)."""
        gpus = (p for p in self._probes if p in GPU_PROBES)
        return tuple(str(p.status()) for p in gpus if p.source not in seen)

    def _notes_without_gpu(self, rows: tuple[DeviceReport, ...], idle: bool) -> tuple[str, ...]:
        """:meth:`why_no_gpu` of ``rows``; while the GPU sources are idle, from a cache."""
        if self.device == HOST:
            return ()
        if not idle:
            return self.why_no_gpu({r.source for r in rows})
        reason = nvml.unavailable()
        notes = _idle_notes.get(reason)
        if notes is None:
            notes = _idle_notes[reason] = self.why_no_gpu(set())
        return notes

    def _wants(self, index: int) -> bool:
        return self.device is None or self.device == index

    def _read_from(
        self, probes: Sequence[Probe], failures: dict[str, str], *, peak: bool = True
    ) -> list[DeviceMemory]:
        """Every row of ``probes``; a driver's failure never changes the block's outcome.

        A probe that fails gives no rows and a note in ``failures`` (the run's), once per
        source; per-run state stays off the scope, which threads may share.
        """
        if probes is HOST_PROBES and not peak and DIRECT:
            return read_host_like(self._wants, failures)
        rows: list[DeviceMemory] = []
        for probe in probes:
            got, failure = probe.read(self._wants, peak=peak)
            rows += got
            if failure is not None:
                failures.setdefault(probe.source, failure)
        return rows

    def _tell(self, now: float, readings: Sequence[DeviceMemory]) -> None:
        for listener in list(self._listeners):
            try:
                listener(now, readings)
            except Exception:  # a view's failure is the view's to report, never the block's
                self._listeners.remove(listener)

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self) -> tuple[_Run, gpu_scope]:
        failures: dict[str, str] = {}
        gc_t0 = time.perf_counter()
        if self.gc:
            _gc.collect()
        idle = self.device == HOST or gpu_idle()
        if self.empty_cache:
            torch_cuda.empty_cache()
        # No peak read at open: the run's peak comes from the counter it resets, or from the
        # samples; VmHWM before the reset was 7-9 us of /proc/self/status per block (issue 26).
        probes = HOST_PROBES if idle else self._probes
        readings = self._read_from(probes, failures, peak=False)
        before = {(r.name, r.source): r for r in readings}
        run = _Run(time.time(), gc_t0, before, {}, None, cgroup.oom_kills(), failures)
        try:
            self._attach(run, probes)
        except BaseException:  # not open yet, so nobody else would undo it (reliability #3)
            self._detach(run)
            raise
        # With gc=True the collections count: the user asked for them, they take the time.
        if not self.gc:
            run.t0 = time.perf_counter()
        self._latest = run
        return run, self

    def _attach(self, run: _Run, probes: tuple[Probe, ...]) -> None:
        """Push the run's peak frames, add its sampler watch of ``probes``, start its guard.

        Every probe's counter gets a frame, an idle GPU source's too: torch may initialise
        CUDA in the block, and its peak counter then holds the block's exact peak.
        """
        counters, sampled = plan(self._probes, probes)
        for source, counter in counters:
            if source == cgroup.SOURCE and (cgroup.NAME, cgroup.SOURCE) not in run.before:
                continue  # no limit, no container row: no peak to reset and read (issue 26)
            run.frames[source] = (counter, counter.push())
        if self._listeners:
            read = partial(self._read_from, self._probes, run.failures)
            run.watch = sampler.add(Watch(read, self._tell))
        elif any(p.present() for p in sampled):
            run.watch = sampler.add(Watch(partial(self._read_from, sampled, run.failures)))
        if self.guard is not None:
            cell = current_cell()
            run.guard = Guard(self.guard, cell="the block" if cell is None else f"cell {cell}")
            run.guard.start()

    def _detach(self, run: _Run) -> None:
        """Undo whatever part of :meth:`_attach` was done."""
        try:
            if run.guard is not None:
                run.guard.stop()
            self._pop_peaks(run)
        finally:
            if run.watch is not None:
                sampler.remove(run.watch)

    def _close(self, run: _Run, exc: BaseException | None) -> GpuReport:
        duration = time.perf_counter() - run.t0
        if run.guard is not None:
            run.guard.stop()  # first: it must not fire into the scope's own closing
        at_error = holders_at_error(self.held_by, exc)  # before the reclaim frees them
        reclaimed = exc is not None and self._should_reclaim(exc)
        if reclaimed and exc is not None:
            clear_frames(exc)
            _gc.collect()
        try:
            exact = self._pop_peaks(run)
        finally:
            if run.watch is not None:
                sampler.remove(run.watch)
        if self.gc:
            _gc.collect()
            duration = time.perf_counter() - run.t0
        idle = self.device == HOST or gpu_idle()
        if self.empty_cache or reclaimed:
            torch_cuda.empty_cache()
        # The host peak was read by pop() above: what VmHWM says now is not needed.
        probes = HOST_PROBES if idle else self._probes
        after = exact_children(self._read_from(probes, run.failures, peak=False), self._wants)
        if run.watch is not None:
            # One last reading, so a peak that is still held is counted; the live view is
            # done by now and gets the report instead. The "after" readings are that
            # reading: every row the watch reads is among them, and an extra row can only
            # add its own after value, which each row's peak already includes.
            run.watch.sample(notify=False, readings=after)
        ended = ended_ranks(run.watch, after)  # ranks gone by now: what the sampler saw
        rows = tuple(row for r in [*after, *ended] if shown(row := self._row(r, run, exact)))
        holders, when = holders_named(self.held_by, rows, at_error)
        return gpu_report(
            self.common(run.started_at, duration, exc),
            rows,
            self._notes_without_gpu(rows, idle)
            + tuple(run.failures.values())
            + oom_killed(run.oom_kills)
            + unguarded(run.guard),
            reclaimed,
            holders,
            when,
        )

    def _pop_peaks(self, run: _Run) -> dict[str, dict[str, int]]:
        """Each exact counter's peak per device for this run; a counter that fails, none."""
        exact: dict[str, dict[str, int]] = {}
        for source, (counter, frame) in run.frames.items():
            try:
                exact[source] = counter.pop(frame)
            except Exception as exc:
                run.failures.setdefault(source, f"{source}: peak not read ({describe_error(exc)})")
        return exact

    def _row(
        self, after: DeviceMemory, run: _Run, exact_peaks: dict[str, dict[str, int]]
    ) -> DeviceReport:
        key = (after.name, after.source)
        before_reading = run.before.get(key)
        # A device torch initialised inside the block had nothing allocated before it.
        before = before_reading.used_bytes if before_reading is not None else 0
        exact = exact_peaks.get(after.source, {}).get(after.name)
        sampled = run.watch.peak(*key) if run.watch is not None else None
        peak = max(before, after.used_bytes, exact or 0, sampled or 0)
        return device_report(
            after.name,
            after.source,
            before,
            peak,
            after.used_bytes,
            after.total_bytes,
            exact is not None,
            after.reserved_bytes,
        )

    def _should_reclaim(self, exc: BaseException) -> bool:
        if self.reclaim == "never":
            return False
        return self.reclaim == "always" or is_out_of_memory(exc)
