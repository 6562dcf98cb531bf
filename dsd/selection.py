"""Which tensors DSD prunes: the paper's default rule, and ``include=`` / ``exclude=`` overrides.

The paper prunes every conv, fully connected and recurrent weight matrix except the first conv,
and never biases, norms or embeddings. That is the default here; ``include=`` / ``exclude=``
override it because every task in the paper prunes a different set. Names are the plain model's
``state_dict`` keys, whatever wrapper (DDP, ``torch.compile``) the model is in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

Selector = str | Callable[[str, torch.Tensor], bool]
"""A parameter name, a glob over names (``"features.*.weight"``), or ``f(name, param) -> bool``."""

_CONV_TYPES = (nn.modules.conv._ConvNd,)
_RNN_TYPES = (nn.RNNBase, nn.RNNCellBase)


@dataclass(frozen=True)
class PrunableTensor:
    """One selected tensor: its qualified name, the parameter itself and its owner's type."""

    name: str
    param: nn.Parameter
    module_type: str

    @property
    def numel(self) -> int:
        return self.param.numel()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's own module inside DDP / DataParallel / ``torch.compile`` wrappers.

    Names are reported as the plain model's ``state_dict`` keys, so masks saved from a wrapped
    model apply to the unwrapped one and vice versa.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _matches(selector: Selector, name: str, param: torch.Tensor) -> bool:
    if callable(selector):
        return bool(selector(name, param))
    return name == selector or fnmatch.fnmatchcase(name, selector)


def _as_selectors(value: Selector | Iterable[Selector] | None) -> list[Selector]:
    if value is None:
        return []
    if isinstance(value, str) or callable(value):
        return [value]
    return list(value)


def _default_reason(module: nn.Module, param_name: str, is_first_conv: bool) -> str | None:
    """None when the paper's rule prunes this parameter, else why it does not."""
    if isinstance(module, _CONV_TYPES):
        if param_name != "weight":
            return "conv bias"
        return "first conv (kept dense, as in the paper)" if is_first_conv else None
    if isinstance(module, nn.Linear):
        return None if param_name == "weight" else "linear bias"
    if isinstance(module, _RNN_TYPES):
        return None if param_name.startswith("weight_") else "recurrent bias"
    kind = type(module).__name__
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    if "Norm" in kind:
        return "normalization"
    return f"{kind} parameter (not conv/linear/recurrent)"


def _parameter_uses(model: nn.Module, skip_first_conv: bool) -> dict[int, list[tuple[str, str, str | None]]]:
    """Every parameter's uses, in registration order: ``(name, owner type, reason it is not
    pruned by default or None)`` for each module that holds it (a tied weight has several)."""
    uses: dict[int, list[tuple[str, str, str | None]]] = {}
    first_conv_seen = False
    for module_name, module in unwrap_model(model).named_modules():
        is_first_conv = False
        if isinstance(module, _CONV_TYPES) and not first_conv_seen:
            first_conv_seen = True
            is_first_conv = skip_first_conv
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            reason = _default_reason(module, param_name, is_first_conv)
            uses.setdefault(id(param), []).append((full, type(module).__name__, reason))
    return uses


def considered_parameters(
    model: nn.Module, skip_first_conv: bool = True
) -> Iterator[tuple[str, nn.Parameter, str, str | None]]:
    """Every parameter once, as ``(name, param, module_type, reason_not_default_or_None)``.

    A shared (tied) parameter is reported under its first name, and is pruned by default only if
    every module holding it would prune it: an output layer tied to an embedding table stays
    dense, whichever was registered first. The first conv is the first convolution in
    registration order, which is forward order for torchvision models.
    """
    params = {id(p): p for p in unwrap_model(model).parameters()}
    for pid, uses in _parameter_uses(model, skip_first_conv).items():
        name, owner, _ = uses[0]
        reasons = [(n, r) for n, _, r in uses if r is not None]
        reason = None
        if reasons:
            tied, why = reasons[0]
            reason = why if tied == name else f"{why} (tied: {name} is also {tied})"
        yield name, params[pid], owner, reason


def parameter_names(model: nn.Module) -> dict[int, list[str]]:
    """Every name of every parameter (a tied weight has several), by ``id`` of the parameter."""
    return {pid: [n for n, _, _ in uses] for pid, uses in _parameter_uses(model, False).items()}


def select_prunable(
    model: nn.Module,
    include: Selector | Iterable[Selector] | None = None,
    exclude: Selector | Iterable[Selector] | None = None,
    skip_first_conv: bool = True,
) -> list[PrunableTensor]:
    """The tensors to prune, in registration order.

    Without ``include`` the paper's rule picks them (conv / linear / recurrent weights, not the
    first conv). With ``include`` exactly the parameters it matches are taken, whatever their
    module type. ``exclude`` then removes matches from either set. Raises ``ValueError`` listing
    what was considered when nothing is left, or when a name in ``include`` matches nothing.
    """
    includes, excludes = _as_selectors(include), _as_selectors(exclude)
    considered = list(considered_parameters(model, skip_first_conv))
    names = parameter_names(model)

    def matched(selectors: list[Selector], param: nn.Parameter) -> bool:
        """Whether any selector names the parameter under any of its names."""
        return any(_matches(s, alias, param) for s in selectors for alias in names[id(param)])

    chosen: list[PrunableTensor] = []
    for name, param, module_type, reason in considered:
        wanted = matched(includes, param) if includes else reason is None
        if wanted and not matched(excludes, param):
            if not param.is_floating_point():
                raise ValueError(f"cannot prune {name!r}: dtype {param.dtype} is not floating point")
            chosen.append(PrunableTensor(name, param, module_type))
    for what, selectors in (("include", includes), ("exclude", excludes)):
        for selector in selectors:
            if isinstance(selector, str) and not any(matched([selector], p) for _, p, _, _ in considered):
                listed = ", ".join(n for n, *_ in considered[:20])
                raise ValueError(
                    f"{what}={selector!r} matches no parameter (a typo?); parameters are: {listed}"
                )
    if not chosen:
        lines = [f"  {n} ({t}): {r or 'excluded'}" for n, _, t, r in considered] or ["  (none)"]
        raise ValueError(
            "nothing to prune: no parameter was selected. Considered:\n"
            + "\n".join(lines)
            + "\nPass include= (names, globs or predicates) to choose tensors explicitly."
        )
    return chosen


def summary(model: nn.Module, tensors: list[PrunableTensor], skip_first_conv: bool = True) -> str:
    """The selected ``tensors`` with shapes and counts, and what the selection left dense and why."""
    chosen = {t.name for t in tensors}
    lines = [f"DSD prunes {len(tensors)} tensors, {sum(t.numel for t in tensors):,} weights:"]
    lines += [
        f"  {t.name:<48} {list(t.param.shape)!s:<22} {t.numel:>12,}  ({t.module_type})" for t in tensors
    ]
    left = [(n, p, r) for n, p, _, r in considered_parameters(model, skip_first_conv) if n not in chosen]
    if left:
        lines.append(f"left dense ({len(left)} tensors, {sum(p.numel() for _, p, _ in left):,} values):")
        lines += [f"  {n:<48} {list(p.shape)!s:<22} {r or 'excluded'}" for n, p, r in left]
    return "\n".join(lines)
