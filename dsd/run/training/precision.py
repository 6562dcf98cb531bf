"""Mixed precision for the loop: one object, simply switched off where it does not apply.

On CUDA the loop trains under ``torch.autocast`` (bf16 where the GPU supports it, else fp16);
fp16 also needs a loss scaler so that small gradients do not underflow. On the CPU, and with
``--amp off``, both are disabled: the autocast context does nothing and the disabled
``GradScaler`` passes the loss, the unscale and the step straight through, so the loop has one
code path instead of branches on whether a scaler exists.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision)."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


class Precision:
    """Autocast and the fp16 loss scaler of one run."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device = device
        self.dtype = autocast_dtype(amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Forward passes run inside this (a no-op in full precision)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)
