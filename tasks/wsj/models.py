"""DeepSpeech 1 and a DeepSpeech 2 style model: spectrogram frames in, CTC logits out.

Both take ``(features, lengths)`` — features (batch, frames, 161), lengths in frames — and
return ``(logits, output_lengths)`` with logits (batch, output frames, 29). Pruning (the paper's
rule for speech: only fully connected and recurrent weights) finds every weight matrix of
both models in ``nn.Linear`` / ``nn.GRU`` modules; DS2's convolutions are left dense by the
adapter's ``prune_selection``.

**DeepSpeech 1** (Hannun et al. 2014; the DSD paper's ≈ 8.1 M parameters at width 1024):
11-frame context windows (5 frames each side, zero-padded at the ends), three fully connected
layers with clipped ReLU ``min(max(x, 0), 20)``, one bidirectional recurrent layer, one fully
connected layer, and the output layer. The recurrent layer is DS1's: one input projection
shared by both directions, a forward and a backward clipped-ReLU recurrence, and their
**sum** (DS1's ``h_f + h_b``, which keeps the next layer's width at ``hidden``). Counting
parameters that way gives 8.14 M at width 1024, the paper's figure. ``stride`` > 1 keeps every
``stride``-th context window, shortening the recurrence (``stride=1`` is every frame).

**DeepSpeech 2 style** (Amodei et al. 2016): two 2-D convolutions over (frequency, time) with
DS2's kernels — 41x11 stride 2x2, then 21x11 stride 2x1 (``conv_kernels`` changes the extents,
never the strides), ``conv_channels`` each (DS2: 32) — each followed by BatchNorm and clipped
ReLU; a stack of bidirectional recurrent layers whose
directions are summed (as DS2); one fully connected layer; the output layer. ``rnn="gru"``
(DS2 found GRUs better for its English models) uses ``nn.GRU`` (one per direction) and
applies BatchNorm to the input of every recurrent layer after the first (as deepspeech.pytorch
does, since ``nn.GRU`` does not expose DS2's normalisation of ``W x`` inside the cell).
``rnn="rnn"`` uses DS2's simple clipped-ReLU recurrence with sequence-wise BatchNorm on ``W x``,
exactly as DS2 writes it; at 7 x 1760 that variant has 67.7 M parameters, the size the DSD
paper quotes, whereas 7 x 1760 GRUs would have about 3 times as many. All BatchNorms after the
convolutions see only the real (unpadded) frames of a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from dsd.errors import ConfigError
from tasks.wsj.features import N_BINS
from tasks.wsj.text import NUM_CLASSES

#: DS2's two convolutions, (frequency, time) extents: 41x11 (stride 2x2), then 21x11 (stride 2x1).
DS2_KERNELS = ((41, 11), (21, 11))


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(batch, frames) bool: True on the real frames of each sequence."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class ClippedReLU(nn.Hardtanh):
    """``min(max(x, 0), clip)``: DeepSpeech's activation."""

    def __init__(self, clip: float = 20.0) -> None:
        super().__init__(0.0, clip)


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the features of the real frames only: (batch, frames, features) in/out."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = torch.zeros_like(x)
        out[mask] = super().forward(x[mask])
        return out


class ClippedBiRNN(nn.Module):
    """A bidirectional clipped-ReLU recurrent layer with a shared input projection, summed.

    ``h_f[t] = clip(W x[t] + U_f h_f[t-1])``, ``h_b[t] = clip(W x[t] + U_b h_b[t+1])``, output
    ``h_f + h_b``. The backward recurrence of a shorter sequence starts at its own last frame
    (its state is zeroed over the padding). ``norm=True`` normalises ``W x`` (DS2).
    """

    def __init__(self, input_size: int, hidden: int, clip: float = 20.0, norm: bool = False) -> None:
        super().__init__()
        self.clip = clip
        self.input = nn.Linear(input_size, hidden, bias=not norm)
        self.norm = MaskedBatchNorm(hidden) if norm else None
        self.forward_hh = nn.Linear(hidden, hidden, bias=False)
        self.backward_hh = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(lengths, x.shape[1])
        projected = self.input(x)
        if self.norm is not None:
            projected = self.norm(projected, mask)
        # unbind, not steps[t]: the backward of T slices would allocate T full-size zero tensors
        steps = projected.transpose(0, 1).unbind(0)  # frames x (batch, hidden)
        keep = mask.transpose(0, 1).unsqueeze(-1).to(projected.dtype).unbind(0)
        u_f, u_b = self.forward_hh.weight.t(), self.backward_hh.weight.t()
        state = projected.new_zeros(projected.shape[0], projected.shape[2])
        forward = []
        for step in steps:
            state = torch.addmm(step, state, u_f).clamp(0.0, self.clip)
            forward.append(state)
        state = projected.new_zeros(projected.shape[0], projected.shape[2])
        backward = [state] * len(steps)
        for t in range(len(steps) - 1, -1, -1):
            state = torch.addmm(steps[t], state, u_b).clamp(0.0, self.clip) * keep[t]
            backward[t] = state
        return (torch.stack(forward) + torch.stack(backward)).transpose(0, 1)


class DeepSpeech1(nn.Module):
    """DeepSpeech 1: context windows, 3 clipped-ReLU FC layers, a BiRNN, an FC layer, output."""

    def __init__(
        self,
        hidden: int = 1024,
        context: int = 5,
        stride: int = 1,
        clip: float = 20.0,
        dropout: float = 0.0,
        n_bins: int = N_BINS,
        n_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        if context < 0 or stride < 1:
            raise ConfigError(f"need context >= 0 and stride >= 1, got context={context}, stride={stride}")
        self.context, self.stride = context, stride
        window = n_bins * (2 * context + 1)
        self.fc1 = nn.Linear(window, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, hidden)
        self.rnn = ClippedBiRNN(hidden, hidden, clip)
        self.fc5 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.act = ClippedReLU(clip)
        self.drop = nn.Dropout(dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths - 1, self.stride, rounding_mode="floor") + 1

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.context
        padded = nn.functional.pad(features, (0, 0, c, c))  # zero frames before and after
        windows = padded.unfold(1, 2 * c + 1, self.stride)  # (batch, out frames, bins, 2c+1)
        x = windows.transpose(2, 3).flatten(2)  # frame-major: [t-c, ..., t+c] x bins
        out_lengths = self.output_lengths(lengths)
        for fc in (self.fc1, self.fc2, self.fc3):
            x = self.drop(self.act(fc(x)))
        x = self.rnn(x, out_lengths)
        x = self.drop(self.act(self.fc5(x)))
        return self.out(x), out_lengths


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of (batch, frames, features) reversed over its own real frames; padding stays."""
    frames = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(frames < lengths[:, None], lengths[:, None] - 1 - frames, frames)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class BiGRU(nn.Module):
    """A bidirectional GRU layer whose two directions are summed; optional BatchNorm of its input.

    Two unidirectional ``nn.GRU``: the backward one reads each sequence reversed over its own
    length, so both directions start at real frames. (Padded input, not a ``PackedSequence``:
    on CPU the packed GRU's backward pass costs time quadratic in the number of frames.)
    """

    def __init__(self, input_size: int, hidden: int, norm: bool) -> None:
        super().__init__()
        self.norm = MaskedBatchNorm(input_size) if norm else None
        self.forward_gru = nn.GRU(input_size, hidden, batch_first=True)
        self.backward_gru = nn.GRU(input_size, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x, frame_mask(lengths, x.shape[1]))
        forward, _ = self.forward_gru(x)
        backward, _ = self.backward_gru(reverse_within_lengths(x, lengths))
        return forward + reverse_within_lengths(backward, lengths)


class DeepSpeech2(nn.Module):
    """DeepSpeech 2 style: 2 conv layers, bidirectional recurrent layers, an FC layer, output."""

    def __init__(
        self,
        hidden: int = 1760,
        rnn_layers: int = 7,
        rnn: str = "rnn",
        conv_channels: int = 32,
        conv_kernels: tuple[tuple[int, int], tuple[int, int]] = DS2_KERNELS,
        clip: float = 20.0,
        dropout: float = 0.0,
        n_bins: int = N_BINS,
        n_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        if rnn not in ("gru", "rnn"):
            raise ConfigError(f"rnn must be 'gru' or 'rnn', got {rnn!r}")
        if rnn_layers < 1:
            raise ConfigError(f"need at least one recurrent layer, got {rnn_layers}")
        self.rnn_kind = rnn
        (f1, t1), (f2, t2) = conv_kernels
        if min(f1, t1, f2, t2) < 1 or t1 % 2 == 0 or t2 % 2 == 0:
            raise ConfigError(f"conv kernels need positive sizes and odd time extents, got {conv_kernels}")
        channels = conv_channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (f1, t1), stride=(2, 2), padding=(f1 // 2, t1 // 2), bias=False),
            nn.BatchNorm2d(channels),
            ClippedReLU(clip),
            nn.Conv2d(channels, channels, (f2, t2), stride=(2, 1), padding=(f2 // 2, t2 // 2), bias=False),
            nn.BatchNorm2d(conv_channels),
            ClippedReLU(clip),
        )
        bins = (n_bins + 2 * (f1 // 2) - f1) // 2 + 1
        bins = (bins + 2 * (f2 // 2) - f2) // 2 + 1
        size = conv_channels * bins
        layers: list[nn.Module] = []
        for i in range(rnn_layers):
            if rnn == "gru":
                layers.append(BiGRU(size, hidden, norm=i > 0))
            else:
                layers.append(ClippedBiRNN(size, hidden, clip, norm=True))
            size = hidden
        self.rnns = nn.ModuleList(layers)
        self.fc_norm = MaskedBatchNorm(hidden)
        self.fc = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.act = ClippedReLU(clip)
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths - 1, 2, rounding_mode="floor") + 1  # the first conv's time stride

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (batch, 1, bins, frames), channels-last: about 3x faster convolutions on CPU
        x = features.transpose(1, 2).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        out_lengths = self.output_lengths(lengths)
        for i, layer in enumerate(self.conv):
            x = layer(x)
            if i in (2, 5):  # after each conv block: zero the padding frames again
                x = x * frame_mask(out_lengths, x.shape[-1])[:, None, None, :].to(x.dtype)
        x = x.flatten(1, 2).transpose(1, 2)  # (batch, frames, channels x bins)
        frames = x.shape[1]
        for layer in self.rnns:
            x = layer(x, out_lengths)
        mask = frame_mask(out_lengths, frames)
        x = self.drop(self.act(self.fc(self.fc_norm(x, mask))))
        return self.out(x), out_lengths


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
