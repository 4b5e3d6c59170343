"""Whole lines appended to a file: one ``write(2)`` per line, never half a line left on disk.

Reliability 2026-12-06 #5 and #10. A line is one ``os.write`` on an ``O_APPEND`` descriptor,
with no Python buffer in between, so lines from several threads or processes never mix. A
write the disk cuts short (``ENOSPC``: the kernel writes what fits, then refuses) is cut
back to where the line began: the file keeps whole lines, the line is counted as lost, and
the caller is told why, once, instead of an exception per line.

A SIGKILL is the other way to cut a line: Linux looks for a fatal signal between the pages
of one ``write(2)`` to a regular file, so a killed process can leave a line cut at a page
boundary (measured: 9 of 300 kills of two threads writing 300 B and 3,000 B lines). A line
that fits in a page is safe if it does not cross one, so a line that would cross the next
page boundary starts on it instead: the line before it is padded with spaces up to the
boundary (one ``pwrite`` inside the last page, which the kernel does not cut). Padding is
trailing white space, which JSON allows and text readers ignore. It costs little for short
lines (about ``len(line) / 2`` bytes for the ``len(line) / page`` share of lines that would
cross; measured: 0.2 % for 186-byte JSON lines, 1.3 % for 96-byte text lines) and a page
per line for lines over half a page.

Limits: a line longer than a page can still be cut by a SIGKILL. The padding writes over
the newline the file ends with, only when the file still ends where this process last wrote
(threads in one process share that knowledge and a lock); another process appending to the
same file in the microseconds between that check and the padding would lose the first bytes
of its line.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import threading
from dataclasses import dataclass, field

__all__ = ["LineFile"]

PAGE = mmap.PAGESIZE
# POSIX closes the file in a child program; Windows has no O_CLOEXEC (nor pread/pwrite) and
# needs O_BINARY to keep its newlines as written.
_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_CAN_PAD = hasattr(os, "pread") and hasattr(os, "pwrite")


@dataclass(slots=True)
class _Shared:
    """One file's state, shared by every :class:`LineFile` open on it in this process."""

    end: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


# (st_dev, st_ino) -> the file's shared state: two logs on one file in one process (two
# threads, a nested run) keep one idea of where the file ends, and never pad over each other.
_files: dict[tuple[int, int], _Shared] = {}
_files_lock = threading.Lock()


def _reset_locks() -> None:
    # A forked child may inherit a lock its parent's other thread held: give it fresh ones.
    global _files_lock
    _files_lock = threading.Lock()
    for shared in _files.values():
        shared.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks)


class LineFile:
    """A file that takes whole lines, each in one write; failed lines are counted, not raised.

    Args:
        path: the file; created if missing (mode 0666 less the umask).
        mode: ``"a"`` appends, ``"w"`` truncates first.

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str, mode: str = "a") -> None:
        self.path = path
        self.written = 0
        """Lines on disk, whole."""
        self.lost = 0
        """Lines not written (nothing of them is left in the file)."""
        self.error: OSError | None = None
        """Why the first lost line was lost."""
        self._fd = self._pad_fd = -1
        self._regular = False
        self._shared: _Shared | None = None
        self._key = (0, 0)
        self._open(os.O_TRUNC if mode == "w" else 0)

    def _open(self, extra: int) -> None:
        flags = os.O_CREAT | os.O_APPEND | _FLAGS | extra
        try:  # read too: the padding looks at the last byte
            fd, readable = os.open(self.path, flags | os.O_RDWR, 0o666), True
        except PermissionError:  # a file we may write but not read: lines, but no padding
            fd, readable = os.open(self.path, flags | os.O_WRONLY, 0o666), False
        try:
            info = os.fstat(fd)
            self._regular = stat.S_ISREG(info.st_mode)
            # A device (/dev/full) or a pipe has no pages to pad and no end to cut back to.
            if readable and self._regular and _CAN_PAD:
                # pwrite on an O_APPEND descriptor appends on Linux, whatever the offset: the
                # padding goes through a second descriptor, opened now with the file, not
                # lazily on the first line that needs it: lines are written in the block's
                # body, where a Ctrl-C between os.open and the assignment would leak it
                # (reliability 2026-12-06 #3); scopes open where Ctrl-C is held back.
                self._pad_fd = os.open(self.path, os.O_WRONLY | _FLAGS)
                self._share((info.st_dev, info.st_ino), fd)
        except BaseException:
            if self._pad_fd >= 0:
                os.close(self._pad_fd)
                self._pad_fd = -1
            os.close(fd)
            raise
        self._fd = fd

    def _share(self, key: tuple[int, int], fd: int) -> None:
        with _files_lock:
            shared = _files.get(key)
            if shared is None:
                # Only the first of this process's writers ends a line a killed writer left
                # open: with another one already writing, a last byte that is not a newline
                # is that writer's line (or padding) in flight, and a newline added now
                # would land inside it (an empty line, seen once in 12 runs of four threads).
                shared = _files[key] = _Shared(_end_line(fd, os.fstat(fd).st_size))
            shared.users += 1
        self._key, self._shared = key, shared

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (the next :meth:`append` opens the file again)."""
        return self._fd < 0

    def append(self, line: bytes) -> bool:
        """Append ``line`` (one line, newline included) in one write; False if it was refused.

        A line the disk cut short is cut back to where it began, so the file never holds
        half of it. The first error is kept in :attr:`error`.
        """
        try:
            if self._fd < 0:
                self._open(0)  # closed by the user mid-run: append, as logging's FileHandler
            shared = self._shared
            if shared is None:
                _write_line(self._fd, line, regular=self._regular)
            else:
                with shared.lock:
                    self._append_regular(shared, line)
        except OSError as exc:
            self.lost += 1
            if self.error is None:
                self.error = exc
            return False
        self.written += 1
        return True

    def _append_regular(self, shared: _Shared, line: bytes) -> None:
        offset = shared.end % PAGE
        if offset and offset + len(line) > PAGE >= len(line):
            shared.end = self._pad(shared.end)
        try:
            _write_line(self._fd, line, regular=True)
        except OSError:
            shared.end = os.fstat(self._fd).st_size
            raise
        shared.end += len(line)

    def _pad(self, end: int) -> int:
        return _pad_to_page(self._fd, self._pad_fd, end)

    def close(self) -> None:
        """Close the file; a second call does nothing.

        Raises:
            OSError: closing failed (a network file system may report a lost write here).
        """
        fd, pad_fd, self._fd, self._pad_fd = self._fd, self._pad_fd, -1, -1
        if self._shared is not None:
            with _files_lock:
                self._shared.users -= 1
                if self._shared.users == 0 and _files.get(self._key) is self._shared:
                    del _files[self._key]
            self._shared = None
        if pad_fd >= 0:
            os.close(pad_fd)
        if fd >= 0:
            os.close(fd)


def _write_line(fd: int, line: bytes, *, regular: bool) -> None:
    """Write ``line`` whole or raise, leaving none of it in a regular file.

    A short write is tried once more, to learn why (on a full disk: ``ENOSPC``).
    """
    done = 0
    try:
        done = os.write(fd, line)
        if done < len(line):
            done += os.write(fd, line[done:])
            if done < len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except BaseException:
        if done and regular:
            _cut_back(fd, done)
        raise


def _cut_back(fd: int, done: int) -> None:
    """Cut the ``done`` bytes of a failed line off the end, if nobody appended after them."""
    try:
        end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: where this descriptor's write ended
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - done)
    except OSError:
        pass  # the line stays cut; nothing better can be done from here


def _pad_to_page(fd: int, pad_fd: int, end: int) -> int:
    """Pad the last line with spaces up to the next page boundary; where the file ends then.

    Only when the file still ends where we think, after a newline: another process's lines
    are never written over. The padding stays inside the last page, so it needs no new
    block and a SIGKILL cannot cut it.
    """
    size = os.fstat(fd).st_size
    if size != end or os.pread(fd, 1, end - 1) != b"\n":
        return size
    fill = PAGE - end % PAGE
    padding = b" " * fill + b"\n"
    try:
        done = os.pwrite(pad_fd, padding, end - 1)
    except OSError:
        done = 0
    if done == len(padding):
        return end + fill
    if done:
        os.pwrite(pad_fd, b"\n", end - 1)  # give the last line its newline back
        os.ftruncate(fd, end)
    return end


def _end_line(fd: int, size: int) -> int:
    """End a last line left without its newline (a killed writer), so ours start anew.

    Returns where the file ends now.
    """
    if size and os.pread(fd, 1, size - 1) != b"\n":
        try:
            os.write(fd, b"\n")
            return size + 1
        except OSError:
            pass  # a full disk: the first line will be refused anyway
    return size
