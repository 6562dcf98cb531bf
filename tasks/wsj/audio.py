"""Reading audio: WAV / FLAC through ``soundfile``, NIST SPHERE through ``sph2pipe``, 16 kHz out.

torchaudio 2.11's own loader needs torchcodec, so every file is read with ``soundfile``
(libsndfile). WSJ's ``.wv1`` files are NIST SPHERE, most of them shorten-compressed, which
libsndfile cannot decode: ``sph2pipe`` (LDC's converter, shipped with Kaldi) turns them into
WAV at preparation time when it is on the PATH; otherwise preparation stops with
``SphereConversionError``, whose message says how to convert the corpus.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from dsd.errors import DataError, UserError
from tasks.wsj.features import SAMPLE_RATE

SPHERE_MAGIC = b"NIST_1A"
SPH2PIPE = "sph2pipe"


class AudioError(DataError):
    """An audio file that cannot be used; the message names the file."""


class EmptyAudioError(AudioError):
    """An audio file that decodes to no sample at all."""


class SphereConversionError(UserError, RuntimeError):
    """A NIST SPHERE file and no ``sph2pipe`` to convert it; the message says what to do."""


def is_sphere(path: Path) -> bool:
    """Whether ``path`` starts with a NIST SPHERE header."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SPHERE_MAGIC)) == SPHERE_MAGIC
    except OSError:
        return False


def sphere_header(path: Path) -> dict[str, str]:
    """The fields of a NIST SPHERE header (``sample_rate``, ``sample_coding``, ...) as text."""
    with open(path, "rb") as handle:
        if handle.readline().strip() != SPHERE_MAGIC:
            raise AudioError(f"{path}: not a NIST SPHERE file (no {SPHERE_MAGIC.decode()} header)")
        size = int(handle.readline().strip())
        text = handle.read(max(0, size - handle.tell())).decode("ascii", errors="replace")
    fields = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if parts and parts[0] == "end_head":
            break
        if len(parts) == 3:
            fields[parts[0]] = parts[2]
    return fields


def sphere_conversion_help(path: Path, corpus_dir: Path | None = None) -> str:
    coding = sphere_header(path).get("sample_coding", "pcm")
    root = corpus_dir or path.parent
    return (
        f"{path} is NIST SPHERE audio (sample_coding {coding}), which soundfile cannot decode, and "
        f"'{SPH2PIPE}' is not on the PATH. Either install sph2pipe (it ships with Kaldi as "
        "tools/sph2pipe_v2.5, or build it from LDC's sph2pipe sources) and run the preparation "
        "again (it then writes WAV copies under the output folder), or convert the corpus once, "
        "leaving a .wav beside each .wv1, which the preparation reads instead:\n"
        f'  find {root} -iname \'*.wv1\' | while read -r f; do sph2pipe -f wav "$f" "${{f%.*}}.wav"; done'
    )


def sph2pipe_available() -> bool:
    return shutil.which(SPH2PIPE) is not None


def convert_sphere(src: Path, dst: Path, corpus_dir: Path | None = None) -> None:
    """``sph2pipe -f wav src dst``, atomically (a failed conversion leaves no ``dst``)."""
    if not sph2pipe_available():
        raise SphereConversionError(sphere_conversion_help(src, corpus_dir))
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        done = subprocess.run([SPH2PIPE, "-f", "wav", str(src), tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise AudioError(f"{src}: sph2pipe failed ({done.returncode}): {done.stderr.strip()}")
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the file's sample rate (first channel if several)."""
    if is_sphere(path):
        raise AudioError(
            f"{path}: NIST SPHERE audio is converted at preparation time (dsd-suite prepare wsj); "
            "the manifest should point to the converted WAV"
        )
    if not Path(path).is_file():
        raise AudioError(f"{path}: not found")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"{path}: unreadable audio ({err})") from None
    if samples.shape[0] == 0:
        raise EmptyAudioError(f"{path}: empty audio (0 samples)")
    return np.ascontiguousarray(samples[:, 0]), int(rate)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling from ``rate`` to ``target`` Hz (no-op when equal)."""
    if rate == target:
        return samples
    divisor = gcd(rate, target)
    return resample_poly(samples, target // divisor, rate // divisor).astype(np.float32)
