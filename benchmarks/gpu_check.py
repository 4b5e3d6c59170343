"""The one-command check of resmagic on a real GPU (``make gpu-check``); exits 0 without one.

On a machine with an NVIDIA GPU (the workplace's H200: Python 3.12 with CUDA torch and
nvidia-ml-py, no IPython), in at most about 8 minutes:

1. makes a venv that sees the machine's own packages and installs, from the wheels
   ``make gpu-wheels`` put in ``build/gpu-wheels`` (no network there), what it lacks:
   IPython, ipykernel, ipywidgets, jupyter_client and resmagic itself;
2. runs the ``gpu``-marked tests (``tests/scopes/test_gpu_real.py``);
3. runs magic cells in a real kernel of that venv with CUDA tensors: ``%load_ext``
   initialises no CUDA, allocator and NVML rows are there and labelled, the allocator peak of
   a 4 GiB tensor held for 10 ms is exact, nested scopes keep their own peaks, ``%%timed``
   counts queued CUDA work, a real ``torch.cuda.OutOfMemoryError`` is reclaimed;
4. times ``%%gpu_scope`` and ``%%timed`` cells on CUDA beside a bare cell, and one NVML
   sample, in that kernel.

Writes ``results.md`` and ``log.txt`` under ``$RESMAGIC_GPU_OUT`` (default ``build/gpu``).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "build" / "gpu-wheels"
NEEDED = ["ipython", "ipykernel", "ipywidgets", "jupyter_client", "resmagic"]
GiB = 1 << 30


def no_gpu_reason() -> str | None:
    """Why this machine has no NVIDIA GPU to check, or None when it has one."""
    if not Path("/proc/driver/nvidia").exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver (/proc/driver/nvidia is missing, no nvidia-smi)"
    probe = "import torch; print(torch.cuda.is_available())"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot ask torch ({exc})"
    if done.stdout.strip() != "True":
        return f"torch sees no CUDA device ({(done.stderr or done.stdout).strip()[-200:]})"
    return None


class Log:
    """Everything said goes to the terminal and to log.txt."""

    def __init__(self, out: Path, mode: str = "w") -> None:
        self.file = (out / "log.txt").open(mode, encoding="utf-8")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def make_venv(home: Path, say: Log) -> Path:
    """A venv over the machine's packages, with what it lacks installed from the wheels."""
    if not any(WHEELS.glob("resmagic-*.whl")):
        msg = f"no wheels in {WHEELS}: run `make gpu-wheels` on a machine with the index first"
        raise SystemExit(msg)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(home)], check=True)
    python = home / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-index"]
    install += ["--find-links", str(WHEELS), *NEEDED]
    done = subprocess.run(install, capture_output=True, text=True, timeout=240)
    say(f"install from wheels: rc {done.returncode} {done.stderr.strip()[-400:]}")
    done.check_returncode()
    return python


def run_gpu_tests(python: Path, say: Log) -> dict[str, Any]:
    """The ``gpu``-marked tests, in the venv; their summary line."""
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu"]
    cmd += ["tests/scopes/test_gpu_real.py"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    say(done.stdout[-3000:] + done.stderr[-1000:])
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output"
    return {"gpu tests": last, "gpu tests rc": done.returncode}


CELLS: list[tuple[str, str]] = [
    (
        "load_ext initialises no CUDA",
        "%load_ext resmagic\nimport torch\ntorch.cuda.is_initialized()",
    ),
    ("CUDA up", "x0 = torch.zeros(1, device='cuda'); torch.cuda.synchronize(); 'ok'"),
    (
        "4 GiB peak held 10 ms",
        "%%gpu_scope --no-panel\nimport time\n"
        "t = torch.empty(4 << 30, dtype=torch.uint8, device='cuda'); t.fill_(1)\n"
        "torch.cuda.synchronize(); time.sleep(0.01); del t",
    ),
    (
        "nested peaks",
        "%%gpu_scope -q\nfrom resmagic import gpu_scope\n"
        "with gpu_scope('cuda:0') as inner:\n"
        "    a = torch.empty(1 << 30, dtype=torch.uint8, device='cuda'); del a\n"
        "b = torch.empty(2 << 30, dtype=torch.uint8, device='cuda'); del b",
    ),
    (
        "timed counts queued work",
        "%%timed synced -q\nm = torch.randn(8192, 8192, device='cuda')\n"
        "for _ in range(50):\n    m = m @ m / 8192",
    ),
    (
        "timed without sync",
        "%%timed unsynced --no-sync -q\nm = torch.randn(8192, 8192, device='cuda')\n"
        "for _ in range(50):\n    m = m @ m / 8192",
    ),
    (
        "OOM reclaim",
        "def grab():\n    held = torch.empty(64 << 30, dtype=torch.uint8, device='cuda')\n"
        "    more = torch.empty(1 << 40, dtype=torch.uint8, device='cuda')\n"
        "before_oom = torch.cuda.memory_allocated()",
    ),
    ("OOM cell", "%%gpu_scope --no-panel\ngrab()"),
]

FACTS = """import json, time, torch, resmagic
from resmagic.probes import nvml
h = resmagic.history()
def rows(r):
    return [dict(name=d.name, source=d.source, before=d.before_bytes, peak=d.peak_bytes,
                 after=d.after_bytes, exact=d.peak_exact) for d in getattr(r, 'devices', ())]
t0 = time.perf_counter()
for _ in range(200):
    nvml.read_all()
sample_us = (time.perf_counter() - t0) / 200 * 1e6
json.dumps(dict(
    reports=[dict(scope=r.scope, label=getattr(r, 'label', None), status=r.status,
                  wall=getattr(r, 'wall_s', r.duration_s), reclaimed=getattr(r, 'reclaimed', None),
                  notes=list(getattr(r, 'notes', ())), rows=rows(r)) for r in h],
    allocated_after_oom=torch.cuda.memory_allocated(), before_oom=before_oom,
    nvml_sample_us=sample_us))"""

COST = """import json, time
from IPython.utils.capture import capture_output
ip = get_ipython()
def per(src, n=200):
    with capture_output(display=True):
        for _ in range(20):
            ip.run_cell(src, store_history=False)
        t0 = time.perf_counter()
        for _ in range(n):
            ip.run_cell(src, store_history=False)
    return (time.perf_counter() - t0) / n * 1e6
rounds = [{k: per(v) for k, v in (('bare', 'pass'), ('%%timed', '%%timed -q\\npass'),
          ('%%gpu_scope -q', '%%gpu_scope -q\\npass'),
          ('%%gpu_scope --no-panel', '%%gpu_scope --no-panel\\npass'))} for _ in range(5)]
json.dumps({k: sorted(r[k] for r in rounds)[2] for k in rounds[0]})"""


def run_kernel_checks(python: Path, work: Path, say: Log) -> dict[str, Any]:
    """Magic cells with CUDA tensors in a real kernel of the venv; what they showed."""
    from jupyter_client.manager import start_new_kernel

    spec = work / "jupyter" / "kernels" / "resmagic-gpu"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "gpu"}))
    os.environ["JUPYTER_PATH"] = str(work / "jupyter")
    km, kc = start_new_kernel(kernel_name="resmagic-gpu", cwd=str(work))
    out: dict[str, Any] = {}
    try:
        for name, code in CELLS:
            status, shown = _execute(kc, code, _text)
            out[name] = {"status": status, "shown": shown[-2000:]}
            say(f"--- {name}: {status}\n{out[name]['shown']}")
        for key, code in (("facts", FACTS), ("cost_us", COST)):
            _, value = _execute(kc, code, _result)  # the repr of a JSON string
            out[key] = json.loads(ast.literal_eval(value)) if value else None
            say(f"--- {key}: {out[key]}")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return out


def _execute(kc: Any, code: str, pick: Any) -> tuple[str, str]:
    """Run ``code``; its reply status and what ``pick`` takes from each output message."""
    shown: list[str] = []
    reply = kc.execute_interactive(code, output_hook=lambda m: shown.append(pick(m)), timeout=240)
    return str(reply["content"]["status"]), "".join(shown)


def _text(msg: dict[str, Any]) -> str:
    content = msg.get("content", {})
    if msg.get("msg_type") == "stream":
        return str(content.get("text", ""))
    if msg.get("msg_type") == "error":
        return "\n".join(content.get("traceback", []))
    data = content.get("data", {})
    return str(data.get("text/plain", "")) + "\n" if data else ""


def _result(msg: dict[str, Any]) -> str:
    if msg.get("msg_type") == "execute_result":
        return str(msg["content"]["data"].get("text/plain", ""))
    return ""


Row = tuple[str, str, str]


def verdicts(kernel: dict[str, Any]) -> list[Row]:
    """(check, result, measured) rows for the results table."""
    facts = kernel.get("facts") or {}
    reports = facts.get("reports", [])
    load = kernel.get("load_ext initialises no CUDA", {})
    rows = [("`%load_ext` initialises no CUDA", _ok("False" in load.get("shown", "")), "")]
    rows += _peak_rows([r for r in reports if r["scope"] == "gpu_scope" and r["status"] == "ok"])
    rows += _timed_rows(reports)
    if facts:
        back = facts.get("allocated_after_oom") == facts.get("before_oom")
        killed = "OutOfMemoryError" in kernel.get("OOM cell", {}).get("shown", "")
        after = f"allocated after {facts.get('allocated_after_oom')} B"
        rows.append(("OOM reclaim returns the memory", _ok(killed and back), after))
        rows.append(("one NVML sample", "measured", f"{facts.get('nvml_sample_us', 0):.1f} µs"))
    for cell, micros in (kernel.get("cost_us") or {}).items():
        rows.append((f"per cell: {cell}", "measured", f"{micros:.1f} µs"))
    return rows


def _peak_rows(gpu: list[dict[str, Any]]) -> list[Row]:
    """The 4 GiB cell (the first ok ``gpu_scope`` report): an exact allocator peak, NVML row."""
    if not gpu:
        return [("a `%%gpu_scope` cell with CUDA tensors", _ok(False), "no ok report")]
    alloc = [d for d in gpu[0]["rows"] if d["source"] == "torch allocator"]
    nv = [d for d in gpu[0]["rows"] if d["source"] == "NVML"]
    peak = (alloc[0]["peak"] - alloc[0]["before"]) / GiB if alloc else 0.0
    exact = bool(alloc) and alloc[0]["exact"] and abs(peak - 4) < 0.01
    return [
        ("allocator row, exact peak of 4 GiB", _ok(exact), f"{peak:.4f} GiB above before"),
        ("NVML row, labelled sampled", _ok(bool(nv) and not nv[0]["exact"]), ""),
    ]


def _timed_rows(reports: list[dict[str, Any]]) -> list[Row]:
    timed = {
        r["label"]: r["wall"] for r in reports if r["scope"] == "timed" and r["status"] == "ok"
    }
    if "synced" not in timed or "unsynced" not in timed:
        return []
    walls = f"synced {timed['synced']:.3f} s, --no-sync {timed['unsynced']:.3f} s"
    return [("`%%timed` counts queued CUDA work", _ok(timed["synced"] > timed["unsynced"]), walls)]


def _ok(passed: bool) -> str:
    return "pass" if passed else "**FAIL**"


def write_results(out: Path, facts: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    """``results.md``: the machine, then one row per check."""
    lines = ["# resmagic on a real GPU", ""]
    lines += [f"- {key}: {value}" for key, value in facts.items()]
    lines += ["", "| check | result | measured |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def machine() -> dict[str, Any]:
    """Date, GPU, driver and torch version, as the machine says them."""
    query = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    smi = subprocess.run(
        [shutil.which("nvidia-smi") or "true", *query], capture_output=True, text=True
    )
    torch = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
        capture_output=True,
        text=True,
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "GPU, driver, memory": smi.stdout.strip(),
        "torch, CUDA": torch.stdout.strip(),
        "python": sys.version.split()[0],
    }


def main(argv: list[str]) -> int:
    """Check and measure; 0 with one line where there is no GPU."""
    if argv[:1] == ["--inside"]:  # the venv's python: it has jupyter_client and IPython
        return inside(Path(argv[1]), Path(argv[2]))
    reason = no_gpu_reason()
    if reason is not None:
        print(f"gpu-check: no GPU here: {reason}; nothing to check")
        return 0
    out = Path(os.environ.get("RESMAGIC_GPU_OUT", ROOT / "build" / "gpu"))
    out.mkdir(parents=True, exist_ok=True)
    say = Log(out)
    with tempfile.TemporaryDirectory(prefix="resmagic-gpu-") as tmp:
        python = make_venv(Path(tmp) / "venv", say)
        say.file.close()
        done = subprocess.run([str(python), __file__, "--inside", tmp, str(out)], timeout=480)
    return done.returncode


def inside(work: Path, out: Path) -> int:
    """In the venv: the gpu tests, the kernel checks, the results table."""
    say = Log(out, mode="a")
    facts = machine()
    say(json.dumps(facts))
    facts.update(run_gpu_tests(Path(sys.executable), say))
    kernel = run_kernel_checks(Path(sys.executable), work, say)
    rows = verdicts(kernel)
    write_results(out, facts, rows)
    say((out / "results.md").read_text())
    return 0 if all(r[1] != "**FAIL**" for r in rows) and facts["gpu tests rc"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
