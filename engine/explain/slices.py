"""A 2-D model over a volume, slice by slice, in batches, through the one explain core.

Each slice is an image to the model (:class:`engine.studies.volume.SliceView`); a batch of
slices is one capture (one forward and one backward pass for every layer), and its maps are
finished as every 2-D map is. The stack of finished maps lies on the volume's own grid,
(slices, rows, columns), with 0 on slices that were not explained, and shares one scale: the
largest raw value over the explained slices maps to 1, so a slice where the model saw little
stays faint instead of being stretched to its own peak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.core.cancel import CancelToken, ProgressFn, no_progress
from engine.core.case import Target
from engine.core.errors import ExplainerUnavailable, UsageError
from engine.explain import core
from engine.explain.core import MapResult


@dataclass
class SliceStack:
    """What :func:`explain_slices` returns.

    Attributes
    ----------
    maps : dict
        ``(method, layer) -> MapResult`` whose ``heatmap`` is (slices, rows, columns) and whose
        ``raw`` is (explained slices, h, w).
    slices : list of int
        The explained slices, in volume order.
    classes : list of str
    scores : numpy.ndarray
        (explained slices, K) class scores per slice.
    targets : list of int
        The class explained on each slice.
    warnings : list of str
    timings_ms : dict
        ``forward``, ``backward`` (per slice) and ``maps`` (all slices).
    params : dict
        Checked parameters per method.
    intended_use : dict
        The model's intended-use check on the middle explained slice.
    """

    maps: dict[tuple[str, str], MapResult]
    slices: list[int]
    classes: list[str]
    scores: np.ndarray
    targets: list[int]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    intended_use: dict = field(default_factory=dict)


def parse_slices(text: str | int, count: int) -> list[int]:
    """The slices ``--slices`` means: ``all``, ``N`` or ``A:B`` (B excluded, as in Python).

    Raises
    ------
    UsageError
        For anything else, or slices outside ``0..count-1``.
    """
    text = str(text).strip()
    fix = f"use all, N or A:B with 0 <= A < B <= {count}"
    if text == "all":
        return list(range(count))
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            first, stop = int(a) if a else 0, int(b) if b else count
        else:
            first = int(text)
            stop = first + 1
    except ValueError:
        raise UsageError(f"--slices {text!r} is not all, N or A:B", fix=fix) from None
    if not 0 <= first < stop <= count:
        raise UsageError(f"--slices {text} is outside the volume's {count} slices", fix=fix)
    return list(range(first, stop))


def explain_slices(model: Any, volume: Any, methods: list[str] | str, layers: Any = "auto",
                   target: Any = "top", params: dict | None = None, slices: Any = "all",
                   batch_size: int = 16, versus: Any = None,
                   progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> SliceStack:
    """Explain a 2-D model on every chosen slice of a volume, in batches.

    Parameters
    ----------
    model : LoadedModel
        A 2-D model.
    volume : Volume
        The volume.
    methods, layers, params, versus
        As in :func:`engine.explain.core.plan` and :func:`engine.explain.core.capture`.
    target : str or int
        ``top`` (each slice's own top class), a class name or an index.
    slices : str, int or list of int
        ``all``, ``N``, ``A:B`` (see :func:`parse_slices`) or explicit indices.
    batch_size : int
        Slices per capture.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    SliceStack
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    chosen = list(slices) if isinstance(slices, list | tuple) else parse_slices(
        slices, volume.shape[0])
    the_plan = core.plan(model, methods, layers, params)
    warnings = list(the_plan.warnings)
    raws: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    scores, targets = [], []
    timings = {"forward": 0.0, "backward": 0.0}
    start = time.perf_counter()
    batch_size = max(1, int(batch_size))
    for first in range(0, len(chosen), batch_size):
        cancel.check()
        indices = chosen[first : first + batch_size]
        x = torch.cat([model.preprocess(volume.slice_view(k)) for k in indices])
        cap = core.capture(model, x, Target(target, versus), the_plan)
        for key in ("forward", "backward"):
            timings[key] += cap.timings_ms[key] * len(indices)
        share = len(indices) / len(chosen)
        done = first / len(chosen)
        got = core.explain(cap, the_plan,
                           lambda f, m="", done=done, share=share: progress(done + share * f, m),
                           cancel)
        scores.append(cap.scores.detach().float().cpu().numpy())
        targets += [int(t) for t in cap.targets]
        for i, k in enumerate(indices):
            warnings += [f"slice {k}: {line}" for line in got.errors[i].values()]
            for key, raw in got.maps[i].items():
                raws.setdefault(key, {})[k] = raw
    maps = {}
    for explainer in the_plan.explainers:
        signed = bool(getattr(explainer, "signed", False))
        for layer in the_plan.map_layers(explainer):
            per_slice = raws.get((explainer.name, layer), {})
            if not per_slice:
                continue
            maps[(explainer.name, layer)] = _stack(explainer, layer, per_slice, model, volume,
                                                   signed, warnings)
    if not maps:
        raise ExplainerUnavailable(warnings[-1] if warnings else "no map could be made")
    timings = {k: v / len(chosen) for k, v in timings.items()}
    timings["maps"] = (time.perf_counter() - start) * 1000.0
    check = getattr(model, "check_use", None)
    use = check(volume.slice_view(chosen[len(chosen) // 2])).as_dict() if check else {}
    if use.get("status") == "mismatch":
        warnings.append(use["message"])
    return SliceStack(maps=maps, slices=chosen, classes=list(model.classes),
                      scores=np.concatenate(scores), targets=targets, warnings=warnings,
                      timings_ms=timings, params=the_plan.params, intended_use=use)


def _stack(explainer, layer: str, per_slice: dict, model, volume, signed: bool,
           warnings: list[str]) -> MapResult:
    """Finish one method/layer's slice maps and put them on the volume's grid, one scale."""
    indices = sorted(per_slice)
    raw = torch.stack([per_slice[k].float().reshape(per_slice[k].shape[-2:]) for k in indices])
    heat, notes, scales = core.finish_stack(raw, model, tuple(volume.shape[1:]), signed,
                                            f"{explainer.name} map for {layer}")
    top = max(scales) if scales else 0.0
    # One scale for the stack: each slice's peak 1 stands for its own raw peak.
    weights = torch.tensor([s / top if top > 0 else 0.0 for s in scales])
    stack = np.zeros(tuple(volume.shape), np.float32)
    stack[indices] = (heat * weights[:, None, None]).numpy()
    flat = [k for k, note in zip(indices, notes, strict=True) if note]
    warning = None
    if len(flat) == len(indices):
        warning = f"{explainer.name} map for {layer} has nothing to show on any slice"
    elif flat:
        warnings.append(f"{explainer.name} map for {layer}: nothing to show on "
                        f"{len(flat)} of {len(indices)} slices")
    return MapResult(method=explainer.name, layer=layer, raw=raw.numpy().astype(np.float32),
                     heatmap=stack, warning=warning, signed=signed, scale=float(top),
                     units=str(getattr(explainer, "units", "a.u.")))
