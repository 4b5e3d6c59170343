"""The walk behind :func:`resmagic.who`: from the roots a user can name to each storage."""

from __future__ import annotations

import sys
import time
import types
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from resmagic.holders.result import Holder, Holders
from resmagic.probes.devices import HOST, parse_device

__all__ = ["device_name", "who"]

_HIDDEN = {"In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii", "exit", "quit", "get_ipython"}
_BIG_BYTES = 1 << 16  # smaller bytes objects are not worth a row
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), range)
_OPAQUE = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
)


@dataclass
class _Walk:
    budget_s: float
    deadline: float = 0.0
    found: dict[tuple[str, int], list[Any]] = field(default_factory=dict)  # key -> row parts
    seen: set[int] = field(default_factory=set)
    todo: deque[tuple[Any, str, str]] = field(default_factory=deque)
    params: dict[int, str] = field(default_factory=dict)  # id of a parameter -> its name
    walked: int = 0
    stopped: str | None = None

    def add(self, key: tuple[str, int], name: str, kind: str, nbytes: int) -> None:
        row = self.found.get(key)
        if row is None:
            self.found[key] = [name, kind, key[0], nbytes, []]
        elif name != row[0] and name not in row[4]:
            row[4].append(name)

    def out_of_time(self) -> bool:
        if self.stopped is None and time.perf_counter() > self.deadline:
            self.stopped = f"time budget {self.budget_s:g} s reached after {self.walked} objects"
        return self.stopped is not None


def who(
    namespace: Mapping[str, Any] | None = None,
    *,
    top: int | None = 10,
    device: str | None = None,
    budget_s: float = 0.02,
    error: BaseException | None = None,
) -> Holders:
    """Name the tensors and arrays reachable from ``namespace`` (default: the caller's globals).

    Args:
        namespace: the variables to start from; in IPython, the user namespace with ``Out``.
        top: keep the largest ``top`` rows (None: all).
        device: only rows on this device, e.g. ``"cuda:0"`` or ``"host"``.
        budget_s: stop walking after this many seconds and say so.
        error: an exception being handled, whose frames are walked first (an out-of-memory
            error, before its frames are cleared); else the last error IPython kept.

    Raises:
        DeviceError: ``device`` names no device (``"bogus"``), before any walking.
    """
    if device is not None:
        device = device_name(device)
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    walk = _Walk(budget_s, time.perf_counter() + budget_s)
    _name_models(walk, namespace)
    # The output cache first: `Out[7]` names a value better than `_7` or `_`.
    for number, value in dict(namespace.get("Out", {}) or {}).items():
        walk.todo.append((value, f"Out[{number}]", "output cache"))
    for name, value in namespace.items():
        if name in _HIDDEN or _is_cache_name(name):
            continue
        walk.todo.append((value, name, "output cache" if name in ("_", "__", "___") else ""))
    _add_error_frames(walk, error)
    _bfs(walk)
    return _result(walk, top, device)


def _result(walk: _Walk, top: int | None, device: str | None) -> Holders:
    """The walk's rows largest first (``top`` of them), with the totals of all of them."""
    rows = [
        Holder(name, kind, dev, nbytes, tuple(shared))
        for name, kind, dev, nbytes, shared in walk.found.values()
        if _on(dev, device)
    ]
    rows.sort(key=lambda r: r.nbytes, reverse=True)
    named: dict[str, int] = {}
    for row in rows:
        named[row.device] = named.get(row.device, 0) + row.nbytes
    kept = tuple(rows[:top] if top is not None else rows)
    in_use = {d: n for d, n in _in_use().items() if _on(d, device)}
    return Holders(kept, walk.stopped, walk.walked, named, in_use)


def device_name(device: object) -> str:
    """``"host"``, ``"cuda:N"`` or ``"cuda"`` (every GPU) for a device spec ``who`` takes.

    Raises:
        DeviceError: a spec that names no device (reliability 2026-12-06 #9: ``who
            --device bogus`` listed nothing instead of saying so).
    """
    parsed = parse_device(device)
    if parsed is None:
        return "cuda"
    return HOST if parsed == HOST else f"cuda:{parsed}"


def _on(row_device: str, wanted: str | None) -> bool:
    if wanted is None or row_device == wanted:
        return True
    return wanted == "cuda" and row_device.startswith("cuda:")


def _in_use() -> dict[str, int]:
    """What each device says is in use: RSS for the host, torch's allocated bytes for CUDA."""
    from resmagic.probes import host, torch_cuda

    used = {"host": host.rss_bytes()}
    if torch_cuda.ready():  # never initialises CUDA
        used.update({r.name: r.used_bytes for r in torch_cuda.read_all()})
    return used


def _is_cache_name(name: str) -> bool:
    """IPython's ``_i7`` (input) and ``_7`` (the same value as ``Out[7]``)."""
    return name[1:].isdigit() or (name.startswith("_i") and name[2:].isdigit())


def _add_error_frames(walk: _Walk, error: BaseException | None) -> None:
    """The function frames of ``error`` (else of the last error): each local by its name."""
    tb = error.__traceback__ if error is not None else getattr(sys, "last_traceback", None)
    which = "this error" if error is not None else "the last error"
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_flags & 0x1:  # CO_OPTIMIZED: a function's frame, not the cell's
            where = frame.f_code.co_name
            for value, name in _frame_values(frame):
                label = (
                    f"{where}() local {name!r} of {which}"
                    if name
                    else f"{where}() frame of {which}"
                )
                walk.todo.append((value, label, "traceback frame"))
        tb = tb.tb_next


def _frame_values(frame: types.FrameType) -> Iterator[tuple[Any, str | None]]:
    """A finished function frame's values, each with its local name where it has one.

    The names come from ``f_locals``; on Python < 3.13 that is a snapshot dict kept on the
    frame (CPython #113939), so it is emptied again right away: the frame's memory must stay
    as free to reclaim as before the walk (``scopes.reclaim`` empties it too).
    """
    import gc

    snapshot = frame.f_locals
    names = {id(value): name for name, value in snapshot.items()}
    if sys.version_info < (3, 13) and isinstance(snapshot, dict):
        snapshot.clear()
    del snapshot
    for value in gc.get_referents(frame):
        if not isinstance(value, (dict, *_OPAQUE)):
            yield value, names.get(id(value))


def _name_models(walk: _Walk, namespace: Mapping[str, Any]) -> None:
    """Modules first, so an optimizer found later names its state by parameter names."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    for root, value in namespace.items():
        if isinstance(value, torch.nn.Module) and not root.startswith("_"):
            _module(walk, value, root)
            walk.seen.add(id(value))


def _module(walk: _Walk, module: Any, path: str) -> None:
    """A module's parameters, their gradients and its buffers, as ``path.layer.weight``."""
    for name, param in module.named_parameters(remove_duplicate=False):
        walk.params.setdefault(id(param), f"{path}.{name}")
        _tensor(walk, param, f"{path}.{name}", "parameter")
        if param.grad is not None:
            _tensor(walk, param.grad, f"{path}.{name}.grad", "gradient")
    for name, buffer in module.named_buffers(remove_duplicate=False):
        _tensor(walk, buffer, f"{path}.{name}", "buffer")


def _optimizer(walk: _Walk, optimizer: Any, path: str, torch: Any) -> None:
    """Optimizer state (Adam's moments, momentum buffers) as ``opt.state[param]['key']``."""
    for param, state in optimizer.state.items():
        owner = walk.params.get(id(param), "?")
        for key, item in state.items():
            if isinstance(item, torch.Tensor):
                _tensor(walk, item, f"{path}.state[{owner}][{key!r}]", "optimizer state")


def _bfs(walk: _Walk) -> None:
    torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")
    while walk.todo:
        if walk.out_of_time():
            return
        value, path, kind = walk.todo.popleft()
        if isinstance(value, (bytes, bytearray)) and len(value) >= _BIG_BYTES:
            walk.add(("host", id(value)), path, kind or "bytes", sys.getsizeof(value))
            continue
        if isinstance(value, (*_ATOMS, *_OPAQUE)) or id(value) in walk.seen:
            continue
        walk.seen.add(id(value))
        walk.walked += 1
        if torch is not None and isinstance(value, torch.Tensor):
            _tensor(walk, value, path, kind or "tensor")
            if value.grad_fn is not None:
                _graph(walk, value.grad_fn, f"{path} (autograd graph)")
        elif torch is not None and isinstance(value, torch.nn.Module):
            _module(walk, value, path)
        elif torch is not None and isinstance(value, torch.optim.Optimizer):
            _optimizer(walk, value, path, torch)
        elif numpy is not None and isinstance(value, numpy.ndarray):
            _array(walk, value, path, kind)
        else:
            walk.todo.extend((item, child, kind) for item, child in _children(value, path))


def _children(value: Any, path: str) -> Iterator[tuple[Any, str]]:
    if isinstance(value, dict):
        for key, item in list(value.items()):
            yield item, f"{path}[{key!r}]"
    elif isinstance(value, (list, tuple, set, frozenset, deque)):
        for i, item in enumerate(list(value)):
            yield item, f"{path}[{i}]"
    else:
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            for key, item in list(state.items()):
                yield item, f"{path}.{key}"


def _tensor(walk: _Walk, tensor: Any, name: str, kind: str) -> None:
    try:
        storage = tensor.untyped_storage()
        device = "host" if tensor.device.type == "cpu" else str(tensor.device)
        walk.add((device, int(storage.data_ptr())), name, kind, int(storage.nbytes()))
    except Exception:  # a meta tensor, a sparse one without storage: nothing to count
        return


def _graph(walk: _Walk, node: Any, name: str) -> None:
    """Tensors an autograd graph saved for backward (gone once ``backward()`` freed them)."""
    todo, seen = [node], set()
    while todo and not walk.out_of_time():
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for attr in dir(current):
            if attr.startswith("_saved_"):
                try:
                    saved = getattr(current, attr)
                except RuntimeError:  # freed by backward()
                    continue
                if hasattr(saved, "untyped_storage"):
                    _tensor(walk, saved, name, "activation")
        todo.extend(fn for fn, _ in getattr(current, "next_functions", ()))


def _array(walk: _Walk, array: Any, name: str, kind: str) -> None:
    owner = array
    while getattr(owner, "base", None) is not None and hasattr(owner.base, "nbytes"):
        owner = owner.base
    interface = getattr(owner, "__array_interface__", None)
    pointer = int(interface["data"][0]) if interface else id(owner)
    walk.add(("host", pointer), name, kind or "numpy array", int(owner.nbytes))
