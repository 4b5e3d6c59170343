"""A kernel's state file: which measured cells are open, on disk when each boundary returns."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from resmagic.store import statefile
from resmagic.store.liveness import Identity, alive, me
from resmagic.store.rows import CellRun, Session
from resmagic.store.statefile import PAGE, State, StateFile, folder, read_dead


def _session(pid: int = 2**22 + 11) -> Session:
    return Session(f"sess-{pid}", Identity(me().host, pid, me().boot, 1), "nb.ipynb", "test")


def _dead(store: Path) -> list[State]:
    return read_dead(str(store), lambda identity: False)


def test_each_boundary_is_on_disk_when_the_call_returns(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    outer = CellRun("nb.ipynb", "c1", 4, "sha1", scope="gpu_scope", label="train")
    inner = CellRun("nb.ipynb", "c2", 5, "sha2", scope="timed")
    page.started(outer, oom_kills=3)
    [state] = _dead(store)
    assert [(r.run, r.cell, r.scope, r.label, r.oom_kills) for r in state.runs] == [
        (outer.run, 4, "gpu_scope", "train", 3)
    ]
    assert state.notebook == "nb.ipynb"
    assert state.complete
    page.started(inner, oom_kills=3)
    assert [r.run for r in _dead(store)[0].runs] == [outer.run, inner.run]
    page.ended(inner)
    page.ended(outer)
    assert _dead(store)[0].runs == ()
    assert os.path.getsize(page.path) == PAGE  # one page, rewritten in place


def test_the_file_and_its_folder_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        page = StateFile.create(str(tmp_path / "runs.sqlite"), _session(), [])
    finally:
        os.umask(old)
    assert page is not None
    assert os.stat(page.path).st_mode & 0o777 == 0o600
    assert os.stat(folder(str(tmp_path / "runs.sqlite"))).st_mode & 0o777 == 0o700


def test_a_page_with_more_cells_than_room_says_it_is_incomplete(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    for i in range(60):
        page.started(CellRun("nb.ipynb", f"c{i}", i, None, label="x" * 500), oom_kills=None)
    [state] = _dead(store)
    assert not state.complete  # the store's running rows decide for this kernel
    assert 0 < len(state.runs) < 60
    assert os.path.getsize(page.path) == PAGE


def test_a_live_kernels_page_is_not_read_as_dead(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), Session("mine", me(), "nb.ipynb", "test"), [])
    assert page is not None
    assert read_dead(str(store), alive) == []


def test_a_clean_close_removes_the_page(tmp_path: Path) -> None:
    page = StateFile.create(str(tmp_path / "runs.sqlite"), _session(), [])
    assert page is not None
    page.close()
    assert not os.path.exists(page.path)


def test_a_link_planted_in_the_folder_is_not_followed(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    target = tmp_path / "elsewhere"
    os.symlink(target, folder(str(store)))  # the folder itself is a link
    assert StateFile.create(str(store), _session(), []) is None
    assert not target.exists()


def test_a_label_with_quotes_newlines_and_accents_reads_back(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    label = 'run "a"\n\\b\tcafé ✓'
    page.started(CellRun("nb.ipynb", 'id"1', None, None, label=label), oom_kills=None)
    [run] = _dead(store)[0].runs
    assert (run.label, run.cell_id, run.cell) == (label, 'id"1', None)


class _KilledBeforeTheFlip(BaseException):
    """Stands for a SIGKILL between a boundary's slot and its flip."""


def test_a_boundary_killed_before_its_flip_leaves_the_last_one_whole(tmp_path: Path) -> None:
    # Issue 26 C1: the new text goes into the other slot; the first byte is the commit point.
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    assert page._map is not None  # mapped here (tmp_path is a local file system)
    real = page._map
    outer = CellRun("nb.ipynb", "c1", 4, "sha1", scope="gpu_scope", label="train")
    page.started(outer, oom_kills=None)

    class Flipless:
        def __setitem__(self, where: slice, data: bytes) -> None:
            if where.start == 0:
                raise _KilledBeforeTheFlip
            real[where] = data

    page._map = Flipless()  # type: ignore[assignment]
    inner = CellRun("nb.ipynb", "c2", 5, "sha2", scope="timed", label="x" * 150)
    with pytest.raises(_KilledBeforeTheFlip):
        page.started(inner, oom_kills=None)
    assert [r.run for r in _dead(store)[0].runs] == [outer.run]  # the slot alone: not read
    with pytest.raises(_KilledBeforeTheFlip):
        page.ended(outer)
    assert [r.run for r in _dead(store)[0].runs] == [outer.run]
    page._map = real  # the process lives on: inner is the one open cell it knows of
    page.started(inner, oom_kills=None)
    assert [r.run for r in _dead(store)[0].runs] == [inner.run]
    page.ended(inner)
    assert _dead(store)[0].runs == ()


def test_a_page_that_cannot_be_mapped_is_written_whole_at_each_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise OSError("no mapping on this file system")

    monkeypatch.setattr(mmap, "mmap", refuse)
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    assert page._map is None
    runs = [CellRun("nb.ipynb", f"c{i}", i, None, label="y" * (40 * i)) for i in range(4)]
    for run in runs:
        page.started(run, oom_kills=None)
        assert _dead(store)[0].runs[-1].run == run.run
    for run in reversed(runs):
        page.ended(run)
    assert _dead(store)[0].runs == ()
    assert os.path.getsize(page.path) == PAGE


def test_an_older_kernels_one_text_page_is_still_read(tmp_path: Path) -> None:
    # Pages before issue 26 C1: the header and the lines from byte 0, spaces to the end.
    store = tmp_path / "runs.sqlite"
    page = StateFile.create(str(store), _session(), [])
    assert page is not None
    run = CellRun("nb.ipynb", "c1", 4, "sha1", scope="timed", label="old")
    page.started(run, oom_kills=2)
    [mapped] = _dead(store)
    text = statefile._header(_session()) + statefile._line(run, 2)
    with open(page.path, "r+b") as f:
        f.write(text.ljust(PAGE))
    [old] = _dead(store)
    assert old.runs == mapped.runs
    assert old.runs[0].label == "old"
    assert old.session == mapped.session
