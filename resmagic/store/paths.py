"""Where the run store lives: the IPython profile folder, or a path the user names."""

from __future__ import annotations

import os

__all__ = ["FILE_NAME", "default_path", "kernels_folder", "resolve"]

FILE_NAME = "resmagic.sqlite"


def default_path(profile_dir: str | None = None) -> str:
    """``profile_default/resmagic.sqlite`` beside IPython's ``history.sqlite``.

    Args:
        profile_dir: the IPython profile folder (``get_ipython().profile_dir.location``);
            None: ``$IPYTHONDIR/profile_default`` (default ``~/.ipython``), as IPython finds it.
    """
    if profile_dir is None:
        base = os.environ.get("IPYTHONDIR") or os.path.join("~", ".ipython")
        profile_dir = os.path.join(os.path.expanduser(base), "profile_default")
    return os.path.join(profile_dir, FILE_NAME)


def kernels_folder(store: str) -> str:
    """``<store>-kernels``: the state files of the kernels writing ``store`` (statefile.py)."""
    return store + "-kernels"


def resolve(value: str) -> str:
    """The file a setting names: ``""``/``off`` → ``""``, ``on`` → the default, else the path."""
    text = value.strip()
    if text.lower() in ("", "off", "none", "false", "0"):
        return ""
    if text.lower() in ("on", "default", "true", "1"):
        return default_path()
    return os.path.abspath(os.path.expanduser(text))
