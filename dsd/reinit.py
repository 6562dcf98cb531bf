"""Values for the re-initialisation ablation: pruned weights restart from their layer's own
initialisation instead of from zero.

The layer's own distribution is whatever its ``reset_parameters()`` draws (Kaiming-uniform for
``nn.Linear`` and convolutions, uniform in ±1/sqrt(hidden) for recurrent layers, ...): a scratch
copy of the layer on the CPU is reset under a generator seeded from the caller's, so every device
and every rank draws the same values, and only the entries at the pruned positions are used.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dsd.errors import ConfigError


def fresh_weights(owner: nn.Module, param_name: str, generator: torch.Generator) -> torch.Tensor:
    """A new draw of ``owner.<param_name>`` from the layer's initialisation (CPU, same shape)."""
    if not hasattr(owner, "reset_parameters"):
        raise ConfigError(
            f"re-initialising {type(owner).__name__}.{param_name} needs the layer's reset_parameters(), "
            "which it does not have; use restart='zero' (the paper's re-dense) for this model"
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    scratch = copy.deepcopy(owner).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        scratch.reset_parameters()
    return getattr(scratch, param_name).detach()
