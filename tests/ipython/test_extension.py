"""Load registers; unload undoes exactly that; reload works."""

from __future__ import annotations

from typing import Any

import pytest

MAGICS = ("gpu_scope", "timed", "experiment_log", "db_transaction")


def test_load_registers_every_magic(ip: Any) -> None:
    cell = ip.magics_manager.magics["cell"]
    assert all(name in cell for name in MAGICS)
    assert "resmagic" in ip.magics_manager.magics["line"]


def test_unload_removes_magics_and_reload_restores_them(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "resmagic")
    try:
        cell = ip.magics_manager.magics["cell"]
        assert not any(name in cell for name in MAGICS)
        assert "ResMagics" not in ip.magics_manager.registry
        result = ip.run_cell("%%timed\n1", store_history=True)
        assert result.error_in_exec is not None or result.error_before_exec is not None
    finally:
        ip.run_line_magic("load_ext", "resmagic")
    assert ip.run_cell("%%timed -q\n1", store_history=True).result == 1


def test_reload_ext_keeps_one_set_of_magics(ip: Any) -> None:
    ip.run_line_magic("reload_ext", "resmagic")
    assert ip.run_cell("%%timed -q\n2", store_history=True).result == 2
    owners = {type(ip.magics_manager.magics["cell"][n].__self__) for n in MAGICS}
    assert len(owners) == 1


def test_unload_leaves_a_magic_someone_else_registered(ip: Any) -> None:
    def other(line: str, cell: str) -> str:
        return "other"

    ip.register_magic_function(other, "cell", "timed")
    try:
        ip.run_line_magic("unload_ext", "resmagic")
        assert ip.magics_manager.magics["cell"]["timed"] is other
    finally:
        ip.magics_manager.magics["cell"].pop("timed", None)
        ip.run_line_magic("load_ext", "resmagic")
    assert ip.run_cell("%%timed -q\n3", store_history=True).result == 3


def test_unload_stops_the_sampler(ip: Any) -> None:
    from resmagic.sampler import Watch, sampler

    sampler.add(Watch(list))
    assert sampler.running
    ip.run_line_magic("unload_ext", "resmagic")
    ip.run_line_magic("load_ext", "resmagic")
    assert not sampler.running


@pytest.mark.parametrize("shell_class", ["InteractiveShell", "TerminalInteractiveShell"])
def test_loads_in_a_plain_terminal_shell(shell_class: str) -> None:
    import subprocess
    import sys

    module = (
        "IPython.terminal.interactiveshell"
        if shell_class.startswith("Terminal")
        else "IPython.core.interactiveshell"
    )
    code = (
        f"from {module} import {shell_class}\n"
        f"ip = {shell_class}.instance()\n"
        "ip.run_line_magic('load_ext', 'resmagic')\n"
        "r = ip.run_cell('%%timed -q\\n6 * 7', store_history=True)\n"
        "assert r.result == 42, r\n"
        "print('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("OK")
