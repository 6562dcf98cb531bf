"""The engine under DDP (2 processes, gloo, CPU): every rank holds rank 0's mask.

Rank 1's weights are perturbed after wrapping, so a mask computed locally would differ between
ranks; the engine broadcasts rank 0's. The model has a channels_last conv (a non-contiguous mask
goes through the broadcast) and an LSTM.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import dsd

WORLD_SIZE = 2
SPARSITY = 0.5
STEPS = 4


class DDPNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.lstm = nn.LSTM(8, 8, num_layers=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))  # (B, 8, 4, 4)
        seq = x.flatten(2).permute(2, 0, 1)  # 16 steps of 8 features
        out, _ = self.lstm(seq)
        return self.fc(out[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flat(masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([m.reshape(-1) for m in masks.values()]).to(torch.uint8)


def _gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(tensor) for _ in range(WORLD_SIZE)]
    dist.all_gather(out, tensor)
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.manual_seed(0)
        model = DDPNet()
        model.conv2.to(memory_format=torch.channels_last)
        ddp = nn.parallel.DistributedDataParallel(model)
        if rank == 1:  # drift in the last bits and beyond: local masks would now differ
            with torch.no_grad():
                gen = torch.Generator().manual_seed(1)
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        engine = dsd.DSD(ddp, optimizer)
        names = [t.name for t in engine.tensors]
        local = dict(
            zip(names, dsd.magnitude_masks([t.param for t in engine.tensors], SPARSITY), strict=True)
        )
        engine.prune(SPARSITY)
        chosen = {n: m.clone() for n, m in engine.masks.items()}
        torch.manual_seed(100 + rank)  # each rank its own data shard
        for _ in range(STEPS):
            x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        held = all(bool((model.get_parameter(n).detach()[~m] == 0).all()) for n, m in chosen.items())
        report = engine.sparsity_report()
        result = {
            "names": names,
            "masks_equal": all(torch.equal(g, _flat(chosen)) for g in _gather(_flat(chosen))),
            "local_masks_equal": all(torch.equal(g, _flat(local)) for g in _gather(_flat(local))),
            "mask_unchanged": all(torch.equal(engine.masks[n], m) for n, m in chosen.items()),
            "held": held,
            "weight_sparsity": report.weight_sparsity,
            "mask_sparsity": report.mask_sparsity,
            "conv2_mask_channels_last": engine.masks["conv2.weight"].is_contiguous(
                memory_format=torch.channels_last
            ),
        }
        engine.redense()
        if rank == 1:  # NaN on one rank only: both ranks must refuse, neither may hang
            with torch.no_grad():
                model.fc.weight[0, 0] = float("nan")
        try:
            engine.prune(SPARSITY)
            result["nan_error"] = ""
        except ValueError as err:
            result["nan_error"] = str(err)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_hold_identical_masks_and_the_sparsity(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for rank, result in enumerate(results):
        assert result["names"] == [
            "conv2.weight",
            "lstm.weight_ih_l0",
            "lstm.weight_hh_l0",
            "lstm.weight_ih_l1",
            "lstm.weight_hh_l1",
            "fc.weight",
        ], "names seen through the DDP wrapper"
        assert not result["local_masks_equal"], "the perturbation should make local masks differ"
        assert result["masks_equal"], f"rank {rank}: masks differ across ranks"
        assert result["mask_unchanged"], f"rank {rank}: the mask changed during the sparse phase"
        assert result["held"], f"rank {rank}: a pruned weight was revived"
        assert result["mask_sparsity"] == result["weight_sparsity"]
        assert abs(result["mask_sparsity"] - SPARSITY) < 0.01
        assert result["conv2_mask_channels_last"]
    assert "another rank holds NaN/inf" in results[0]["nan_error"]
    assert "'fc.weight'" in results[1]["nan_error"]
