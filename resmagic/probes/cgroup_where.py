"""Which memory cgroup a process is in (v1 or v2), found, never assumed to be the root.

The cgroup is read from ``/proc/<pid>/cgroup`` and located through ``/proc/<pid>/mountinfo``:
a container's hierarchy is often mounted with the process's own cgroup as its root.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Cgroup", "own"]


@dataclass(frozen=True, slots=True)
class Cgroup:
    """A memory cgroup: its version, its folder, and the folder of its hierarchy's mount."""

    version: int
    path: str
    mount: str

    def file(self, name: str) -> str:
        """The path of one of the cgroup's files, e.g. ``memory.max``."""
        return os.path.join(self.path, name)

    def ancestors(self) -> list[str]:
        """This cgroup's folder and every parent up to the mount, innermost first."""
        out, path = [self.path], self.path
        while path != self.mount and os.path.dirname(path) != path:
            path = os.path.dirname(path)
            out.append(path)
        return out


def own(proc: str = "/proc/self") -> Cgroup | None:
    """The memory cgroup of a process (default: this one, looked up once), or None."""
    if proc == "/proc/self":
        return _self()
    return _lookup(proc)


@functools.lru_cache(maxsize=1)
def _self() -> Cgroup | None:
    return _lookup("/proc/self")


def _lookup(proc: str) -> Cgroup | None:
    try:
        with open(os.path.join(proc, "cgroup")) as f:
            lines = f.read().splitlines()
        with open(os.path.join(proc, "mountinfo")) as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    v1 = next((_rel(line) for line in lines if "memory" in _controllers(line)), None)
    if v1 is not None:
        mount = _mount(mounts, lambda kind, options: kind == "cgroup" and "memory" in options)
        return _located(1, v1, mount)
    v2 = next((_rel(line) for line in lines if line.startswith("0::")), None)
    mount = _mount(mounts, lambda kind, options: kind == "cgroup2")
    return _located(2, v2, mount) if v2 is not None else None


def _controllers(line: str) -> list[str]:
    parts = line.split(":", 2)
    return parts[1].split(",") if len(parts) == 3 else []


def _rel(line: str) -> str:
    return line.split(":", 2)[2]


def _mount(mounts: list[str], wanted: Callable[[str, list[str]], bool]) -> tuple[str, str] | None:
    """(root inside the hierarchy, mount point) of the first mount that ``wanted`` accepts."""
    for line in mounts:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3 and wanted(tail[0], tail[2].split(",")):
            return fields[3], fields[4]
    return None


def _located(version: int, rel: str, mount: tuple[str, str] | None) -> Cgroup | None:
    if mount is None:
        return None
    root, point = mount
    inner = os.path.relpath(rel, root) if rel.startswith(root) else rel.lstrip("/")
    path = os.path.normpath(os.path.join(point, "" if inner == "." else inner))
    return Cgroup(version, path, point) if os.path.isdir(path) else None
