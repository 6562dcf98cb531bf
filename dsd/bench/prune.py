"""The ``prune()`` benchmark: wall time and peak extra memory of one mask computation.

Layer and global scope are run interleaved on the same weights (restored before every run), so a
slow phase of a shared machine hits both alike. Peak memory is split into the masks ``prune()``
keeps (its result, one byte per weight) and the working memory the computation needed on top,
which is compared with the largest tensor: sorting or ranking a copy of all weights at once would
show here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dsd.bench.models import SPARSITY
from dsd.bench.probes import PeakMemory, Timer
from dsd.engine import DSD


def bench_prune(build: Callable[[], nn.Module], device: torch.device, repeats: int) -> dict[str, Any]:
    """``prune()`` wall time and peak extra memory, layer and global scope interleaved."""
    torch.manual_seed(0)
    model = build().to(device)
    engine = DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    originals = [t.param.detach().clone() for t in engine.tensors]
    timer = Timer(device)
    runs: dict[str, list[dict[str, float]]] = {"layer": [], "global": []}
    method = ""
    for _ in range(repeats):
        for scope in ("layer", "global"):
            with torch.no_grad():
                for t, original in zip(engine.tensors, originals, strict=True):
                    t.param.copy_(original)
            with PeakMemory(device) as peak:
                cpu_start = time.process_time()
                seconds = timer(lambda scope=scope: engine.prune(SPARSITY, scope=scope))
                cpu_seconds = time.process_time() - cpu_start
            masks_bytes = sum(m.numel() * m.element_size() for m in engine.masks.values())
            engine.redense()
            runs[scope].append(
                {
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "peak_extra_bytes": peak.extra_bytes,
                    "masks_bytes": masks_bytes,
                }
            )
            method = peak.method
    engine.remove()
    largest = max(t.numel * t.param.element_size() for t in engine.tensors)
    result: dict[str, Any] = {
        "weights": sum(t.numel for t in engine.tensors),
        "tensors": len(engine.tensors),
        "largest_tensor_bytes": largest,
        "memory_method": method,
    }
    for scope, scope_runs in runs.items():
        peak_bytes = max(r["peak_extra_bytes"] for r in scope_runs)  # the worst run
        masks_bytes = scope_runs[0]["masks_bytes"]
        result[scope] = {
            "seconds_median": statistics.median(r["seconds"] for r in scope_runs),
            "seconds": [r["seconds"] for r in scope_runs],
            # CPU time of this process, all threads: on a shared machine, what wall time would be
            # on a quiet one with one thread (it exceeds wall time when threads run in parallel)
            "cpu_seconds": [r["cpu_seconds"] for r in scope_runs],
            "peak_extra_bytes": peak_bytes,  # everything above the level before the call
            "masks_bytes": masks_bytes,  # the result kept (1 byte per weight), part of the peak
            "working_bytes": peak_bytes - masks_bytes,  # what the computation itself needed
            "working_over_largest_tensor": (peak_bytes - masks_bytes) / largest,
        }
    result["global_over_layer"] = result["global"]["seconds_median"] / result["layer"]["seconds_median"]
    return result
