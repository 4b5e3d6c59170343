"""``gpu_scope``: memory per device before, at peak and after a block, and OOM recovery."""

from __future__ import annotations

import gc as _gc
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Literal

from resmagic.bus import current_cell
from resmagic.errors import OptionError
from resmagic.probes import host, nvml, peaks, torch_cuda
from resmagic.probes.devices import HOST, check_exists, parse_device
from resmagic.probes.reading import DeviceMemory
from resmagic.report import DeviceReport, GpuReport, describe_error, status_of
from resmagic.sampler import Listener, Watch, sampler
from resmagic.scopes.base import Scope

__all__ = ["gpu_scope", "parse_device"]

Reclaim = Literal["oom", "always", "never"]


@dataclass(slots=True)
class _Run:
    started_at: float
    t0: float
    before: dict[tuple[str, str], DeviceMemory]
    host_frame: dict[str, int] | None
    torch_frame: dict[str, int]
    watch: Watch | None


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

    Raises:
        DeviceError: the device does not exist here.
        OptionError: ``reclaim`` is not one of the three values.

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
    ) -> None:
        super().__init__()
        if reclaim not in ("oom", "always", "never"):
            msg = f"reclaim must be 'oom', 'always' or 'never', not {reclaim!r}"
            raise OptionError(msg)
        self.device = parse_device(device)
        if isinstance(self.device, int):
            check_exists(self.device)
        self.empty_cache = empty_cache
        self.gc = gc
        self.reclaim = reclaim
        self._listeners: list[Listener] = []
        self._latest: _Run | None = None
        self._failures: dict[str, str] = {}  # source -> what went wrong, in the open run

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

    # -- readings --------------------------------------------------------------------------

    def readings(self) -> list[DeviceMemory]:
        """Every reading this scope reports, taken now; safe to call from any thread."""
        return self._read()

    def opened(self) -> list[DeviceMemory]:
        """The readings the newest open run took when it opened ([] when none is open)."""
        return list(self._latest.before.values()) if self._latest is not None else []

    def why_no_gpu(self, sources: set[str]) -> tuple[str, ...]:
        """In words, why rows from these sources leave out a GPU source (``()`` for host only)."""
        if self.device == HOST:
            return ()
        notes = []
        if torch_cuda.SOURCE not in sources:
            notes.append(str(torch_cuda.status()))
        if nvml.SOURCE not in sources:
            notes.append(str(nvml.status()))
        return tuple(notes)

    def _wants(self, index: int) -> bool:
        return self.device is None or self.device == index

    def _read(self, *, host_peak: bool = True) -> list[DeviceMemory]:
        rows = [host.read(peak=host_peak)]
        if self.device == HOST:
            return rows
        return rows + self._allocator_rows() + self._nvml_rows()

    def _read_sampled(self) -> list[DeviceMemory]:
        # What only sampling can give a peak for: NVML rows, and host RSS where VmHWM
        # cannot be reset.
        rows = [] if host.peak_is_exact() else [host.read()]
        return rows if self.device == HOST else rows + self._nvml_rows()

    def _allocator_rows(self) -> list[DeviceMemory]:
        return self._guarded(
            torch_cuda.SOURCE,
            lambda: [
                torch_cuda.read(i)
                for i in (range(torch_cuda.device_count()) if torch_cuda.ready() else ())
                if self._wants(i)
            ],
        )

    def _nvml_rows(self) -> list[DeviceMemory]:
        return self._guarded(
            nvml.SOURCE,
            lambda: [nvml.read(d) for d in nvml.visible() if self._wants(d.cuda_index)],
        )

    def _guarded(self, source: str, read: Callable[[], list[DeviceMemory]]) -> list[DeviceMemory]:
        """The readings, or none when the driver fails: the block's outcome never changes.

        A failure (NVML's "GPU is lost", a driver hiccup) becomes a note on the report, once
        per source and run; the rows from that source are left out where it failed.
        """
        try:
            return read()
        except Exception as exc:
            self._failures.setdefault(source, f"{source}: reading failed ({describe_error(exc)})")
            return []

    def _tell(self, now: float, readings: Sequence[DeviceMemory]) -> None:
        for listener in list(self._listeners):
            try:
                listener(now, readings)
            except Exception:  # a view's failure is the view's to report, never the block's
                self._listeners.remove(listener)

    def _needs_sampling(self) -> bool:
        return not host.peak_is_exact() or (self.device != HOST and bool(nvml.visible()))

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self) -> tuple[_Run, gpu_scope]:
        self._failures = {}
        if self.gc:
            _gc.collect()
        if self.empty_cache:
            torch_cuda.empty_cache()
        before = {(r.name, r.source): r for r in self._read()}
        host_frame = peaks.host_peaks.push() if host.peak_is_exact() else None
        torch_frame = peaks.torch_peaks.push()
        watch = None
        if self._listeners:
            watch = sampler.add(Watch(self._read, self._tell))
        elif self._needs_sampling():
            watch = sampler.add(Watch(self._read_sampled))
        run = _Run(time.time(), time.perf_counter(), before, host_frame, torch_frame, watch)
        self._latest = run
        return run, self

    def _close(self, run: _Run, exc: BaseException | None) -> GpuReport:
        duration = time.perf_counter() - run.t0
        reclaimed = exc is not None and self._should_reclaim(exc)
        if reclaimed and exc is not None:
            _clear_frames(exc)
            _gc.collect()
        try:
            host_peak = peaks.host_peaks.pop(run.host_frame) if run.host_frame is not None else {}
            torch_peak = self._peaks_of(run)
        finally:
            if run.watch is not None:
                sampler.remove(run.watch)
        if self.gc:
            _gc.collect()
        if self.empty_cache or reclaimed:
            torch_cuda.empty_cache()
        # The host peak was read by pop() above: what VmHWM says now is not needed.
        after = self._read(host_peak=False)
        if run.watch is not None:
            # One last reading, so a peak that is still held is counted; the live view is
            # done by now and gets the report instead. The "after" readings are that
            # reading: every row the watch reads is among them, and an extra row can only
            # add its own after value, which each row's peak already includes.
            run.watch.sample(notify=False, readings=after)
        rows = tuple(self._row(r, run, host_peak, torch_peak) for r in after)
        return GpuReport(
            status=status_of(exc),
            duration_s=duration,
            started_at=run.started_at,
            cell=current_cell(),
            error=describe_error(exc),
            devices=rows,
            notes=self.why_no_gpu({r.source for r in rows}) + tuple(self._failures.values()),
            reclaimed=reclaimed,
        )

    def _peaks_of(self, run: _Run) -> dict[str, int]:
        try:
            return peaks.torch_peaks.pop(run.torch_frame)
        except Exception as exc:  # the allocator's counters could not be read: no exact peak
            self._failures.setdefault(
                torch_cuda.SOURCE, f"{torch_cuda.SOURCE}: peak not read ({describe_error(exc)})"
            )
            return {}

    def _row(
        self,
        after: DeviceMemory,
        run: _Run,
        host_peak: dict[str, int],
        torch_peak: dict[str, int],
    ) -> DeviceReport:
        key = (after.name, after.source)
        before_reading = run.before.get(key)
        # A device torch initialised inside the block had nothing allocated before it.
        before = before_reading.used_bytes if before_reading is not None else 0
        exact: int | None
        if after.source == torch_cuda.SOURCE:
            exact = torch_peak.get(after.name)
        elif after.name == HOST:
            exact = host_peak.get(HOST)
        else:
            exact = None
        sampled = run.watch.peak(*key) if run.watch is not None else None
        peak = max(before, after.used_bytes, exact or 0, sampled or 0)
        return DeviceReport(
            name=after.name,
            source=after.source,
            before_bytes=before,
            peak_bytes=peak,
            after_bytes=after.used_bytes,
            total_bytes=after.total_bytes,
            peak_exact=exact is not None,
            reserved_bytes=after.reserved_bytes,
        )

    def _should_reclaim(self, exc: BaseException) -> bool:
        if self.reclaim == "never":
            return False
        return self.reclaim == "always" or is_out_of_memory(exc)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``MemoryError`` and torch's CUDA out-of-memory error."""
    return isinstance(exc, MemoryError) or torch_cuda.is_oom(exc)


def _clear_frames(exc: BaseException) -> None:
    """Drop the locals of every finished frame in ``exc``'s traceback and its chain.

    After IPython has formatted the traceback (which reads ``frame.f_locals``), clearing a
    frame does not free its locals on Python < 3.13: the ``f_locals`` snapshot keeps them
    (CPython #113939). So the snapshot of every cleared function frame is emptied too; a
    module frame's ``f_locals`` is the namespace itself and is left alone.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            _clear_frame(tb.tb_frame)
            tb = tb.tb_next
        todo += [current.__cause__, current.__context__]


def _clear_frame(frame: FrameType) -> None:
    snapshot = None
    if sys.version_info < (3, 13) and frame.f_code.co_flags & inspect.CO_OPTIMIZED:
        snapshot = frame.f_locals
    try:
        frame.clear()
    except RuntimeError:  # still executing (IPython's own frames above the cell)
        return
    if snapshot is not None:
        snapshot.clear()
