"""The stand-in corpus: real synthesized speech from eSpeak NG, in the same manifest format.

WSJ is licensed and LibriSpeech cannot be downloaded here, so the stand-in speaks random
sentences of ``min_words``-``max_words`` words drawn uniformly from a fixed vocabulary with
eSpeak NG (the ``espeakng-loader`` wheel ships the library and its voices), several voices,
speaking rates and pitches. Training voices and test voices are disjoint, so the test WER
measures generalisation to unseen speakers, as WSJ's speaker-independent test sets do.
Audio is resampled from eSpeak's 22 050 Hz to 16 kHz, trimmed of leading and trailing silence
(keeping 50 ms), and written as 16-bit WAV beside ``train.jsonl`` / ``test.jsonl``; the same
loader as for WSJ reads it.

Determinism: eSpeak's synthesis draws random numbers (seeded per utterance here with
``espeak_ng_SetRandSeed``) and carries state from one utterance to the next. Each job (one
voice of one split) therefore runs in a fresh process (``tasks/wsj/espeak_worker.py``, a
plain script that imports neither ``tasks`` nor torch) in a fixed order, so the corpus is the
same bytes whatever the number of processes running jobs side by side. It is built once per
specification under the cache folder, atomically (``dsd.taskkit.standin.build_once``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, astuple, dataclass
from pathlib import Path

from dsd.errors import ConfigError
from dsd.taskkit.environment import available_cores
from dsd.taskkit.standin import build_once
from tasks.wsj.manifest import Utterance, read_prepared, write_manifest, write_prepared

TRAIN_VOICES = ("en", "en-us", "en+f3", "en+m3", "en-us+f2", "en+klatt")
TEST_VOICES = ("en+f4", "en-us+m6")
WORKER = Path(__file__).with_name("espeak_worker.py")
OUTPUT_RATE = 16_000
GENERATOR_VERSION = 1  # bump when the synthesis changes, so old caches are not reused

#: Common English words, letters and apostrophes only; the stand-in takes the first
#: ``vocabulary`` of them after a fixed shuffle.
_WORD_LIST = """
about above across after again against almost along also always among animal another answer
apple april around autumn away baby back bank before behind below best better between big bird
black blue board boat body book both bottle bread bridge bright bring brother brown build
business busy buy call came can't car care carry cat center change child city clean clear close
cloud cold color come company could country course cover cross dark day deep didn't dinner
doctor does dog don't door down draw dream drink drive during early earth east easy eight eleven
empty end enough evening every eye face fall family far farm fast father few field fifteen fifty
find fine fire first fish five floor flower follow food foot forest forty four friday friend front
full game garden girl give glass good great green ground group grow half hand happy hard head
hear heart heavy help here high hill history hold home horse hot hour house hundred idea
important inside island it's jump just keep kind king kitchen know lake large last late laugh
learn leave left letter light little live long look lost love low machine make many market may
measure meet member middle might mile milk minute money month moon morning mother mountain move
music near need never new next night nine north nothing number ocean office often old open order
other over page paper park part people perhaps picture piece place plan plant play point poor
power pretty problem pull question quick quiet rain read ready real red remember rest rich right
river road rock room round run same saturday school sea second seven shall ship short should
show side simple since sister six sleep slow small snow soft some song soon sound south speak
spring stand star start station still stone stop story street strong study summer sun sunday
table take talk teacher ten thank think third thirty thousand three through thursday time today
together tomorrow town train tree true tuesday turn twelve twenty two under until upon usually
valley very voice wait walk wall want warm watch water week west white whole why wide wind
window winter without woman wonder wood word work world write yellow yesterday young
"""
WORDS = tuple(_WORD_LIST.split())


@dataclass(frozen=True)
class StandinSpec:
    """What the stand-in corpus holds; its hash names the cache folder."""

    train_utterances: int = 3000
    test_utterances: int = 400
    vocabulary: int = 100
    min_words: int = 3
    max_words: int = 7
    rates: tuple[int, int] = (150, 210)  # words per minute, uniform
    pitches: tuple[int, int] = (25, 75)  # eSpeak's 0-100 scale, uniform
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.vocabulary <= len(WORDS):
            raise ConfigError(f"vocabulary must be in 1..{len(WORDS)}, got {self.vocabulary}")
        if not 1 <= self.min_words <= self.max_words:
            raise ConfigError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if self.train_utterances < 1 or self.test_utterances < 1:
            raise ConfigError("the stand-in needs at least one training and one test utterance")

    @property
    def key(self) -> str:
        payload = json.dumps({**asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:8]

    def words(self) -> list[str]:
        shuffled = sorted(WORDS)
        random.Random(1234).shuffle(shuffled)
        return shuffled[: self.vocabulary]


@dataclass(frozen=True)
class _Line:
    utt_id: str
    text: str
    voice: str
    rate: int
    pitch: int
    seed: int


def plan(spec: StandinSpec) -> dict[str, list[_Line]]:
    """Every utterance to speak, by split (deterministic in ``spec``)."""
    rng = random.Random(spec.seed)
    words = spec.words()
    splits: dict[str, list[_Line]] = {}
    for split, voices, count in (
        ("train", TRAIN_VOICES, spec.train_utterances),
        ("test", TEST_VOICES, spec.test_utterances),
    ):
        lines = []
        for i in range(count):
            voice = voices[i % len(voices)]
            text = " ".join(rng.choice(words) for _ in range(rng.randint(spec.min_words, spec.max_words)))
            lines.append(
                _Line(
                    utt_id=f"{split}-{voice.replace('+', '_')}-{i:05d}",
                    text=text,
                    voice=voice,
                    rate=rng.randint(*spec.rates),
                    pitch=rng.randint(*spec.pitches),
                    seed=rng.randrange(2**31),
                )
            )
        splits[split] = lines
    return splits


def standin_folder(cache_dir: Path, spec: StandinSpec) -> Path:
    """Where ``build_standin`` puts the corpus of ``spec``."""
    return Path(cache_dir) / "wsj-standin" / f"espeak-{spec.key}"


def build_standin(cache_dir: Path, spec: StandinSpec | None = None, processes: int | None = None) -> Path:
    """The stand-in's prepared folder (``train.jsonl``, ``test.jsonl``), built if missing."""
    spec = spec or StandinSpec()
    final = standin_folder(cache_dir, spec)
    return build_once(
        final, lambda work: _speak(work, spec, processes), lambda f: read_prepared(f) is not None
    )


def _speak(work: Path, spec: StandinSpec, processes: int | None) -> None:
    """Synthesize every utterance of ``spec`` into ``work``, then its manifests, ``prepared.json`` last."""
    splits = plan(spec)
    jobs = []
    for split, lines in splits.items():
        (work / "audio" / split).mkdir(parents=True)
        voices = sorted({line.voice for line in lines})
        jobs += [([ln for ln in lines if ln.voice == v], str(work / "audio" / split)) for v in voices]
    processes = processes or max(1, min(len(jobs), available_cores()))
    with ThreadPoolExecutor(processes) as pool:  # threads that each wait on one worker process
        durations: dict[str, float] = {}
        for result in pool.map(_run_worker, jobs):
            durations.update(result)
    counts = {}
    for split, lines in splits.items():
        folder = work / "audio" / split
        utterances = [
            Utterance(ln.utt_id, folder / f"{ln.utt_id}.wav", ln.text, durations[ln.utt_id], OUTPUT_RATE)
            for ln in lines
        ]
        write_manifest(work / f"{split}.jsonl", utterances)
        counts[split] = len(utterances)
    write_prepared(
        work,
        "espeak stand-in",
        counts,
        {},
        spec=asdict(spec),
        voices={"train": list(TRAIN_VOICES), "test": list(TEST_VOICES)},
        hours={s: round(sum(durations[ln.utt_id] for ln in ls) / 3600, 3) for s, ls in splits.items()},
    )


def _run_worker(job: tuple[list[_Line], str]) -> dict[str, float]:
    """Speak one job (one voice of one split) in a fresh ``espeak_worker`` process."""
    lines, folder = job
    folder = os.path.abspath(folder)  # the worker runs inside it: a relative path would resolve twice
    payload = json.dumps({"folder": folder, "lines": [list(astuple(line)) for line in lines]})
    # run_path, not "python espeak_worker.py": the script's folder must not shadow other modules
    script = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", script, str(WORKER)], input=payload, capture_output=True, text=True, cwd=folder
    )
    if done.returncode != 0:
        raise RuntimeError(f"eSpeak NG failed on {len(lines)} lines for {folder}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)
