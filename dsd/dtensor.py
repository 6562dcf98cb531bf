"""The one fact about DTensors that the engine's hot path needs: where a tensor's own shard is.

FSDP2 (``fully_shard``) turns every parameter, its gradient and its optimizer state into a
DTensor whose ``_local_tensor`` is this rank's rows. The engine's masks are shaped like those rows,
so masking works on the local tensor. ``DTensor.to_local()`` would add an autograd view when grad
mode is on; the local tensor itself is what FSDP2 all-gathers from, so writing it in place is
writing the parameter.

``torch.distributed.tensor`` takes half a second to import; it is never imported here. A DTensor
can only exist once that module is loaded, so until then every tensor is plain.
"""

from __future__ import annotations

import sys

import torch


def is_dtensor(tensor: object) -> bool:
    """Whether ``tensor`` is a DTensor (without importing ``torch.distributed.tensor``)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, module.DTensor)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (the storage FSDP2 trains), else ``tensor`` itself."""
    return tensor._local_tensor if is_dtensor(tensor) else tensor
