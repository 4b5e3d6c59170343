"""The import promise: resmagic and %load_ext resmagic load nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import cast

HEAVY = ("torch", "pynvml", "ipywidgets", "psutil", "pandas")


def _modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return cast("list[str]", json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_resmagic_loads_no_ipython_and_nothing_heavy() -> None:
    modules = _modules_after("import resmagic")
    assert [m for m in (*HEAVY, "IPython") if m in modules] == []


def test_load_ext_imports_neither_torch_nor_pynvml_nor_widgets() -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'resmagic')\n"
        "assert 'timed' in ip.magics_manager.magics['cell']\n"
    )
    modules = _modules_after(code)
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
