"""DeepSpeech's input: a normalised log power spectrogram, 161 bins per 10 ms frame at 16 kHz.

20 ms Hamming windows (320 samples) every 10 ms (160 samples), FFT size 320: 161 frequency
bins from 0 to 8 kHz, the paper's DeepSpeech input. Each bin is log(power + 1e-8) (a floor
80 dB under full scale keeps digital silence finite), then normalised **per utterance and per
bin** to zero mean and unit variance (cepstral-mean-and-variance style). Per-utterance
statistics need no pass over the training set and make the features independent of recording
level and channel, which matters for WSJ's mixed microphones and for the stand-in's voices.
"""

from __future__ import annotations

import torch
import torchaudio

SAMPLE_RATE = 16_000
WINDOW = 320  # 20 ms
HOP = 160  # 10 ms
N_BINS = WINDOW // 2 + 1  # 161
LOG_FLOOR = 1e-8


class LogSpectrogram(torch.nn.Module):
    """Samples (float, 16 kHz, mono) -> normalised log spectrogram of shape (frames, 161)."""

    def __init__(self) -> None:
        super().__init__()
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=WINDOW, win_length=WINDOW, hop_length=HOP, window_fn=torch.hamming_window, power=2.0
        )

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.dim() != 1:
            raise ValueError(f"expected mono samples of shape (n,), got {tuple(samples.shape)}")
        power = self.spectrogram(samples.float())  # (161, frames)
        logs = torch.log(power + LOG_FLOOR).transpose(0, 1)  # (frames, 161)
        mean = logs.mean(0, keepdim=True)
        std = logs.std(0, unbiased=False, keepdim=True)
        return (logs - mean) / (std + 1e-5)


def num_frames(num_samples: int) -> int:
    """Frames the spectrogram gives for ``num_samples`` samples (centred windows)."""
    return num_samples // HOP + 1


def frames_of_duration(seconds: float) -> int:
    """Frames of an utterance ``seconds`` long at 16 kHz (from a manifest's duration)."""
    return num_frames(round(seconds * SAMPLE_RATE))
