"""Who holds the memory: real torch CPU tensors and numpy arrays, named and counted once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from resmagic.holders import Holders, who

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
    frame = rows["step() frame of the last error"]
    assert frame[:2] == ("traceback frame", 20_000)
    ip.run_cell("%%gpu_scope -q --reclaim always\nstep()", store_history=True)
    after = _rows(ip.run_line_magic("resmagic", "who 50"))
    assert "step() frame of the last error" not in after  # the reclaim cleared it
