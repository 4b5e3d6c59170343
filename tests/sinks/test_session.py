"""What a tracker's run says of the session: its name, tags and params."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

import resmagic
from resmagic.sinks.session import run_name, session_params

WHEN = 1_765_000_000.0
STAMP = time.strftime("%Y-%m-%d %H:%M", time.localtime(WHEN))


def test_a_notebook_run_is_named_after_the_notebook() -> None:
    assert run_name("/work/train.ipynb", "/x/ipykernel_launcher.py", when=WHEN) == (
        f"train.ipynb {STAMP}"
    )


def test_a_script_run_is_named_after_the_script() -> None:
    assert run_name(None, "/work/train.py", "/work", WHEN) == f"train.py {STAMP}"


def test_a_terminal_session_is_named_after_its_folder_not_ipython() -> None:
    # UX audit 2026-12-06 P2-4: every terminal session's run read "ipython <date>".
    assert run_name(None, "/venv/bin/ipython", "/home/u/digits", WHEN) == (
        f"digits (ipython) {STAMP}"
    )
    assert run_name(None, "-c", "/home/u/digits", WHEN) == f"digits (python) {STAMP}"
    assert run_name(None, "/x/ipykernel_launcher.py", "/srv/nb", WHEN) == f"nb (kernel) {STAMP}"


def test_session_params_name_resmagic_and_python() -> None:
    params = session_params()
    assert params["resmagic.version"] == resmagic.__version__
    assert params["python.version"] == platform.python_version()


def test_torchs_versions_are_params_once_imported_and_never_imported_for_them() -> None:
    code = (
        "import json, sys\n"
        "from resmagic.sinks.session import library_params\n"
        "before = library_params()\n"
        "loaded = 'torch' in sys.modules\n"
        "import torch\n"
        "print(json.dumps([before, loaded, library_params(), torch.__version__]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, loaded, after, version = json.loads(out.stdout.splitlines()[-1])
    assert (before, loaded) == ({}, False)
    assert after["torch.version"] == version
    assert after["torch.cuda"]  # "none" on a CPU build, else the CUDA version it was built for
