"""Who holds the memory: real torch CPU tensors and numpy arrays, named and counted once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import resmagic
from resmagic.holders import Holders, who
from resmagic.scopes.reclaim import clear_frames

torch = pytest.importorskip("torch")


def _rows(holders: Holders) -> dict[str, tuple[str, int, tuple[str, ...]]]:
    return {r.name: (r.kind, r.nbytes, r.shared_with) for r in holders.rows}


@pytest.fixture
def trained() -> dict[str, Any]:
    """A real module after a real Adam step, with a tied weight and a live autograd graph."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    model[2].weight = model[0].weight  # tied
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(32, 64)
    model(x).pow(2).mean().backward()
    opt.step()
    loss = model(x).sum()  # its graph keeps what backward() would need
    return {"model": model, "opt": opt, "x": x, "loss": loss}


def test_parameters_gradients_and_optimizer_state_by_name(trained: dict[str, Any]) -> None:
    rows = _rows(who(trained, top=None))
    weight = trained["model"][0].weight
    assert rows["model.0.weight"][:2] == ("parameter", weight.untyped_storage().nbytes())
    assert rows["model.0.weight.grad"][0] == "gradient"
    assert rows["opt.state[model.0.weight]['exp_avg']"][0] == "optimizer state"
    assert rows["opt.state[model.0.weight]['exp_avg_sq']"][1] == 64 * 64 * 4


def test_tied_weights_and_views_are_counted_once(trained: dict[str, Any]) -> None:
    trained["w"] = trained["model"][0].weight[:8]  # a view of the tied weight
    holders = who(trained, top=None)
    rows = _rows(holders)
    assert "model.2.weight" not in rows  # the tied weight is the same storage
    assert {"model.2.weight", "w"} <= set(rows["model.0.weight"][2])
    named = sum(r.nbytes for r in holders.rows if r.kind == "parameter")
    assert named == 64 * 64 * 4 + 2 * 64 * 4  # one weight, two biases


def test_an_autograd_graph_held_by_loss_is_named(trained: dict[str, Any]) -> None:
    rows = _rows(who(trained, top=None))
    graph = [name for name, row in rows.items() if row[0] == "activation"]
    assert graph
    assert all(name == "loss (autograd graph)" for name in graph)


def test_numpy_views_count_their_owner_once() -> None:
    base = np.zeros((100, 100))
    rows = _rows(who({"view": base[:10], "base": base}, top=None))
    assert len(rows) == 1
    ((kind, nbytes, shared),) = rows.values()
    assert (kind, nbytes) == ("numpy array", 80_000)
    assert len(shared) == 1


def test_the_time_budget_stops_the_walk_and_says_so() -> None:
    holders = who({"many": [[i] for i in range(1_000_000)]}, budget_s=0.001)
    assert holders.stopped is not None
    assert "time budget" in holders.stopped


def test_a_diff_shows_what_was_added() -> None:
    before = who({"a": np.ones(10)})
    after = who({"a": np.ones(10), "b": np.ones(1000)})
    assert [r.name for r in (after - before).rows] == ["b"]
    assert (after - before).line() == "held by: b 7.81 KiB"


def test_in_ipython_the_output_cache_and_a_failed_cells_frame_hold_tensors(ip: Any) -> None:
    ip.run_cell("import torch", store_history=True)
    shown = ip.run_cell("torch.ones(1000)", store_history=True)
    ip.run_cell(
        "def step():\n    held = torch.ones(5000)\n    raise KeyError('x')", store_history=True
    )
    ip.run_cell("step()", store_history=True)
    rows = _rows(ip.run_line_magic("resmagic", "who 50"))
    assert rows[f"Out[{shown.execution_count}]"][:2] == ("output cache", 4000)
    frame = rows["step() local 'held' of the last error"]
    assert frame[:2] == ("traceback frame", 20_000)
    ip.run_cell("%%gpu_scope -q --reclaim always\nstep()", store_history=True)
    after = _rows(ip.run_line_magic("resmagic", "who 50"))
    assert not [name for name in after if name.startswith("step()")]  # the reclaim cleared it


def test_naming_a_frames_locals_leaves_them_free_to_reclaim() -> None:
    import gc
    import weakref

    torch = pytest.importorskip("torch")

    def step() -> None:
        activations = torch.ones(1000)
        raise MemoryError(activations.shape)

    try:
        step()
    except MemoryError as exc:
        error = exc
    rows = _rows(who({}, error=error))
    assert rows["step() local 'activations' of this error"][:2] == ("traceback frame", 4000)
    tb = error.__traceback__
    assert tb is not None
    assert tb.tb_next is not None
    frame = tb.tb_next.tb_frame
    ref = weakref.ref(next(v for v in gc.get_referents(frame) if isinstance(v, torch.Tensor)))
    clear_frames(error)
    gc.collect()
    assert ref() is None, "the walk's name lookup kept the tensor alive"


def test_the_table_says_what_no_variable_reaches_per_device() -> None:
    np = pytest.importorskip("numpy")
    holders = who({"arr": np.ones(1 << 20)})  # 8 MiB named
    assert holders.named["host"] == 8 << 20
    assert holders.in_use["host"] > holders.named["host"]
    rest = holders.unreachable("host")
    assert rest == holders.in_use["host"] - (8 << 20)
    assert "host: " in repr(holders)
    assert "not reachable from your variables" in repr(holders).splitlines()[-1]


def test_the_cuda_rest_is_the_allocator_minus_what_is_named(fake_gpu: Any) -> None:
    torch, _nv = fake_gpu
    torch.cuda.init()
    torch.cuda.malloc(0, 3 << 30)  # the fake's bytes are no tensor a variable holds
    holders = who({}, device="cuda:0")
    assert holders.in_use == {"cuda:0": 3 << 30}
    assert holders.unreachable("cuda:0") == 3 << 30
    assert repr(holders) == "no tensors or arrays reachable from your variables"
    assert "3.00 GiB not reachable" in holders.rest_line("cuda:0")


def test_an_oom_names_what_held_the_memory_before_the_reclaim(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("import torch", store_history=True)
    ip.run_cell(
        "def grow(n):\n    activations = torch.ones(n, 1 << 20)\n    raise MemoryError(n)",
        store_history=True,
    )
    capsys.readouterr()
    ip.run_cell("%%gpu_scope --no-panel\ngrow(64)", store_history=True)  # 256 MiB
    out = capsys.readouterr().out
    report = resmagic.history()[-1]
    assert isinstance(report, resmagic.GpuReport)
    assert report.reclaimed
    assert report.holders_when == "error"
    top = report.holders[0]
    assert (top.name, top.kind, top.nbytes) == (
        "grow() local 'activations' of this error",
        "traceback frame",
        256 << 20,
    )
    assert "held when it ran out: grow() local 'activations' of this error 256 MiB" in out
    assert "freed by the reclaim" in out
    host = report.device("host")
    assert host.after_bytes - host.before_bytes < 64 << 20  # and the reclaim did free it
    frame = resmagic.history_frame()
    assert frame["holders"].iloc[-1].startswith("grow() local 'activations' of this error 256 MiB")


@pytest.mark.gpu
def test_a_real_cuda_tensor_is_named_against_the_allocator() -> None:
    torch = pytest.importorskip("torch")
    weights = torch.ones(1 << 20, device="cuda:0")  # 4 MiB
    holders = who({"weights": weights}, device="cuda:0")
    row = holders.rows[0]
    assert (row.name, row.device) == ("weights", "cuda:0")
    assert row.nbytes == weights.untyped_storage().nbytes()
    assert holders.in_use["cuda:0"] == torch.cuda.memory_allocated(0)
    assert holders.unreachable("cuda:0") == torch.cuda.memory_allocated(0) - row.nbytes


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "tpu", "cuda:-1"])
def test_who_refuses_a_device_that_names_none(device: str) -> None:
    # Reliability 2026-12-06 #9: who(device="bogus") listed nothing instead of saying so.
    from resmagic.errors import DeviceError

    with pytest.raises(DeviceError, match="unknown device"):
        resmagic.who({"block": bytearray(1 << 20)}, device=device)


@pytest.mark.parametrize("device", ["host", "cpu", "HOST"])
def test_who_reads_host_however_it_is_spelled(device: str) -> None:
    rows = resmagic.who({"block": bytearray(1 << 20)}, device=device, top=None).rows
    assert "block" in [row.name for row in rows]
