"""The import promise: resmagic and %load_ext resmagic load nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import cast

HEAVY = ("torch", "pynvml", "ipywidgets", "psutil", "pandas", "mlflow")


def _modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    return cast("list[str]", _last_line(probe))


def _last_line(code: str) -> object:
    # A tracker that is not there, refusing at once: what the sink sends cannot wait.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_resmagic_loads_no_ipython_and_nothing_heavy() -> None:
    modules = _modules_after("import resmagic")
    assert [m for m in (*HEAVY, "IPython") if m in modules] == []


def _shell(*config: str) -> str:
    """Code that makes an IPython shell with these ``c.`` config lines and loads resmagic."""
    return (
        "from traitlets.config import Config\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "c = Config()\n"
        + "".join(f"{line}\n" for line in config)
        + "ip = InteractiveShell.instance(config=c)\n"
        "ip.run_line_magic('load_ext', 'resmagic')\n"
        "assert 'timed' in ip.magics_manager.magics['cell']\n"
    )


def test_load_ext_imports_neither_torch_nor_pynvml_nor_widgets() -> None:
    modules = _modules_after(_shell())
    assert [m for m in HEAVY if m in modules] == []


def test_scopes_run_without_ipython_or_heavy_modules() -> None:
    code = (
        "import resmagic\n"
        "with resmagic.gpu_scope('host'):\n    pass\n"
        "with resmagic.timed('x'):\n    pass\n"
        "assert len(resmagic.history()) == 2\n"
    )
    modules = _modules_after(code)
    assert [m for m in ("torch", "pynvml", "ipywidgets", "IPython") if m in modules] == []


# Issue 26 (`%load_ext` ≤ 12 ms): what a cell needs loads with the first cell that asks.
LATER = (
    "resmagic.report",
    "resmagic.scopes.timing",
    "resmagic.scopes.gpu",
    "resmagic.scopes.experiment",
    "resmagic.scopes.database",
    "resmagic.probes.table",
    "resmagic.holders",
    "resmagic.guard",
    "resmagic.sampler",
    "resmagic.store.recorder",
    "resmagic.store.died",
    "resmagic.ipython.commands",
    "resmagic.ipython.command_parser",
    "resmagic.ipython.watch",
    "resmagic.ipython.views.live_table",
    "resmagic.ipython.views.held",
    "resmagic.ipython.usage_request",
    "resmagic._version",
    "IPython.core.magic_arguments",
)


def test_load_ext_imports_no_scope_store_or_probe_until_a_cell_asks() -> None:
    # A profile of its own: a dead kernel's state file beside the store starts it at load.
    fresh = "import os, tempfile\nos.environ['IPYTHONDIR'] = tempfile.mkdtemp()\n"
    loaded = _modules_after(fresh + _shell())
    assert [m for m in LATER if m in loaded] == []
    code = fresh + _shell() + "assert ip.run_cell('%%timed -q\\n1').success\n"
    after_a_cell = _modules_after(code)
    assert "resmagic.scopes.timing" in after_a_cell
    assert "resmagic.store.recorder" in after_a_cell


_SHELL_WITH_SINK = _shell("c.ResMagic.sinks = ['mlflow']") + (
    "import resmagic\nassert resmagic.sinks.sink_thread.names() == ['mlflow']\n"
)


def test_load_ext_with_the_mlflow_sink_configured_imports_no_mlflow() -> None:
    modules = _modules_after(_SHELL_WITH_SINK)
    assert [m for m in HEAVY if m in modules] == []


def test_mlflow_is_imported_on_the_sink_thread_never_in_the_cell() -> None:
    # A finder that notes which thread looks for mlflow's submodules: only a real
    # `import mlflow` does (the sink's installed-check looks up the top-level name alone).
    spy = (
        "import sys, threading, json\n"
        "seen = set()\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('mlflow.'):\n"
        "            seen.add(threading.current_thread().name)\n"
        "sys.meta_path.insert(0, Spy())\n"
    )
    cells = (
        "assert ip.run_cell('%%timed -q\\n1', store_history=True).success\n"
        "assert 'mlflow' not in sys.modules or seen == {'resmagic-sinks'}\n"
        "resmagic.sinks.flush(60)\n"
        "print(json.dumps(sorted(seen)))\n"
    )
    assert _last_line(spy + _SHELL_WITH_SINK + cells) == ["resmagic-sinks"]
