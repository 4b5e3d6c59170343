"""LineFile: whole lines, one write each, none crossing a page it fits in, failures counted."""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import pytest

from resmagic.scopes.linefile import PAGE, LineFile


def _lines(rng: random.Random, n: int, tag: str = "") -> list[bytes]:
    return [f"{tag}{i} {'y' * rng.randrange(10, 3000)}\n".encode() for i in range(n)]


def _starts(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, line) for every line in ``data``, its newline included."""
    out, offset = [], 0
    for line in data.splitlines(keepends=True):
        out.append((offset, line))
        offset += len(line)
    return out


def test_no_line_that_fits_a_page_crosses_one(tmp_path: Path) -> None:
    lines = _lines(random.Random(5), 400)
    file = LineFile(str(tmp_path / "a.log"))
    assert all(file.append(line) for line in lines)
    file.close()
    data = (tmp_path / "a.log").read_bytes()
    placed = _starts(data)
    assert [line.rstrip(b" \n") for _, line in placed] == [line.rstrip(b"\n") for line in lines]
    for offset, line in placed:
        body = line.rstrip(b" \n") + b"\n"  # the padding after it is not part of the line
        assert offset // PAGE == (offset + len(body) - 1) // PAGE, f"line at {offset} crosses"
    assert file.written == 400
    assert file.lost == 0


def test_a_last_line_left_without_its_newline_is_ended_before_ours(tmp_path: Path) -> None:
    path = tmp_path / "killed.log"
    path.write_bytes(b'{"whole": 1}\n{"cut": ')  # what a killed writer may leave
    file = LineFile(str(path))
    file.append(b'{"ours": 1}\n')
    file.close()
    assert path.read_bytes().splitlines()[-1] == b'{"ours": 1}'


def test_mode_w_starts_the_file_afresh(tmp_path: Path) -> None:
    path = tmp_path / "w.log"
    path.write_bytes(b"old\n")
    file = LineFile(str(path), "w")
    file.append(b"new\n")
    file.close()
    assert path.read_bytes() == b"new\n"


def test_threads_with_a_file_each_on_one_path_never_write_over_each_other(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "shared.log")
    per_thread = {t: _lines(random.Random(t), 300, f"t{t}-") for t in range(4)}

    def write(t: int) -> None:
        file = LineFile(path)
        for line in per_thread[t]:
            file.append(line)
        file.close()

    threads = [threading.Thread(target=write, args=(t,)) for t in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [line.rstrip(b" \n") for line in Path(path).read_bytes().splitlines()]
    for t, lines in per_thread.items():
        assert [g for g in got if g.startswith(f"t{t}-".encode())] == [
            line.rstrip(b"\n") for line in lines
        ]
    assert len(got) == 1200


def test_a_device_that_refuses_lines_counts_them_and_keeps_the_reason() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    file = LineFile("/dev/full")
    assert not file.append(b"one\n")
    assert not file.append(b"two\n")
    file.close()
    assert (file.written, file.lost) == (0, 2)
    assert file.error is not None
    assert file.error.errno == errno.ENOSPC


def test_a_file_closed_mid_run_is_opened_again_to_append(tmp_path: Path) -> None:
    path = tmp_path / "reopen.log"
    file = LineFile(str(path), "w")
    file.append(b"before\n")
    file.close()
    assert file.closed
    file.append(b"after\n")  # logging's FileHandler does the same after a user's close()
    file.close()
    assert path.read_bytes() == b"before\nafter\n"
