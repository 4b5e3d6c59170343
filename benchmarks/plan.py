"""What the benchmark measures: each kernel's session and its cell variants, the plan of rounds.

Nothing here starts a kernel; measure.py runs these, tables.py and render.py report them.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
ARRAY_BYTES = 400 * MIB
HOLDS = (0.2, 0.02, 0.002)
SLEEP = 0.2


@dataclass
class Session:
    """One fresh kernel: ``setup``, then rounds of ``variants`` (the first is the bare cell).

    A variant is ``(label, before, cell)``; ``before`` runs untimed ahead of each round's
    block and switches the tool off (for the bare cell) or on again.
    """

    name: str
    setup: str
    variants: list[tuple[str, str | None, str]]
    time_cell: str | None = None  # how this tool times `time.sleep(0.2)`
    peak_prefix: str | None = None  # how this tool measures the 400 MiB cell
    reader: str = "stdout"  # "stdout" (parse what it printed) or "resmagic" (history)


NOOP = "%%noop\npass"
BARE = "pass"
# A cell of realistic length: costs that grow with the cell (transforming, compiling and
# naming the body) show here, not on `pass`.
LONG = "\n".join(f"x{i} = {i} * 2" for i in range(100))
LONG_LABEL = " (100 lines)"


def _peer(name: str, setup: str, off: str, on: str, label: str, memory: bool = False) -> Session:
    """A peer that hooks every cell: ``off``/``on`` switch it between the bare and its rounds."""
    return Session(
        name,
        setup=setup,
        variants=[("bare", off, BARE), (label, on, BARE)],
        time_cell="",  # each peer prints a time for every cell
        peak_prefix="" if memory else None,
    )


LOAD, UNLOAD = "%load_ext resmagic", "%unload_ext resmagic"


def _resmagic(log: str) -> Session:
    """resmagic's own cells, against IPython's floor and ``%%time``, short and long."""
    return Session(
        "resmagic",
        setup="from inkernel import NOOP_MAGIC; exec(NOOP_MAGIC)",
        variants=[
            ("bare", UNLOAD, BARE),
            ("empty cell magic (IPython's floor)", None, NOOP),
            ("%%time", None, "%%time\npass"),
            ("bare, resmagic loaded", LOAD, BARE),
            ("%%timed", None, "%%timed\npass"),
            ("%%gpu_scope --no-panel", None, "%%gpu_scope --no-panel\npass"),
            ("%%gpu_scope -q", None, "%%gpu_scope -q\npass"),
            ("%%gpu_scope (panel on, default)", None, "%%gpu_scope\npass"),
            ("%%experiment_log", None, f"%%experiment_log {log}\npass"),
            (
                "%%timed + %%gpu_scope + %%experiment_log",
                None,
                f"%%timed\n%%gpu_scope\n%%experiment_log {log}\npass",
            ),
            ("bare" + LONG_LABEL, None, LONG),
            ("%%time" + LONG_LABEL, None, "%%time\n" + LONG),
            ("%%timed" + LONG_LABEL, None, "%%timed\n" + LONG),
            ("%%gpu_scope --no-panel" + LONG_LABEL, None, "%%gpu_scope --no-panel\n" + LONG),
        ],
        time_cell="%%timed -q\n",
        peak_prefix="%%gpu_scope -q\n",
        reader="resmagic",
    )


def _watch() -> Session:
    """Watch mode: resmagic hooking every bare cell, as the peers do."""
    return Session(
        "resmagic watch",
        setup="pass",
        variants=[
            ("bare", UNLOAD, BARE),
            ("%resmagic watch on (gpu_scope, timed)", f"{LOAD}\n%resmagic watch on", BARE),
            ("%resmagic watch on --scopes timed", "%resmagic watch on --scopes timed", BARE),
        ],
    )


def sessions(log: str) -> list[Session]:
    """Every session, in the order they run; ``log`` is the %%experiment_log file."""
    return [
        _resmagic(log),
        _peer(
            "ipython-autotime",
            "pass",
            "%unload_ext autotime",
            "%load_ext autotime",
            label="autotime (every cell)",
        ),
        _peer(
            "ipyexperiments",
            "from ipyexperiments import IPyExperimentsCPU\nexp = IPyExperimentsCPU()",
            "exp.cl.stop()",
            "exp.cl.start()",
            label="IPyExperimentsCPU (every cell)",
            memory=True,
        ),
        _peer(
            "ipython_memory_usage",
            "%load_ext ipython_memory_usage",
            "%imu_stop",
            "%imu_start",
            label="%imu_start (every cell)",
            memory=True,
        ),
        _watch(),
    ]


LOADS = {
    "resmagic": "%load_ext resmagic",
    "ipython-autotime": "%load_ext autotime",
    "ipython_memory_usage": "%load_ext ipython_memory_usage",
    "ipyexperiments": "from ipyexperiments import IPyExperimentsCPU\nexp = IPyExperimentsCPU()",
}

# How %%time prints its time; the resmagic session also runs it (before loading resmagic).
TIME_BUILTIN = "%%time\n"


@dataclass
class Plan:
    reps: int = 40
    max_cells: int = 100
    budget_s: float = 0.25  # seconds per variant per round, at most (slow peers run fewer cells)
    load_rounds: int = 3
    fidelity_rounds: int = 3
    sampler_s: float = 10.0


QUICK = Plan(reps=5, max_cells=100, budget_s=0.1, load_rounds=1, fidelity_rounds=1, sampler_s=2)

COMPARED = ("resmagic", "resmagic watch")  # the sessions measured again for --before/--patch
