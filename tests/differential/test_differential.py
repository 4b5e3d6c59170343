"""resmagic never changes what a cell means: the same notebook, with and without it.

``ipython_cells.ipynb`` covers what IPython does with a cell (errors of every kind and
``%xmode``, syntax errors at compile and at run time, ``__future__``, display, update_display
and clear_output, rich reprs, ``;``, ``_`` and ``Out``, ``%%capture``, ``%%bash``,
``%%writefile``, ``%%html``, top-level await and ``%autoawait``, ``print(end='')``, widgets).
It runs through nbclient in a real kernel, plainly and in each resmagic mode; once
resmagic's own outputs are removed (every one carries ``resmagic`` in its output metadata,
and only those are removed) the outputs must be identical.

Under stacked magics the baseline is the same cell with those lines commented out, which is
what IPython runs (line numbers in tracebacks stay the cell's), or removed where another
cell magic follows (IPython sees a cell magic only on line 1).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
CELLS = nbformat.read(HERE / "ipython_cells.ipynb", as_version=4)
PLAIN_SETUP = ["pass", "pass"]
LOADED = "%load_ext resmagic"
STACKS = {
    "three stacked, text": "%%timed\n%%gpu_scope --no-panel\n%%experiment_log runs/d.log -q\n",
    "two stacked, panel": "%%timed label\n%%gpu_scope\n",
}
WATCH = {
    "watch, text": "%resmagic watch on --no-panel",
    "watch, panel": "%resmagic watch on",
    "watch, all scopes and a log": "%resmagic watch on --log runs/w.log",
}
VARYING = [
    # ipykernel names a cell's file by a hash of its raw text, which our lines change.
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "CELL-FILE"),
    (re.compile(r"\(\d+\.py, line"), "(CELL-FILE, line"),
    (re.compile(r"at 0x[0-9a-f]+"), "at 0xADDRESS"),
    (re.compile(r"(CPU times|Wall time):[^\\]*"), r"\1: TIMES"),  # what %time measured
]


def _run(setup: list[str], sources: list[str], cwd: Path) -> list[Any]:
    """Execute setup cells then ``sources`` in one fresh kernel; the sources' cells, run."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in setup + sources]
    cwd.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", allow_errors=True, store_widget_state=False
    )
    client.execute(cwd=str(cwd))
    return list(nb.cells[len(setup) :])


def _code() -> list[str]:
    return [cell.source for cell in CELLS.cells if cell.cell_type == "code"]


def _stacked(header: str, source: str) -> str:
    return header + source


def _commented(header: str, source: str) -> str:
    if source.startswith("%%"):  # another cell magic follows: IPython sees only line 1
        return source
    return "".join(f"# {line}\n" for line in header.splitlines()) + source


def _seen(cell: Any) -> dict[str, Any]:
    """What a reader of the notebook gets from ``cell``, resmagic's outputs removed."""
    outputs: list[dict[str, Any]] = []
    for output in cell.outputs:
        if "resmagic" in output.get("metadata", {}):
            continue
        output = copy.deepcopy(dict(output))
        if (
            output["output_type"] == "stream"
            and outputs
            and outputs[-1].get("name") == (output["name"])
        ):
            outputs[-1]["text"] += output["text"]  # one stream, split only by our output
            continue
        outputs.append(output)
    return {"count": cell.execution_count, "outputs": [_steady(o) for o in outputs]}


def _steady(output: dict[str, Any]) -> Any:
    text = repr(output)
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return re.sub(r"'model_id': '[0-9a-f]{32}'", "'model_id': 'MODEL'", text)


def _differences(expected: list[Any], got: list[Any], sources: list[str]) -> list[str]:
    out = []
    for source, want, have in zip(sources, expected, got, strict=True):
        if _seen(want) != _seen(have):
            out.append(f"--- cell {source!r}\nplain: {_seen(want)}\nresmagic: {_seen(have)}")
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return _run(PLAIN_SETUP, _code(), tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("mode", list(WATCH))
def test_watch_mode_changes_no_output(mode: str, plain: list[Any], tmp_path: Path) -> None:
    watched = _run([LOADED, WATCH[mode]], _code(), tmp_path)
    assert _differences(plain, watched, _code()) == []
    assert any("resmagic" in o.get("metadata", {}) for c in watched for o in c.outputs)


@pytest.mark.parametrize("stack", list(STACKS))
def test_stacked_magics_change_no_output(stack: str, tmp_path: Path) -> None:
    header = STACKS[stack]
    sources = _code()
    baseline = _run(PLAIN_SETUP, [_commented(header, s) for s in sources], tmp_path / "plain")
    stacked = _run([LOADED, "pass"], [_stacked(header, s) for s in sources], tmp_path / "ours")
    assert _differences(baseline, stacked, sources) == []
    reported = [c for c in stacked if any("resmagic" in o.get("metadata", {}) for o in c.outputs)]
    assert len(reported) >= len(sources) // 2  # the magics really ran


def test_the_notebook_covers_what_the_issue_names() -> None:
    text = "\n".join(_code())
    for needle in (
        "%xmode",
        "__future__",
        "clear_output(wait=True)",
        "update_display",
        "%%capture",
        "%%bash",
        "%%writefile",
        "%%html",
        "await",
        "%autoawait",
        "end=''",
        "ipywidgets",
        "40 + 2;",
        "Out",
    ):
        assert needle in text, needle
