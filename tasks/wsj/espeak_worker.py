"""eSpeak NG synthesis for the stand-in, run as a separate script: ``tasks.wsj.standin`` starts it.

A plain script (no import of ``tasks`` or ``torch``) so that a fresh process per job starts in a
fraction of a second: eSpeak keeps state from one utterance to the next, and only a fresh
process makes every utterance independent of which job ran before it in the same process.

Reads a job from stdin as JSON, ``{"folder": ..., "lines": [[id, text, voice, rate, pitch,
seed], ...]}``, writes ``<folder>/<id>.wav`` (16 kHz, 16-bit, silence trimmed) and prints
``{id: duration_seconds}`` as JSON.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

import numpy as np

ESPEAK_RATE = 22_050
OUTPUT_RATE = 16_000


def trim(samples: np.ndarray, threshold: float = 1e-3, margin_s: float = 0.05) -> np.ndarray:
    """Drop leading and trailing silence, keeping ``margin_s`` on each side."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples
    margin = int(margin_s * OUTPUT_RATE)
    return samples[max(0, loud[0] - margin) : loud[-1] + margin + 1]


class Espeak:
    """The few eSpeak NG calls we need, through ctypes, in synchronous mode."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    RATE, PITCH = 1, 3  # espeak_PARAMETER values
    SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(self.SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"eSpeak NG initialised at {rate} Hz, expected {ESPEAK_RATE}")
        self.lib = lib
        self.chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count: int, events) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> np.ndarray:
        """Float32 samples at 16 kHz."""
        from scipy.signal import resample_poly

        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG rejected voice {voice!r}")
        lib.espeak_SetParameter(self.RATE, rate, 0)
        lib.espeak_SetParameter(self.PITCH, pitch, 0)
        lib.espeak_ng_SetRandSeed(seed)
        self.chunks = []
        data = text.encode()
        spoken = lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
        if spoken != 0 or lib.espeak_Synchronize() != 0:
            raise RuntimeError(f"eSpeak NG failed to speak {text!r} with voice {voice!r}")
        if not self.chunks:
            raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
        samples = np.concatenate(self.chunks).astype(np.float32) / 32768.0
        return resample_poly(samples, 320, 441).astype(np.float32)  # 22 050 -> 16 000 Hz


def main() -> None:
    import soundfile

    job = json.load(sys.stdin)
    synth = Espeak()
    durations = {}
    for utt_id, text, voice, rate, pitch, seed in job["lines"]:
        samples = trim(synth.speak(text, voice, rate, pitch, seed))
        soundfile.write(os.path.join(job["folder"], f"{utt_id}.wav"), samples, OUTPUT_RATE, subtype="PCM_16")
        durations[utt_id] = len(samples) / OUTPUT_RATE
    json.dump(durations, sys.stdout)


if __name__ == "__main__":
    main()
