"""Who holds the memory: the names behind the bytes a session keeps (``resmagic.who()``).

A walk from the roots a user can name: the namespace (IPython's own bookkeeping left out),
the output cache (``Out[7]``, ``_``), and the frames of the last error. Each tensor or array
is counted once, by its storage, under the first name found; other names that reach the same
storage are listed beside it. Modules, classes and functions are not walked into, torch and
numpy are looked at only if already imported, and a time budget stops the walk (the result
says so). Nothing here initialises CUDA.
"""

from __future__ import annotations

import sys
import time
import types
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from resmagic.units import format_bytes

__all__ = ["Holder", "Holders", "who"]

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


@dataclass(frozen=True, slots=True)
class Holder:
    """One storage and the name it was found under.

    Attributes:
        name: what a user can type or recognise, e.g. ``model.fc.weight.grad``, ``Out[7]``.
        kind: parameter, buffer, gradient, optimizer state, activation, tensor, numpy array,
            bytes, output cache, traceback frame.
        device: ``"host"`` or ``"cuda:N"``.
        nbytes: the storage's size, counted once however many names reach it.
        shared_with: the other names that reach the same storage (views, tied weights).
    """

    name: str
    kind: str
    device: str
    nbytes: int
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Holders:
    """The result of :func:`who`: holders largest first, and where the walk stopped, if it did."""

    rows: tuple[Holder, ...]
    stopped: str | None = None
    walked: int = 0

    def total(self, device: str | None = None) -> int:
        """Bytes named on ``device`` (every device when None)."""
        return sum(r.nbytes for r in self.rows if device is None or r.device == device)

    def __sub__(self, before: Holders) -> Holders:
        """What is held now that was not before: the diff of two walks (by name and size)."""
        seen = {(r.name, r.nbytes) for r in before.rows}
        return Holders(tuple(r for r in self.rows if (r.name, r.nbytes) not in seen))

    def line(self, top: int = 3, min_bytes: int = 0) -> str:
        """``held by: opt.state 768 MiB · model (grads) 384 MiB`` for the largest holders."""
        rows = [r for r in self.rows if r.nbytes >= min_bytes][:top]
        parts = [f"{r.name} {format_bytes(r.nbytes)}" for r in rows]
        return "held by: " + (" · ".join(parts) if parts else "nothing we can name")

    def __repr__(self) -> str:
        if not self.rows:
            return "no tensors or arrays reachable from your variables"
        table = [("name", "kind", "device", "size", "also reached as")]
        table += [
            (r.name, r.kind, r.device, format_bytes(r.nbytes), ", ".join(r.shared_with))
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines = [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        if self.stopped:
            lines.append(f"(stopped early: {self.stopped})")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


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
) -> Holders:
    """Name the tensors and arrays reachable from ``namespace`` (default: the caller's globals).

    Args:
        namespace: the variables to start from; in IPython, the user namespace with ``Out``.
        top: keep the largest ``top`` rows (None: all).
        device: only rows on this device, e.g. ``"cuda:0"`` or ``"host"``.
        budget_s: stop walking after this many seconds and say so.
    """
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
    _add_last_error(walk)
    _bfs(walk)
    rows = [
        Holder(name, kind, dev, nbytes, tuple(shared))
        for name, kind, dev, nbytes, shared in walk.found.values()
        if device is None or dev == device
    ]
    rows.sort(key=lambda r: r.nbytes, reverse=True)
    return Holders(tuple(rows[:top] if top is not None else rows), walk.stopped, walk.walked)


def _is_cache_name(name: str) -> bool:
    """IPython's ``_i7`` (input) and ``_7`` (the same value as ``Out[7]``)."""
    return name[1:].isdigit() or (name.startswith("_i") and name[2:].isdigit())


def _add_last_error(walk: _Walk) -> None:
    # The frames of the last error: their values through gc, never frame.f_locals (reading
    # it keeps the locals alive after a reclaim on Python < 3.13, CPython #113939).
    import gc

    tb = getattr(sys, "last_traceback", None)
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_flags & 0x1:  # CO_OPTIMIZED: a function's frame, not the cell's
            label = f"{frame.f_code.co_name}() frame of the last error"
            for value in gc.get_referents(frame):
                if not isinstance(value, (dict, *_OPAQUE)):
                    walk.todo.append((value, label, "traceback frame"))
        tb = tb.tb_next


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
