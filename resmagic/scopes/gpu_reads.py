"""What a ``gpu_scope`` block reads, worked out cheaply (issue 26, G5 and G8).

Whether the GPU sources can give a row at all, the host-like rows read in straight lines
instead of through the probe protocol, and which counters and sampled probes a block's
probes have, planned once.
"""

from __future__ import annotations

from resmagic.probes import cgroup, host, launched, nvml, sources, table, torch_cuda, workers
from resmagic.probes.peaks import OuterPeak, PeakCounter
from resmagic.probes.probe import Probe, Wants, describe_failure
from resmagic.probes.reading import DeviceMemory

__all__ = ["DIRECT", "GPU_PROBES", "HOST_PROBES", "Plan", "gpu_idle", "plan", "read_host_like"]


HOST_PROBES = table.HOST_LIKE
GPU_PROBES = table.GPU


def gpu_idle() -> bool:
    """True while no GPU source can give a row: torch not imported, NVML settled without one.

    Then a block reads the host-like probes only (issue 26, G5): the GPU ones would give no
    rows and no failure. Checked again at close, so torch imported in the block is read.
    """
    return not torch_cuda.imported() and nvml.unavailable() is not None


# The built-in host-like probes, read without the protocol's calls (issue 26, G8).
DIRECT = HOST_PROBES == (sources.HOST, sources.WORKERS, sources.CONTAINER)


def read_host_like(wants: Wants, failures: dict[str, str]) -> list[DeviceMemory]:
    """What ``gpu_scope._read_from(HOST_PROBES, failures, peak=False)`` reads, in straight lines.

    Rows of the host, its workers and its container, in that order; a read that fails
    gives no rows and its note in ``failures``, once per source, as a probe's would.
    """
    rows: list[DeviceMemory] = []
    try:
        rows.append(host.read(peak=False))
    except Exception as exc:
        failures.setdefault(host.SOURCE, describe_failure(host.SOURCE, exc))
    try:
        rows += launched.read(wants)
    except Exception as exc:
        failures.setdefault(workers.SOURCE, describe_failure(workers.SOURCE, exc))
    try:
        rows += cgroup.read()
    except Exception as exc:
        failures.setdefault(cgroup.SOURCE, describe_failure(cgroup.SOURCE, exc))
    return rows


Plan = tuple[tuple[tuple[str, PeakCounter], ...], tuple[Probe, ...]]
_plans: dict[tuple[tuple[Probe, ...], tuple[Probe, ...], bool], Plan] = {}


def plan(counted: tuple[Probe, ...], read: tuple[Probe, ...]) -> Plan:
    """The exact counters of ``counted`` by source, and which of ``read`` only sampling peaks.

    Sampled: a probe without an exact counter (NVML, workers, host RSS where VmHWM cannot be
    reset) and the container (only the outermost scope has its counter). The same for every
    run while the host's counter stays exact or not: worked out once (issue 26, G8).
    """
    key = (counted, read, host.peak_is_exact())
    plan = _plans.get(key)
    if plan is None:
        counters = tuple((p.source, c) for p in counted if (c := p.counter) is not None)
        sampled = tuple(p for p in read if p.counter is None or isinstance(p.counter, OuterPeak))
        plan = _plans[key] = (counters, sampled)
    return plan
