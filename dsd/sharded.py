"""Where the engine's tensors live across ranks, and the few things that changes.

Two layouts. ``Layout``: every tensor whole on every rank (one process, DDP): ``prune()`` ranks on
rank 0 and broadcasts the masks. ``Sharded``: FSDP2 (``fully_shard``) holds each tensor as a
DTensor whose rows are split across the ranks (``Shard(0)`` on a one-dimensional mesh); each rank
keeps the mask of its own rows, ``prune()`` counts over the shards and sums the counts
(``dsd.shard_select``), so the masks are the ones one process would compute, and nothing is
gathered. The engine asks its layout for:

- the masks of a ``prune()`` (after checking every rank's weights are finite);
- the part of a parameter, gradient or state a mask is shaped like (``local``);
- counts summed over the ranks (the sparsity report, the lapse check at ``redense()``);
- the form of its state in a checkpoint: under FSDP2, ``torch.distributed.checkpoint`` (DCP)
  saves each mask as a sharded tensor and loads it at any world size.

Tensor parallelism, HSDP (a 2-D mesh), other placements and a mix of sharded and whole tensors are
refused when the engine is built, naming the tensor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dsd import collective
from dsd import masks as masklib
from dsd.dtensor import is_dtensor, local
from dsd.errors import ConfigError
from dsd.selection import PrunableTensor, unwrap_model
from dsd.shard_select import magnitude_masks, random_keys, shard_rows
from dsd.sparsity import TensorSparsity


def finite_on_every_rank(tensors: Sequence[PrunableTensor]) -> None:
    """``dsd.masks.check_finite`` on every rank at once, so that no rank waits in a collective of
    ``prune()`` while another has refused to prune."""
    try:
        masklib.check_finite(tensors)
    except ValueError:
        collective.any_rank(True)
        raise
    if collective.any_rank(False):
        raise ValueError("cannot prune: another rank holds NaN/inf weights (its error names the tensor)")


@dataclass(frozen=True)
class Pruning:
    """What one ``prune()`` asks for: the fraction of entries to zero, over each tensor or all
    (``scope``), by magnitude or at random (``criterion``, drawing from ``generator``)."""

    sparsity: float
    scope: str
    criterion: str
    generator: torch.Generator | None


class Layout:
    """Every tensor whole on every rank (one process, DDP)."""

    sharded = False

    def local(self, tensor: torch.Tensor) -> torch.Tensor:
        """The part of ``tensor`` (a parameter, its gradient or state) this rank's mask covers."""
        return tensor

    def total(self, counts: list[int]) -> list[int]:
        """``counts`` summed over the ranks that share the tensors' entries."""
        return counts

    def check_restart(self, restart: str) -> None:
        """Refuse a ``redense(restart=...)`` this layout cannot do."""

    def masks(self, tensors: Sequence[PrunableTensor], pruning: Pruning) -> list[torch.Tensor]:
        """The keep-masks of a ``prune()``: ranked on rank 0 and broadcast, so every rank holds the
        identical mask even if its weights drifted."""
        finite_on_every_rank(tensors)
        params = [t.param for t in tensors]
        if pruning.criterion == "random":
            masks = masklib.random_masks(params, pruning.sparsity, pruning.generator)
        else:
            masks = masklib.magnitude_masks(params, pruning.sparsity, pruning.scope)
        collective.broadcast_masks(masks)
        return masks

    def sparsity_rows(
        self, tensors: Sequence[PrunableTensor], masks: Sequence[torch.Tensor] | None
    ) -> list[TensorSparsity]:
        """Zeros per tensor, from the masks and from the weights, over all ranks."""
        counts = []
        for i, t in enumerate(tensors):
            w = self.local(t.param).detach()
            # count_nonzero: many times faster than bool.sum() on big tensors
            counts.append(0 if masks is None else w.numel() - int(torch.count_nonzero(masks[i])))
            counts.append(w.numel() - int(torch.count_nonzero(w)))
        counts = self.total(counts)
        return [
            TensorSparsity(
                t.name,
                tuple(t.param.shape),
                t.param.numel(),
                None if masks is None else counts[2 * i],
                counts[2 * i + 1],
            )
            for i, t in enumerate(tensors)
        ]

    def checkpoint_state(
        self, state: dict[str, Any], tensors: Sequence[PrunableTensor], masks: Sequence[torch.Tensor] | None
    ) -> dict[str, Any]:
        """The engine's state as ``state_dict()`` returns it (here: unchanged)."""
        return state

    def restore_state(self, state: dict[str, Any], tensors: Sequence[PrunableTensor]) -> dict[str, Any]:
        """A state in the form ``load_state_dict()`` checks: the history a list, and each mask a
        tensor shaped like this rank's part (a sharded state's DTensors are gathered whole)."""
        state = dict(state)
        if isinstance(state.get("history"), str):  # a sharded engine's state (DCP's form)
            state["history"] = json.loads(state["history"])
        if state.get("phase") == "sparse" and isinstance(state.get("masks"), dict):
            state["masks"] = {
                name: self._own_part(tensors, name, mask) for name, mask in state["masks"].items()
            }
        return state

    def _own_part(self, tensors: Sequence[PrunableTensor], name: str, mask: Any) -> Any:
        return mask.full_tensor() if is_dtensor(mask) else mask


class Sharded(Layout):
    """FSDP2: every selected tensor a DTensor, ``Shard(0)`` over one mesh of every rank.

    Counts are summed over ``group`` (the engine's gloo side group, whose timeout turns a rank
    that never answers into an error); ``prune()`` moves only counts, at most 2 KiB per tensor and round."""

    sharded = True

    def __init__(self, mesh: Any, group: Any) -> None:
        self.mesh, self.group = mesh, group
        self.index, self.size = mesh.get_local_rank(), mesh.size()
        self._first_rank = int(mesh.mesh.flatten()[0])  # global rank of the mesh's first shard

    # ------------------------------------------------------------- dsd.shard_select.Ranks
    def sum(self, counts: torch.Tensor) -> torch.Tensor:
        if self.group is not None:
            dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=self.group)
        return counts

    def max(self, values: torch.Tensor) -> torch.Tensor:
        if self.group is not None:
            dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.group)
        return values

    # ------------------------------------------------------------- the engine's questions
    def local(self, tensor: torch.Tensor) -> torch.Tensor:
        return local(tensor)

    def rows(self, param: torch.Tensor) -> tuple[int, int]:
        """The rows of ``param`` this rank holds."""
        return shard_rows(param.shape[0], self.index, self.size)

    def total(self, counts: list[int]) -> list[int]:
        return self.sum(torch.tensor(counts, dtype=torch.int64)).tolist()

    def check_restart(self, restart: str) -> None:
        if restart == "reinit":
            raise ConfigError(
                "redense(restart='reinit') is not supported under FSDP2: a layer's reset_parameters() "
                "draws a sharded DTensor there, not the values one process draws; use restart='zero' "
                "(the paper's re-dense)"
            )

    def masks(self, tensors: Sequence[PrunableTensor], pruning: Pruning) -> list[torch.Tensor]:
        """The masks of this rank's rows, equal to the rows of one process's masks."""
        own = [PrunableTensor(t.name, self.local(t.param), t.module_type) for t in tensors]
        finite_on_every_rank(own)
        shards = [t.param.detach() for t in own]
        generator = pruning.generator
        if pruning.criterion == "random":
            assert generator is not None  # the engine refuses the random criterion without one
            self._agree_on(generator)
            shards = [
                random_keys(t.param.shape, self.rows(t.param), generator).to(s.device)
                for t, s in zip(tensors, shards, strict=True)
            ]
        sizes = [t.param.numel() for t in tensors]
        return magnitude_masks(shards, sizes, pruning.sparsity, pruning.scope, self)

    def _agree_on(self, generator: torch.Generator) -> None:
        """Every rank draws from the first rank's generator state, as under DDP every rank takes
        rank 0's random masks; afterwards the generators agree."""
        if self.group is None:
            return
        state = generator.get_state()
        dist.broadcast(state, src=self._first_rank, group=self.group)
        generator.set_state(state)

    def checkpoint_state(
        self, state: dict[str, Any], tensors: Sequence[PrunableTensor], masks: Sequence[torch.Tensor] | None
    ) -> dict[str, Any]:
        """DCP's form: every mask a DTensor laid out like its parameter (all True while dense, so
        that a dense engine's state has a slot for each mask DCP loads into it), and the history as
        JSON text (DCP would flatten a list of dicts into keys that depend on its length)."""
        from torch.distributed.tensor import DTensor

        shaped = {k: v for k, v in state.items() if k not in ("masks", "history")}
        shaped["history"] = json.dumps(state["history"])
        shaped["masks"] = {}
        for i, t in enumerate(tensors):
            mine = (
                torch.ones_like(self.local(t.param), dtype=torch.bool) if masks is None else masks[i].clone()
            )
            shaped["masks"][t.name] = DTensor.from_local(
                mine,
                t.param.device_mesh,
                t.param.placements,
                run_check=False,
                shape=t.param.shape,
                stride=t.param.stride(),
            )
        return shaped

    def _own_part(self, tensors: Sequence[PrunableTensor], name: str, mask: Any) -> Any:
        """This rank's rows of a mask saved sharded (any world size, via DCP) or whole."""
        param = next((t.param for t in tensors if t.name == name), None)
        if param is None or not torch.is_tensor(mask):
            return mask  # load_state_dict() names what is wrong
        if list(mask.shape) != list(param.shape):
            raise ValueError(f"mask of {name!r} has shape {list(mask.shape)}, expected {list(param.shape)}")
        if is_dtensor(mask):
            if tuple(mask.placements) == tuple(param.placements) and mask.device_mesh == param.device_mesh:
                return local(mask).clone()
            mask = mask.full_tensor()
        start, stop = self.rows(param)
        return mask[start:stop].clone()


def layout_of(model: nn.Module, tensors: Sequence[PrunableTensor], group: Any) -> Layout:
    """The layout of the selected tensors; refuses every DTensor layout but FSDP2's ``Shard(0)``
    on one mesh of all ranks, and a mix of sharded and whole tensors."""
    sharded = [t for t in tensors if is_dtensor(t.param)]
    if not sharded:
        return Layout()
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import Shard

    managed = {
        id(p) for m in unwrap_model(model).modules() if isinstance(m, FSDPModule) for p in m.parameters()
    }
    world = dist.get_world_size() if dist.is_initialized() else 1
    mesh = sharded[0].param.device_mesh
    for t in sharded:
        param = t.param
        rows = shard_rows(param.shape[0], param.device_mesh.get_local_rank(), param.device_mesh.size())
        if id(param) not in managed:
            why = "it is a DTensor that fully_shard did not lay out (tensor parallelism?)"
        elif param.device_mesh.ndim != 1 or tuple(param.placements) != (Shard(0),):
            why = f"it is laid out as {tuple(param.placements)} on a {param.device_mesh.ndim}-D mesh (HSDP?)"
        elif param.device_mesh != mesh or mesh.size() != world:
            why = f"its mesh is not one mesh of all {world} ranks"
        elif rows[1] - rows[0] != local(param).shape[0]:
            held = local(param).shape[0]
            why = f"this rank holds {held} rows, not rows {rows[0]}:{rows[1]} (uneven sharding)"
        else:
            continue
        raise ConfigError(
            f"DSD supports FSDP2 (fully_shard: Shard(0) on a one-dimensional mesh of every rank) but not "
            f"{t.name}: {why}; use fully_shard alone, or DDP"
        )
    whole = [t.name for t in tensors if not is_dtensor(t.param)]
    if whole:
        raise ConfigError(
            f"DSD under FSDP2 needs every selected tensor sharded, but {whole[0]} (and {len(whole) - 1} "
            "more) is whole: call fully_shard on the model itself (its root), or exclude= it"
        )
    return Sharded(mesh, group)
