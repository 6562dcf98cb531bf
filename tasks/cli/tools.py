"""The commands beside the study: ``prepare`` (a speech corpus into manifests) and ``bench``."""

from __future__ import annotations

import importlib
from pathlib import Path

from tasks.cli import arguments
from tasks.cli.errors import UsageError

#: ``dsd-suite bench <name>`` -> the module whose ``main(argv)`` runs it.
BENCHES = {
    "engine": "dsd.bench.engine",
    "loop": "dsd.bench.loop",
    "lock": "dsd.bench.lock",
    "imagenet": "tasks.imagenet.bench",
    "launch": "tasks.cli.bench_launch",
}


def cmd_prepare(argv: list[str]) -> int:
    """Turn a raw speech corpus into the suite's manifests, once (``run wsj --data OUT``)."""
    parser = arguments.parser("dsd-suite prepare wsj", "WSJ (LDC) or LibriSpeech -> JSON-lines manifests")
    parser.add_argument("task", choices=["wsj"])
    parser.add_argument("--corpus", default="auto", choices=["auto", "wsj", "librispeech"])
    parser.add_argument("--src", type=Path, required=True, help="the corpus as distributed")
    parser.add_argument("--out", type=Path, required=True, help="where the manifests go")
    parser.add_argument("--force", action="store_true", help="prepare again even if finished")
    args = parser.parse_args(argv)
    from tasks.wsj import prepare

    corpus = prepare.detect_corpus(args.src) if args.corpus == "auto" else args.corpus
    manifests = prepare.prepare_manifests(corpus, args.src, args.out, force=args.force)
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """Benchmarks: ``engine`` (dsd.bench.engine), ``loop`` (dsd.bench.loop), ``lock`` (a run's lock,
    dsd.bench.lock), ``imagenet`` (data loading), ``launch`` (a job's submission to first step)."""
    if not argv or argv[0] not in BENCHES:
        raise UsageError(f"dsd-suite bench: name one of {', '.join(BENCHES)} (then its own flags)")
    return importlib.import_module(BENCHES[argv[0]]).main(argv[1:]) or 0
