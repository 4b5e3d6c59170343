"""Which measured cells a kernel is in, on disk at once: one page per kernel, one flip a boundary.

The store's rows reach SQLite through the writer thread, which gathers jobs before it
commits. A kernel SIGKILLed just after a cell ended left that cell's ``running`` row behind,
and the next kernel said it died in a cell that had finished (58 of 105 in reliability
2026-12-06 #4); a kernel killed as a cell started left no trace at all. So each kernel
writing a store also keeps a small file of one page, ``<store>-kernels/<pid>-<session>``,
rewritten when a measured cell starts and when it ends: a header naming the process, then
one line per cell open now. The next kernel reads
the files of dead processes: what a file says was open died; anything else had ended.

The page holds two slots and, in its first byte, which one is current (issue 26 C1). A
boundary writes the new text into the other slot through a shared mapping of the file, then
flips that byte: a SIGKILL before the flip leaves the old slot current, whole; after it, the
new one. The mapping *is* the page cache, which a killed process does not take with it, so
the flip is on disk (for any reader) the moment it is made, as a returned ``pwrite`` was.
Two ``pwrite`` calls were ~14 µs of a back-to-back cell's main thread (each gave up the GIL,
and got it back after the store's writer thread: 3 ms in 1 of 1,000); two stores into the
mapping ~1 µs. Where the file cannot be mapped, each boundary ``pwrite``s the whole page
(slots and flip together: one page is whole or absent under SIGKILL, as Linux copies a page
at a time and checks for a fatal signal only between pages). There is no ``fsync``: only a
machine crash loses the last writes, and after a reboot the boot id says the process is gone.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import time
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any

from resmagic.store.liveness import Identity
from resmagic.store.paths import kernels_folder

if TYPE_CHECKING:
    from resmagic.store.rows import CellRun, Session

__all__ = ["Open", "State", "StateFile", "folder", "read_dead"]

PAGE = 4096
_SLOT_AT = 64  # the first byte says which slot is current ("0" or "1"); the rest, spaces
_SLOT = (PAGE - _SLOT_AT) // 2
_CURRENT = (b"0", b"1")
_MORE = b"more\n"  # cells left out for want of room: the store's running rows say the rest
_HEADER_MAX = _SLOT // 2  # a notebook path longer than this: no page (the rows alone, as before)
_LABEL_CHARS = 160


folder = kernels_folder
"""``<store>-kernels``: the state files of the kernels writing ``store``."""


class StateFile:
    """This process's page: at each measured cell's start and end, the other slot, then the flip.

    Only the thread that runs cells calls :meth:`started` and :meth:`ended`.
    """

    def __init__(self, fd: int, path: str, header: bytes) -> None:
        self.path = path
        self._fd: int | None = fd
        self._header = header
        self._lines: dict[str, bytes] = {}
        self._map: mmap.mmap | None = None
        self._slot = 1  # the current slot: the first write goes to slot 0
        self._used = [_SLOT, _SLOT]  # each slot's text before its padding: the first is whole
        self._slots = [b" " * _SLOT] * 2  # without a mapping: both slots, for whole pages

    @classmethod
    def create(cls, store: str, session: Session, running: list[CellRun]) -> StateFile | None:
        """The page of ``session`` (cells ``running`` already in it), or None if it cannot be.

        The folder is made 0700 and the file 0600, following no link (a link there is
        refused: no page, and the next kernel goes by the store's rows alone).
        """
        header = _header(session)
        if len(header) > _HEADER_MAX:
            return None
        name = f"{session.identity.pid}-{re.sub(r'[^A-Za-z0-9_-]', '', session.session)[:64]}"
        fd = _create(folder(store), name)
        if fd is None:
            return None
        page = cls(fd, os.path.join(folder(store), name), header)
        for run in running:
            page._lines[run.run] = _line(run, None)
        page._write()  # the whole page, with pwrite: the file is one page from now on
        if page._fd is not None:
            # a file system that cannot map it: each boundary pwrites the whole page
            with contextlib.suppress(OSError, ValueError):
                page._map = mmap.mmap(page._fd, PAGE)
        return page if page._fd is not None else None

    def started(self, run: CellRun, oom_kills: int | None) -> None:
        """``run`` is open: on disk before this returns (its slot, then the flip)."""
        if self._fd is not None:
            self._lines[run.run] = _line(run, oom_kills)
            self._write()

    def ended(self, run: CellRun) -> None:
        """``run`` has ended: on disk before this returns (its slot, then the flip)."""
        if self._fd is not None and self._lines.pop(run.run, None) is not None:
            self._write()

    def _write(self) -> None:
        text = self._header + b"".join(self._lines.values())
        if len(text) > _SLOT:
            text = self._header + _fit(list(self._lines.values()), _SLOT - len(self._header))
        slot = 1 - self._slot
        at = _SLOT_AT + slot * _SLOT
        # Padded only over what that slot said before: the rest of it is spaces already.
        used, self._used[slot] = self._used[slot], len(text)
        mapped = self._map
        try:
            if mapped is not None:
                mapped[at : at + max(used, len(text))] = text.ljust(used)
                mapped[0:1] = _CURRENT[slot]  # the flip: one byte, after the slot is whole
            else:
                self._pwrite(slot, text.ljust(_SLOT))
        except (OSError, TypeError, ValueError, IndexError):
            # A page that may say something stale must not outlive us: without it the next
            # kernel goes by the store's rows alone, as before there were pages.
            self.close()
            return
        self._slot = slot

    def _pwrite(self, slot: int, text: bytes) -> None:
        """The whole page in one ``pwrite``: ``text`` in ``slot``, the other slot as it was."""
        slots = self._slots
        slots[slot] = text
        page = _CURRENT[slot].ljust(_SLOT_AT) + slots[0] + slots[1]
        os.pwrite(self._fd, page, 0)  # type: ignore[arg-type]

    def close(self, *, remove: bool = True) -> None:
        """Close the file, and remove it (the process ends cleanly, or stops writing it)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        mapped, self._map = self._map, None
        if mapped is not None:
            mapped.close()
        os.close(fd)
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _header(session: Session) -> bytes:
    ident = session.identity
    head = {
        "resmagic": 1,
        "session": session.session,
        "host": ident.host,
        "pid": ident.pid,
        "boot": ident.boot,
        "pid_start": ident.pid_start,
        "notebook": session.notebook,
        "version": session.version,
        "opened_at": time.time(),
    }
    return json.dumps(head).encode() + b"\n"


def _create(where: str, name: str) -> int | None:
    """A new file ``name`` (0600) in ``where`` (made 0700), no link followed; None if not."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(where, 0o700)
        dir_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(name, flags, 0o600, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        return None


def _line(run: CellRun, oom_kills: int | None) -> bytes:
    """One open cell as a JSON list; formatted by hand (one ``json.dumps`` took twice as long)."""
    # The None tests inline, not a helper call each (issue 26 C1: once per measured cell).
    label, cell, cell_id, sha = run.label, run.cell, run.cell_id, run.code_sha
    return (
        f"[{_quote(run.run)},{'null' if cell is None else int(cell)},"
        f"{'null' if cell_id is None else _quote(cell_id)},"
        f"{'null' if sha is None else _quote(sha)},{_quote(run.scope)},"
        f"{'null' if not label else _quote(label[:_LABEL_CHARS])},{run.started_at!r},"
        f"{'null' if oom_kills is None else int(oom_kills)}]\n"
    ).encode()


def _fit(lines: list[bytes], room: int) -> bytes:
    kept = b""
    for line in lines:
        if len(kept) + len(line) > room - len(_MORE):
            return kept + _MORE
        kept += line
    return kept


@dataclass(frozen=True, slots=True)
class Open:
    """A measured cell a state file says was open."""

    run: str
    cell: int | None
    cell_id: str | None
    code_sha: str | None
    scope: str
    label: str | None
    started_at: float
    oom_kills: int | None


@dataclass(frozen=True, slots=True)
class State:
    """What one state file says: whose it is, and which cells were open.

    Attributes:
        complete: False when cells were left out for want of room (trust the rows then).
    """

    path: str
    session: str
    identity: Identity
    notebook: str | None
    version: str
    opened_at: float
    runs: tuple[Open, ...]
    complete: bool


def read_dead(store: str, alive: Any) -> list[State]:
    """The state files beside ``store`` whose process ``alive(identity)`` says is gone."""
    where = folder(store)
    try:
        names = sorted(os.listdir(where))
    except OSError:
        return []
    found = []
    for name in names:
        state = _read(os.path.join(where, name))
        if state is not None and alive(state.identity) is False:
            found.append(state)
    return found


def _read(path: str) -> State | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            raw = os.pread(fd, PAGE, 0)
        finally:
            os.close(fd)
        if raw[:1] in _CURRENT:  # two slots (issue 26 C1); else one text, as before
            at = _SLOT_AT + int(raw[:1]) * _SLOT
            raw = raw[at : at + _SLOT]
        head, *rest = raw.decode().rstrip(" \n").split("\n")
        h = json.loads(head)
        identity = Identity(h["host"], int(h["pid"]), h["boot"], h["pid_start"])
        more = _MORE.decode().strip()
        runs = tuple(Open(*json.loads(line)) for line in rest if line != more)
        complete = more not in rest
        return State(
            path,
            h["session"],
            identity,
            h["notebook"],
            h["version"],
            h["opened_at"],
            runs,
            complete,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not one of ours, or unreadable: the store's rows say what they say
