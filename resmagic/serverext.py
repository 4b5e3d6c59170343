"""A Jupyter server extension: the status bar's polls neither flip "Busy" nor count as activity.

Every control request makes the kernel publish ``status`` busy/idle on iopub with the
request as parent. jupyter_server records kernel activity and execution state from every
iopub message whose parent type is not in ``MappingKernelManager.untracked_message_types``,
and JupyterLab and Notebook 7 update their kernel indicator from every status message whose
parent type is not in that list (which they read from the page config). ``usage_request`` is
not on it by default, so each poll of the status bar item would show the kernel "Idle" in
the middle of a cell and keep an idle kernel from being culled. Loading this extension adds
``usage_request`` and ``usage_reply`` to the list, in the server and in the page config.

Enabled by ``etc/jupyter/jupyter_server_config.d/resmagic.json``, which the wheel installs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UNTRACKED", "untrack"]

UNTRACKED = ("usage_request", "usage_reply")
"""Message types whose iopub traffic is no user activity."""


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "resmagic.serverext"}]


def untrack(serverapp: Any) -> list[str]:
    """Add :data:`UNTRACKED` to the server's untracked types and to the page config; the list."""
    manager = serverapp.kernel_manager
    current = list(getattr(manager, "untracked_message_types", []))
    wanted = current + [name for name in UNTRACKED if name not in current]
    manager.untracked_message_types = wanted
    # JupyterLab copies the list into the page config when it loads, which may be before
    # this extension: put the new list there too (the frontends read it from there).
    page_config = serverapp.web_app.settings.setdefault("page_config_data", {})
    page_config["untracked_message_types"] = list(wanted)
    return wanted


def _load_jupyter_server_extension(serverapp: Any) -> None:
    untrack(serverapp)
    serverapp.log.info("resmagic: %s are not kernel activity", " and ".join(UNTRACKED))
