"""Engine benchmarks: what holding a DSD mask costs, beside ``torch.nn.utils.prune``.

    python -m dsd.bench.engine [--device cpu|cuda|auto] [--repeats 30] [--out results/bench] [--quick]

Four figures, each printed beside its target (PASS / MISS) and written as JSON under ``--out``:

1. Step time of the sparse phase ÷ the dense step (forward + backward + SGD-momentum step), on
   torchvision ResNet-18 and a 2-layer LSTM: the engine's two optimizer hooks are its only cost.
2. Step time ours ÷ the same masking done with ``torch.nn.utils.prune.l1_unstructured`` (same
   tensors, same count of zeros), which recomputes ``weight = weight_orig * weight_mask`` in a
   forward pre-hook.
3. Bytes held per pruned weight beyond the dense model: our bool masks against prune's
   ``weight_orig`` + float ``weight_mask`` + the recomputed ``weight``; and how many float copies
   of each weight are kept.
4. ``prune()`` wall time and peak extra memory on VGG-16 (138 M weights) and ResNet-50, layer and
   global scope.

Step times are measured in one run with the variants interleaved round-robin (the start rotates
every round), so slow phases of a shared machine hit all of them alike; figures are medians.
How time and memory are read (``perf_counter`` or CUDA events; resident set or CUDA allocation)
is ``dsd.bench.probes``; the models are ``dsd.bench.models``; figure 4 is ``dsd.bench.prune``.
This module holds figures 1 to 3, the checks against the targets, the table and the command.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsd import files
from dsd.bench.models import SPARSITY, StepModel, prune_models, step_models
from dsd.bench.passes import bench_passes
from dsd.bench.probes import HookClock, Timer, device_kind, environment
from dsd.bench.prune import bench_prune
from dsd.engine import DSD
from dsd.masks import pruned_count
from dsd.selection import select_prunable

SCHEMA = 1
VARIANTS = ("dense", "dsd", "torch_prune")

#: How the table names each path of the passes figure (``dsd.bench.passes``).
PATH_NAMES = {
    "step": "inside step()", "whole": "fwd+bwd+step", "clip": "with clip_grad_norm_",
    "trainer": "HF Trainer path", "trainer-accum4": "HF Trainer path, accumulation 4",
}  # fmt: skip

TARGETS = {
    "sparse_over_dense": 1.03,
    "ours_over_torch_prune": 1.0,
    "mask_bytes_per_weight": 1.0,
    "layer_prune_seconds": 3.0,
    "global_over_layer": 2.0,
    "working_memory_over_largest_tensor": 2.0,
}


# ----------------------------------------------------------------------------- step time
def _torch_prune(model: nn.Module, names: list[str], sparsity: float) -> None:
    """Mask the same tensors with ``torch.nn.utils.prune`` at the same count of zeros."""
    from torch.nn.utils import prune

    for name in names:
        module_name, _, param_name = name.rpartition(".")
        module = model.get_submodule(module_name)
        amount = pruned_count(getattr(module, param_name).numel(), sparsity)
        prune.l1_unstructured(module, param_name, amount=amount)


def _trainer(model: nn.Module, spec: StepModel, device: torch.device) -> tuple[Callable[[], None], Any]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    inputs, target = spec.batch(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        spec.loss(model(inputs), target).backward()
        optimizer.step()

    return step, optimizer


def bench_steps(spec: StepModel, device: torch.device, repeats: int, warmup: int = 3) -> dict[str, Any]:
    """Median step time of dense, DSD-sparse and torch-prune copies of one model, interleaved."""
    torch.manual_seed(0)
    base = spec.build().to(device)
    models = {variant: copy.deepcopy(base) for variant in VARIANTS}
    del base
    steps, engine, clock = {}, None, None
    for variant, model in models.items():
        model.train()
        if variant == "torch_prune":
            names = [t.name for t in select_prunable(model)]
            _torch_prune(model, names, SPARSITY)
        steps[variant], optimizer = _trainer(model, spec, device)
        if variant == "dsd":
            clock = HookClock(optimizer, device)
            engine = DSD(model, optimizer)
            clock.close(optimizer)
            engine.prune(SPARSITY)
    timer = Timer(device)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_index in range(warmup + repeats):
        order = VARIANTS[round_index % 3 :] + VARIANTS[: round_index % 3]
        for variant in order:
            seconds = timer(steps[variant])
            if round_index >= warmup:
                times[variant].append(seconds)
    assert engine is not None and clock is not None
    hooks = clock.seconds(skip=warmup)
    held = all(
        bool((t.param.detach()[~engine.masks[t.name]] == 0).all()) for t in engine.tensors
    )  # the sparse run really ran sparse
    median = {v: statistics.median(ts) for v, ts in times.items()}
    paired = [d / s for d, s in zip(times["dsd"], times["dense"], strict=True)]
    return {
        "config": spec.config,
        "sparsity": SPARSITY,
        "repeats": repeats,
        "median_s": median,
        "quartiles_s": {v: _quartiles(ts) for v, ts in times.items()},
        "sparse_over_dense": median["dsd"] / median["dense"],
        "sparse_minus_dense_ms": (median["dsd"] - median["dense"]) * 1000,
        # Measured directly, so not lost in the noise of two step times: the engine's whole cost.
        "engine_hooks_ms_median": statistics.median(hooks) * 1000,
        "engine_hooks_over_dense_step": statistics.median(hooks) / median["dense"],
        "sparse_over_dense_paired_median": statistics.median(paired),
        "ours_over_torch_prune": median["dsd"] / median["torch_prune"],
        "mask_held": held,
        "memory": bytes_held(models, engine),
    }


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]] if values else []
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


# ----------------------------------------------------------------------------- bytes held
def _held_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor a model holds: parameters, buffers, and plain tensor attributes (where
    ``torch.nn.utils.prune`` keeps the recomputed weight), with qualified names."""
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, p in module.named_parameters(recurse=False):
            yield prefix + name, p
        for name, b in module.named_buffers(recurse=False):
            yield prefix + name, b
        for name, value in vars(module).items():
            if torch.is_tensor(value):
                yield prefix + name, value


def _storage_bytes(tensors: list[torch.Tensor]) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def bytes_held(models: dict[str, nn.Module], engine: DSD) -> dict[str, Any]:
    """Bytes held beyond the dense model per pruned weight, and float copies of each weight."""
    names = [t.name for t in engine.tensors]
    pruned_weights = sum(t.numel for t in engine.tensors)
    held = {v: list(_held_tensors(m)) for v, m in models.items()}
    held["dsd"] += [(f"{n}.mask", m) for n, m in engine.masks.items()]  # the engine's own
    dense_bytes = _storage_bytes([t for _, t in held["dense"]])
    result: dict[str, Any] = {"pruned_weights": pruned_weights}
    for variant in ("dsd", "torch_prune"):
        extra = _storage_bytes([t for _, t in held[variant]]) - dense_bytes
        copies = []
        for name in names:
            module_name, _, param_name = name.rpartition(".")
            prefix = f"{module_name}.{param_name}" if module_name else param_name
            shape = models["dense"].get_parameter(name).shape
            floats = {
                t.untyped_storage().data_ptr()
                for n, t in held[variant]
                if n.startswith(prefix)
                and not n.endswith("mask")
                and t.is_floating_point()
                and t.shape == shape
            }
            copies.append(len(floats) - 1)
        result[variant] = {
            "extra_bytes": extra,
            "extra_bytes_per_weight": extra / pruned_weights,
            "weight_copies": max(copies),
        }
    return result


# ----------------------------------------------------------------------------- the report
def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each figure beside its target, as rows for the table and the JSON."""
    rows = []

    def add(
        figure: str, value: float, target: float, unit: str = "", interval: list[float] | None = None
    ) -> None:
        row = {"figure": figure, "value": value, "target": target, "unit": unit, "pass": value <= target}
        rows.append(row if interval is None else {**row, "interval": interval})

    for name, steps in result["step_time"].items():
        add(f"{name}: step time, sparse ÷ dense", steps["sparse_over_dense"], TARGETS["sparse_over_dense"])
        add(
            f"{name}: step time, ours ÷ torch.nn.utils.prune",
            steps["ours_over_torch_prune"],
            TARGETS["ours_over_torch_prune"],
        )
        memory = steps["memory"]
        add(f"{name}: extra bytes per pruned weight, ours", memory["dsd"]["extra_bytes_per_weight"], 1.0, "B")
        add(f"{name}: float copies of each weight, ours", memory["dsd"]["weight_copies"], 0)
    for name, passes in result.get("passes", {}).items():
        for path, value in passes["cost_in_passes"].items():
            add(f"{name}: engine cost per sparse step ({PATH_NAMES[path]}), in masked passes", value,
                passes["target_passes"], interval=passes["cost_interval_in_passes"][path])  # fmt: skip
        for path in ("trainer", "trainer-accum4"):  # where the engine works inside backward
            add(f"{name}: ... {PATH_NAMES[path]}, timed inside the engine (its floor)",
                passes["direct_in_passes"][path], passes["target_passes"])  # fmt: skip
    for name, cost in result["prune"].items():
        add(
            f"{name}: prune() layer scope",
            cost["layer"]["seconds_median"],
            TARGETS["layer_prune_seconds"],
            "s",
        )
        add(f"{name}: prune() global ÷ layer", cost["global_over_layer"], TARGETS["global_over_layer"])
        for scope in ("layer", "global"):
            add(
                f"{name}: prune() working memory ({scope}) ÷ largest tensor",
                cost[scope]["working_over_largest_tensor"],
                TARGETS["working_memory_over_largest_tensor"],
            )
    return rows


def table(result: dict[str, Any]) -> str:
    """A short table: figure, value, target, PASS/MISS; then the torch-prune comparison."""
    width = max(len(r["figure"]) for r in result["checks"])
    lines = [f"{'figure':<{width}}  {'value':>9}  {'target':>9}", "-" * (width + 28)]
    for r in result["checks"]:
        value = (
            f"{r['value']:.3f}{r['unit']}" if isinstance(r["value"], float) else f"{r['value']}{r['unit']}"
        )
        target = f"≤ {r['target']}{r['unit']}"
        mark = "PASS" if r["pass"] else "MISS"
        if "interval" in r:  # a median of paired step-time differences: how far the noise moves it
            mark += f"  (95% interval {r['interval'][0]:.2f} to {r['interval'][1]:.2f})"
        lines.append(f"{r['figure']:<{width}}  {value:>9}  {target:>9}  {mark}")
    lines.append("")
    for name, steps in result["step_time"].items():
        memory = steps["memory"]["torch_prune"]
        median = steps["median_s"]
        lines.append(
            f"{name}: median step dense {median['dense']:.4f}s, dsd {median['dsd']:.4f}s "
            f"({steps['sparse_minus_dense_ms']:+.1f} ms; inside the engine's hooks "
            f"{steps['engine_hooks_ms_median']:.1f} ms = {steps['engine_hooks_over_dense_step']:.1%} of "
            f"the dense step), torch prune {median['torch_prune']:.4f}s "
            f"({steps['repeats']} interleaved rounds); torch prune holds "
            f"{memory['extra_bytes_per_weight']:.1f} extra B/weight and {memory['weight_copies']} float "
            "copy of each weight"
        )
    mib = 2**20
    for name, passes in result.get("passes", {}).items():
        costs = ", ".join(f"{PATH_NAMES[p]} {ms:+.2f} ms" for p, ms in passes["cost_ms"].items())
        inside = ", ".join(f"{PATH_NAMES[p]} {v:.2f}" for p, v in passes["direct_in_passes"].items())
        lines.append(
            f"{name}: one masked pass over {passes['pruned_weights']:,} pruned gradients "
            f"{passes['masked_pass_ms']:.2f} ms; engine cost per sparse step: {costs}; timed inside the "
            f"engine, in passes: {inside}"
        )
    for name, cost in result["prune"].items():
        layer, glob = cost["layer"], cost["global"]
        lines.append(
            f"{name}: {cost['weights']:,} weights in {cost['tensors']} tensors (largest "
            f"{cost['largest_tensor_bytes'] / mib:.0f} MiB); prune() layer {layer['seconds_median']:.2f}s "
            f"(CPU {statistics.median(layer['cpu_seconds']):.2f}s), global {glob['seconds_median']:.2f}s "
            f"(CPU {statistics.median(glob['cpu_seconds']):.2f}s); peak extra memory layer / global "
            f"{layer['peak_extra_bytes'] / mib:.0f} / {glob['peak_extra_bytes'] / mib:.0f} MiB, of which the "
            f"masks kept {layer['masks_bytes'] / mib:.0f} MiB"
        )
    lines.append(f"memory: {next(iter(result['prune'].values()))['memory_method']}")
    lines.append("working memory = peak extra memory minus the masks prune() keeps (its result)")
    return "\n".join(lines)


def run(device: torch.device, repeats: int, quick: bool, prune_repeats: int) -> dict[str, Any]:
    """Every figure on ``device``, with the machine it was measured on and the checks."""
    started = dt.datetime.now(dt.timezone.utc)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "quick": quick,
        "started": started.isoformat(timespec="seconds"),
        "environment": environment(device),
        "targets": TARGETS,
        "step_time": {},
        "passes": {},
        "prune": {},
    }
    for spec in step_models(quick):
        rounds = max(2, repeats // spec.config.get("rounds_divisor", 1))
        print(f"timing steps: {spec.name} ({rounds} interleaved rounds)...", flush=True)
        result["step_time"][spec.name] = bench_steps(spec, device, rounds)
        print(f"timing the engine's cost in masked passes: {spec.name} ({rounds} rounds)...", flush=True)
        result["passes"][spec.name] = bench_passes(spec, device, rounds)
    for name, build in prune_models(quick).items():
        print(f"timing prune(): {name} ({prune_repeats} runs per scope)...", flush=True)
        result["prune"][name] = bench_prune(build, device, prune_repeats)
    with contextlib.suppress(OSError):
        result["environment"]["load_average_at_end"] = list(os.getloadavg())
    result["seconds"] = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    result["checks"] = checks(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsd.bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    parser.add_argument(
        "--repeats", type=int, default=0, help="interleaved step rounds (default 30; quick 3)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench"), help="folder of the JSON result")
    parser.add_argument(
        "--quick", action="store_true", help="tiny models, few repeats: checks the bench runs"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.repeats < 0 or args.threads < 0:
        parser.error("--repeats and --threads take a positive number")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 30)
    result = run(device, repeats, args.quick, prune_repeats=1 if args.quick else 3)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = args.out / f"engine-{device_kind(device)}-{stamp}{'-quick' if args.quick else ''}.json"
    files.atomic_write_json(path, result)
    print()
    print(table(result))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
