"""SIGKILL as cells start and end: a kernel's state file names the cells open then, whole.

Issue 26 C1 writes a boundary into the page's other slot through a shared mapping and then
flips its first byte, where issue 24 item 4 had one ``pwrite`` of the whole page (whole or
absent under SIGKILL). A kill in the middle of the slot's copy must leave the previous slot
current, never a page mixing two boundaries. A forked child runs back-to-back nested cells
(an outer cell, an inner one, each label's length fixed by its cell number, so a mixed or
cut page shows), the parent kills it at a random moment and reads the page as the next
kernel would: always a page, naming a prefix of the nested pair of one cell number, whole.
The same with a page that cannot be mapped (each boundary a ``pwrite`` of the whole page).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TRIALS = 60

_KILLER = textwrap.dedent(
    """
    import json, mmap, os, random, signal, sys, time
    from resmagic.store import statefile
    from resmagic.store.liveness import me
    from resmagic.store.rows import CellRun, Session

    folder, trials, mapped = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "mapped"
    rng = random.Random(11)
    seen, bad = [], []
    for trial in range(trials):
        store = os.path.join(folder, f"{trial}.sqlite")
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            if not mapped:
                def refuse(*args, **kwargs):
                    raise OSError("no mapping here")
                mmap.mmap = refuse
            session = Session(f"s{trial}", me(), "nb.ipynb", "test")
            page = statefile.StateFile.create(store, session, [])
            assert page is not None and (page._map is not None) == mapped
            os.write(ready_w, b"x")
            for i in range(10**9):
                o, n = "o" * (i % 150), "i" * (i * 7 % 150)
                outer = CellRun("nb.ipynb", f"c{i}", i, "sha", scope="timed", label=o)
                inner = CellRun("nb.ipynb", f"d{i}", i, None, scope="gpu_scope", label=n)
                page.started(outer, i)
                page.started(inner, i)
                page.ended(inner)
                page.ended(outer)
        os.read(ready_r, 1)
        time.sleep(rng.uniform(0.0005, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r); os.close(ready_w)
        [name] = os.listdir(statefile.folder(store))
        state = statefile._read(os.path.join(statefile.folder(store), name))
        if state is None:
            bad.append((trial, "no page"))
            continue
        runs = [(r.cell_id, r.cell, r.scope, r.label, r.oom_kills) for r in state.runs]
        seen.append(len(runs))
        if runs:
            i = runs[0][1]
            pair = [
                (f"c{i}", i, "timed", "o" * (i % 150) or None, i),
                (f"d{i}", i, "gpu_scope", "i" * (i * 7 % 150) or None, i),
            ]
            if runs != pair[: len(runs)]:
                bad.append((trial, runs))
    print(json.dumps({"seen": seen, "bad": bad}))
    """
)


@pytest.mark.parametrize("how", ["mapped", "pwrite"])
def test_a_kernel_killed_as_cells_start_and_end_leaves_a_whole_page(
    tmp_path: Path, how: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLER, str(tmp_path), str(TRIALS), how],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["bad"] == []
    assert len(got["seen"]) == TRIALS
    assert set(got["seen"]) <= {0, 1, 2}
