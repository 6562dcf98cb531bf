"""The engine's state beside a Trainer checkpoint when the model is sharded (FSDP2).

Each rank holds only its rows of every mask, so no rank can write them all into one file: every
rank saves its rows with ``torch.distributed.checkpoint`` (DCP) into a folder of the checkpoint,
and the callback's own file (written by rank 0) names that folder. DCP reshards on load, so a run
resumes at another world size with the same masks. Needs torch alone.
"""

from __future__ import annotations

import os

from dsd.dtensor import is_dtensor
from dsd.engine import DSD

#: The folder, inside a Trainer checkpoint, that holds a sharded engine's state.
ENGINE_DIR = "dsd_engine"


def is_sharded(engine: DSD) -> bool:
    """Whether the engine's tensors are FSDP2 shards (its state must be saved by every rank)."""
    return any(is_dtensor(t.param) for t in engine.tensors)


def save(engine: DSD, folder: str) -> str:
    """Save the engine's state into ``folder/ENGINE_DIR``; every rank calls it. Returns the
    folder's name, for the file that points to it."""
    from torch.distributed import checkpoint as dcp

    dcp.save(engine.state_dict(), checkpoint_id=os.path.join(folder, ENGINE_DIR))
    return ENGINE_DIR


def load(engine: DSD, folder: str, name: str) -> None:
    """Load the engine's state from ``folder/name`` (saved by ``save`` at any world size); every
    rank calls it. DCP fills the engine's own state (a slot for every mask) in place."""
    from torch.distributed import checkpoint as dcp

    state = engine.state_dict()
    dcp.load(state, checkpoint_id=os.path.join(folder, name))
    engine.load_state_dict(state)
