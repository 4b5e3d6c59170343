"""Which device a scope measures: reading a device spec, and checking the GPU exists.

Answers from torch once it has initialised CUDA, else from NVML; never touches CUDA.
"""

from __future__ import annotations

from resmagic.errors import DeviceError
from resmagic.probes import table
from resmagic.ranktable import is_rank_row

__all__ = ["HOST", "HOST_ROWS", "check_exists", "host_notes", "not_own_gpu", "parse_device"]

HOST = "host"
"""The device spec for host memory only."""

HOST_ROWS = table.HOST_ROWS
"""The rows of host memory: this process, its child processes, its cgroup (not GPUs)."""


def not_own_gpu(name: str) -> bool:
    """True for a row that is not one of this process's GPUs: host-like rows, launched ranks'.

    A report whose rows are all such still says why it has no GPU row of its own.
    """
    return name in HOST_ROWS or is_rank_row(name)


def host_notes(notes: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """(what happened in the container, why a GPU has no row): the first are always shown."""
    said = [n for n in notes if n.startswith(("container:", "guard:"))]
    return said, [n for n in notes if n not in said]


def parse_device(device: object) -> int | str | None:
    """Read a device spec: None (every GPU), ``"host"``, or a CUDA index.

    Accepts ``None``, ``"cuda"``, ``"cuda:N"``, ``N`` (int or digits), ``"host"``/``"cpu"``
    and ``torch.device`` objects.

    Raises:
        DeviceError: the spec names no device we can read; the message lists what works.
    """
    if device is None:
        return None
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if isinstance(kind, str):  # a torch.device
        device = kind if index is None else f"{kind}:{index}"
    if isinstance(device, bool):
        pass
    elif isinstance(device, int) and device >= 0:
        return device
    elif isinstance(device, str):
        text = device.strip().lower()
        if text in ("host", "cpu"):
            return HOST
        if text == "cuda":
            return None
        digits = text.removeprefix("cuda:")
        if digits.isascii() and digits.isdigit():
            return int(digits)
    msg = (
        f"unknown device {device!r}: use 'cuda:N' (or just N) for one GPU, 'host' for host"
        " memory only, or no device for every GPU"
    )
    raise DeviceError(msg)


def _gpu_count() -> tuple[int, str]:
    """How many CUDA devices this process sees, touching no CUDA, and why none."""
    # The first that sees any: torch's count once it has initialised CUDA, else NVML's
    # (torch's before that can call cuInit: torch_cuda.visible_count).
    for probe in table.GPU:
        count = probe.visible()
        if count:
            return count, ""
    return 0, "; ".join(str(probe.status()) for probe in table.GPU)


def check_exists(index: int) -> None:
    """Raise ``DeviceError`` unless this process sees ``cuda:index`` (no CUDA context made)."""
    count, why = _gpu_count()
    if index < count:
        return
    if count == 0:
        msg = f"no device cuda:{index}: this process sees no GPU ({why}). Use 'host' or leave out"
        msg += " the device"
    else:
        names = ", ".join(f"cuda:{i}" for i in range(count))
        msg = f"no device cuda:{index}: this process sees {count} GPU(s): {names}"
    raise DeviceError(msg)
