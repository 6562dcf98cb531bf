"""What the ranks' phase check costs a DDP training step: one ``PhaseAgreement.check``, timed.

    python -m dsd.bench.agreement [--checks 2000]

Under DDP the engine runs this check before every training forward (``dsd.collective``), so
its time is added to every step. Two gloo processes on this machine, after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dsd.collective import PhaseAgreement


def _worker(rank: int, port: int, checks: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    agreement = PhaseAgreement()
    for _ in range(50):
        agreement.check(0, "warm-up")
    start = time.perf_counter()
    for _ in range(checks):
        agreement.check(0, "bench")
    if rank == 0:
        per_check = (time.perf_counter() - start) / checks
        print(f"phase check: {per_check * 1e6:.0f} us per check (2 gloo processes, {checks} checks)")
    dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args(argv)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(port, args.checks), nprocs=2)


if __name__ == "__main__":
    main()
