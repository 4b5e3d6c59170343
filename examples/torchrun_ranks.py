"""Every rank's memory and time in rank 0's report: ``gpu_scope(ranks=True)`` under torchrun.

Run (two ranks on this machine; gloo on CPU, nccl when every rank has a GPU):

    torchrun --nproc_per_node=2 examples/torchrun_ranks.py
    torchrun --nproc_per_node=2 examples/torchrun_ranks.py --backend nccl   # ranks share GPUs

With ``--backend nccl`` and fewer GPUs than ranks, ranks share GPUs (local rank modulo the
count): resmagic's gather never runs an NCCL collective, so this works on one GPU.

Each rank runs three steps; rank r holds ``(1 + r) * 64`` MiB more than rank 0 at its peak,
so rank 1 peaks. Rank 0 prints each step's table: one row per rank (status, wall, each
device's peak) and which rank peaked. The other ranks print nothing: rank 0's report
carries their rows (and only rank 0 writes to the run store and MLflow).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist

from resmagic import gpu_scope, timed

MiB = 1 << 20


def step(rank: int, device: torch.device) -> None:
    """A stand-in for a training step: rank r allocates ``(1 + r) * 64`` MiB, and sleeps."""
    held = torch.ones((1 + rank) * 64 * MiB // 4, dtype=torch.float32, device=device)
    time.sleep(0.05 * (1 + rank))
    del held


def main() -> None:
    """Join the group torchrun describes, run three measured steps, print rank 0's tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    backend = parser.parse_args().backend
    if backend is None:
        enough = torch.cuda.is_available() and torch.cuda.device_count() >= int(
            os.environ.get("LOCAL_WORLD_SIZE", "1")
        )
        backend = "nccl" if enough else "gloo"
    cuda = backend == "nccl"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local % torch.cuda.device_count()}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    for n in range(3):
        # Every rank opens the same ranks scopes in the same order, as with collectives.
        # Not nested: rank 0's wait for the others would count in an outer scope's time.
        with gpu_scope(str(device) if cuda else "host", ranks=True) as scope:
            step(rank, device)
        with timed("step", ranks=True) as clock:
            step(rank, device)
        if rank == 0:
            assert scope.report is not None
            assert clock.report is not None
            table = scope.report.ranks
            assert table is not None
            print(f"step {n}: {table.summary()}")
            print(table.table())
            print(f"  {clock.report.summary()}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
