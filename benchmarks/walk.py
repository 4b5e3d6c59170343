"""What naming the holders costs: ``who()`` on a 100 M-parameter model with Adam state, and a
``gpu_scope`` cell's close with ``held_by`` on and off when nothing triggers a walk.

Run: ``.venv/bin/python benchmarks/walk.py`` (~1 min, 2 GiB of RAM); prints a markdown table
for docs/benchmarks.md. Both sides of each comparison run interleaved in one process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from resmagic import gpu_scope
from resmagic.holders import who


def model_with_adam(params: int = 100_000_000) -> dict[str, object]:
    """A 24-layer MLP of ``params`` parameters after one real Adam step (grads, moments)."""
    width = int((params / 24) ** 0.5)
    layers = [torch.nn.Linear(width, width) for _ in range(24)]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters())
    loss = model(torch.randn(4, width)).sum()
    loss.backward()
    opt.step()
    return {"model": model, "opt": opt, "loss": loss}


def best_ms(step: Callable[[], object], rounds: int = 15) -> tuple[float, float]:
    """(median, best) of ``rounds`` runs, in milliseconds."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def close_cost_us(rounds: int = 2000) -> tuple[float, float]:
    """Median µs of a gpu_scope enter+exit without and with ``held_by``, interleaved."""
    namespace = {"x": 1}
    plain, named = gpu_scope("host"), gpu_scope("host", held_by=namespace)
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        for scope, out in ((plain, off), (named, on)):
            t0 = time.perf_counter()
            with scope:
                pass
            out.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(off), statistics.median(on)


def main() -> None:
    namespace = model_with_adam()
    params = sum(p.numel() for p in namespace["model"].parameters())  # type: ignore[attr-defined]
    walk = who(namespace, top=None, budget_s=10)
    median, best = best_ms(lambda: who(namespace, top=None, budget_s=10))
    off, on = close_cost_us()
    print("| what | result |")
    print("|---|---|")
    print(
        f"| `who()` on a {params / 1e6:.0f} M-parameter MLP after an Adam step ({len(walk.rows)} rows, {walk.total() / 2**30:.2f} GiB named) | median {median:.2f} ms, best {best:.2f} ms |"
    )
    print(
        f"| `gpu_scope` enter+exit, nothing held: `held_by` off / on | {off:.1f} µs / {on:.1f} µs (ratio {on / off:.3f}) |"
    )


if __name__ == "__main__":
    main()
