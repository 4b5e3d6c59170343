"""What a tracker's run says of the session itself: its name, tags and params.

Plain values, no tracker imported: the MLflow sink sends them, another tracker could.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import socket
import sys
import time

from resmagic._version import __version__

__all__ = ["library_params", "run_name", "session_params", "session_tags"]

# What sys.argv[0] is when nobody ran a script: a terminal IPython, a kernel no notebook
# named, ``python -c``/``-m``, the bare REPL. Such a run is named after its folder instead
# (UX audit 2026-12-06 P2-4: every terminal session was "ipython <date>").
_SHELLS = {
    "ipython": "ipython",
    "ipython3": "ipython",
    "ipykernel_launcher.py": "kernel",
    "__main__.py": "python",
    "-c": "python",
    "-m": "python",
    "": "python",
}


def session_tags(notebook: str | None) -> dict[str, str]:
    """The run's tags: notebook (or script), host, user, pid, resmagic's version."""
    source = notebook or (os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    tags = {
        "resmagic.host": socket.gethostname(),
        "resmagic.pid": str(os.getpid()),
        "resmagic.version": __version__,
        "mlflow.source.type": "NOTEBOOK" if notebook else "LOCAL",
    }
    if notebook:
        tags["resmagic.notebook"] = notebook
    if source:
        tags["mlflow.source.name"] = source
    with contextlib.suppress(KeyError, OSError):  # no user name for this uid (containers)
        tags["mlflow.user"] = getpass.getuser()
    return tags


def run_name(
    notebook: str | None,
    argv0: str | None = None,
    cwd: str | None = None,
    when: float | None = None,
) -> str:
    """``"train.ipynb 2026-12-06 17:11"``; a script's name; else ``"digits (ipython) …"``.

    Args:
        notebook: the notebook's path, if any.
        argv0: what started the process (default ``sys.argv[0]``).
        cwd: the working folder (default the current one): names a terminal session.
        when: seconds since the epoch (default now).
    """
    argv0 = (sys.argv[0] if sys.argv else "") if argv0 is None else argv0
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    if notebook:
        return f"{os.path.basename(notebook)} {stamp}"
    program = os.path.basename(argv0)
    if program not in _SHELLS:
        return f"{program} {stamp}"
    folder = os.path.basename(os.path.abspath(cwd or os.getcwd())) or "/"
    return f"{folder} ({_SHELLS[program]}) {stamp}"


def session_params() -> dict[str, str]:
    """Constants of the session: resmagic's and Python's versions, the platform."""
    return {
        "resmagic.version": __version__,
        "python.version": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def library_params() -> dict[str, str]:
    """The versions of torch and its CUDA build, once the session imported torch (never here)."""
    torch = sys.modules.get("torch")
    version = getattr(torch, "__version__", None)  # None while another thread imports it
    if torch is None or version is None:
        return {}
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    return {"torch.version": str(version), "torch.cuda": str(cuda) if cuda else "none"}
