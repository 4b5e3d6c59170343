"""Inside the VM of ``make cgroup-v2``: resmagic against a real cgroup v2, as root of the guest.

Makes ``/sys/fs/cgroup/kern`` with a 300 MiB limit and a ``leaf`` under it without one, moves
this process into the leaf (so the limit is an ancestor's), then checks the probe, the
container row, the peak reset (refused before kernel 6.12, allowed from it), a real OOM kill
and the guard. Prints one line ``CGROUP-V2 OK <release> {...}`` or ``CGROUP-V2 FAIL ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.getcwd())

MiB = 1 << 20
CG = "/sys/fs/cgroup"
GREEDY = "held = [bytearray(b'x') * (10 << 20) for _ in range(40)]"  # 400 MiB
LOOP = """
import time
held = []
for _ in range(60):
    held.append(bytearray(b"x") * (10 << 20))
    time.sleep(0.05)
"""


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _setup() -> None:
    _write(f"{CG}/cgroup.subtree_control", "+memory")
    os.mkdir(f"{CG}/kern")
    _write(f"{CG}/kern/memory.max", str(300 * MiB))
    _write(f"{CG}/kern/cgroup.subtree_control", "+memory")
    os.mkdir(f"{CG}/kern/leaf")
    _write(f"{CG}/kern/leaf/cgroup.procs", str(os.getpid()))


def _kernel_at_least(major: int, minor: int) -> bool:
    numbers = os.uname().release.split("-")[0].split(".")
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


def _checks() -> dict[str, Any]:
    from resmagic import gpu_scope
    from resmagic.errors import MemoryLimitError
    from resmagic.probes import cgroup, host

    group = cgroup.own()
    seen: dict[str, Any] = {"path": group.path if group else None}
    seen["version"] = group.version if group else None
    seen["limit"] = cgroup.limit_bytes()
    seen["total"] = host.total_bytes()
    with gpu_scope("host") as scope:
        spike = bytearray(b"x") * (100 * MiB)
        del spike
        kept = bytearray(b"x") * (50 * MiB)
    row = scope.report.device("container") if scope.report else None
    seen["row"] = row.summary() if row else None
    seen["row_exact"] = row.peak_exact if row else None
    seen["row_spike"] = row is not None and row.peak_bytes >= row.before_bytes + 100 * MiB
    seen["row_kept"] = row is not None and 45 * MiB <= row.after_bytes - row.before_bytes
    seen["status"] = str(cgroup.status())
    del kept
    killed = subprocess.run([sys.executable, "-c", GREEDY], check=False).returncode
    seen["oom_rc"] = killed
    seen["oom_kills"] = cgroup.oom_kills()
    try:
        with gpu_scope("host", guard=0.6):
            exec(LOOP, {})
        seen["guard"] = "not stopped"
    except MemoryLimitError as exc:
        seen["guard"] = type(exc).__name__
    return seen


def _verdict(seen: dict[str, Any]) -> list[str]:
    resettable = _kernel_at_least(6, 12)
    expected = {
        "path": f"{CG}/kern/leaf",
        "version": 2,
        "limit": 300 * MiB,  # the parent's: the least over the ancestors
        "total": 300 * MiB,
        "row_exact": resettable,  # the per-descriptor reset came in 6.12
        "row_kept": True,
        "oom_rc": -9,
        "oom_kills": 1,
        "guard": "MemoryLimitError",
    }
    if resettable:
        expected["row_spike"] = True
    wrong = [f"{k}={seen.get(k)!r}, not {v!r}" for k, v in expected.items() if seen.get(k) != v]
    if not resettable and "cannot reset the peak" not in seen["status"]:
        wrong.append(f"status should say the reset is refused: {seen['status']!r}")
    return wrong


def main() -> None:
    release = os.uname().release
    try:
        _setup()
        seen = _checks()
        wrong = _verdict(seen)
    except Exception as exc:
        print(f"CGROUP-V2 FAIL {release} {type(exc).__name__}: {exc}", flush=True)
        return
    verdict = "OK" if not wrong else "FAIL"
    print(f"CGROUP-V2 {verdict} {release} {json.dumps(seen)} {'; '.join(wrong)}", flush=True)


if __name__ == "__main__":
    main()
