"""Where an exception sent into a running thread may land: a line start of the user's own code.

Not in a library: the standard library and site-packages catch ``Exception`` in many places
(``logging.Handler.emit`` hands every error to ``handleError``, which prints ``--- Logging
error ---`` and carries on), so an exception landing there is lost and the loop goes on
(reliability 2026-12-06 #1); nor in the user's code that a library called back (a logging
``Formatter``, a ``forward`` under ``model(x)``), unless the stop is relaxed. Not in IPython's,
the kernel's or resmagic's own code: it would break a cell's bookkeeping, not the cell. Not
on a line that would skip a cleanup (:mod:`resmagic.delivery.lines`), not while any frame on
the stack is cleaning up (an ``__exit__``, a ``__del__``, a caller on such a line), and not
while the thread handles an exception: a second exception in an ``except`` block would cut
its handling short.
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType

from resmagic.delivery.lines import cleanup_lines

__all__ = [
    "CLEANUP_NAMES",
    "FRAMEWORK",
    "LIBRARY",
    "USER",
    "frame_kind",
    "is_user_frame",
    "safe_point",
    "warm",
]

# Code an exception must never land in, by package, wherever it is installed (a development
# checkout is not under site-packages).
_FRAMEWORK_PACKAGES = (
    "IPython",
    "ipykernel",
    "jupyter_client",
    "zmq",
    "tornado",
    "traitlets",
    "resmagic",
)
CLEANUP_NAMES = frozenset({"__exit__", "__aexit__", "__del__"})
"""Functions that clean up: never stopped, nor anything they call."""
_LIBRARY_FOLDERS = frozenset({"site-packages", "dist-packages"})

USER, LIBRARY, FRAMEWORK = "user", "library", "framework"
_GENERATED = "generated"
_kinds: dict[str, str] = {}  # file name -> its kind
_library_roots: tuple[str, ...] | None = None


def safe_point(
    frame: FrameType,
    *,
    handling: bool,
    anchor: FrameType | None = None,
    callbacks: bool = False,
    line: int | None = None,
) -> bool:
    """True when an exception raised now, at the start of ``frame``'s line, is safe to raise.

    Walks out from ``frame`` to the block: through the user's own frames (none on a cleanup
    line) up to ``anchor`` (the frame of the block's ``with``), IPython's, the kernel's or
    resmagic's frame that runs the user's code (a cell, a magic, a decorator), or the bottom
    of the stack. A library frame on the way means the library called the user's code back
    and may swallow what comes out of it: not safe, unless ``callbacks``.

    Args:
        frame: the innermost frame of the thread, at the start of a line.
        handling: the thread is handling an exception (``sys.exc_info()`` is set).
        anchor: the frame the block runs in, if it is the user's.
        callbacks: also deliver into the user's code that a library called.
        line: the line of ``frame`` the exception would be raised at (default: its current).
    """
    code = frame.f_code
    line = frame.f_lineno if line is None else line
    if handling or frame_kind(frame) != USER or line in cleanup_lines(code):
        return False
    caller: FrameType | None = frame
    while caller is not None:
        code = caller.f_code
        if code.co_name in CLEANUP_NAMES:
            return False
        kind = frame_kind(caller)
        if kind == USER and caller is not frame and caller.f_lineno in cleanup_lines(code):
            return False  # your own function called from a finally body or a with's exit
        if caller is anchor or kind == FRAMEWORK:
            return True
        if kind == LIBRARY and not callbacks:
            return False
        caller = caller.f_back
    return True


def warm() -> None:
    """Read now what :func:`frame_kind` reads once (the standard library's folders)."""
    _libraries()


def is_user_frame(frame: FrameType) -> bool:
    """True for a frame of the user's own code: a cell, a script, a module outside libraries."""
    return frame_kind(frame) == USER


def frame_kind(frame: FrameType) -> str:
    """:data:`USER`, :data:`LIBRARY` or :data:`FRAMEWORK`, by the file of the frame's code.

    Code made at run time (``<string>``: a dataclass's ``__init__``) is of the kind of the
    module it was made for (its globals' ``__file__``); ``python -c`` and ``exec`` in
    ``__main__`` are the user's; anything else, of the kind of the code that runs it.
    """
    caller: FrameType | None = frame
    while caller is not None:
        kind = _kind(caller.f_code)
        if kind != _GENERATED:
            return kind
        made_for = caller.f_globals.get("__file__")
        if isinstance(made_for, str):
            return _kind_of_file(made_for)
        if caller.f_globals.get("__name__") == "__main__":
            return USER
        caller = caller.f_back
    return USER


def _kind(code: CodeType) -> str:
    filename = code.co_filename
    kind = _kinds.get(filename)
    if kind is None:
        kind = _kinds[filename] = _kind_of_file(filename)
    return kind


def _kind_of_file(filename: str) -> str:
    if filename.startswith(("<ipython-input-", "<stdin>")):  # a terminal IPython's cell
        return USER
    if filename.startswith("<frozen "):
        return LIBRARY
    if filename.startswith("<"):
        return _GENERATED
    path = os.path.realpath(filename)
    if path.startswith(_framework()):
        return FRAMEWORK
    if _LIBRARY_FOLDERS.intersection(path.split(os.sep)) or path.startswith(_libraries()):
        return LIBRARY
    return USER


def _libraries() -> tuple[str, ...]:
    global _library_roots
    if _library_roots is None:
        import sysconfig  # once a guard starts (delivery.prepare): it is not free to import

        paths = sysconfig.get_paths()
        roots = {
            paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths
        }
        _library_roots = tuple(sorted({os.path.join(os.path.realpath(p), "") for p in roots}))
    return _library_roots


def _framework() -> tuple[str, ...]:
    folders = []
    for name in _FRAMEWORK_PACKAGES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) if module is not None else None
        if path:
            folders.append(os.path.join(os.path.realpath(os.path.dirname(path)), ""))
    return tuple(folders)
