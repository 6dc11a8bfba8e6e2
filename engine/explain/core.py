"""The one explain core: plan, capture, explain and finish, for one image or a batch.

Every way of running an explainer goes through here: the GUI session, ``explain`` over files,
the batched audit (local or on a cluster) and the trust metrics.

- :func:`plan` resolves methods, layers and parameters against a model once, and says which
  requested methods cannot run on it (one line each).
- :func:`capture` runs the one forward (and backward) pass for a batch of inputs.
- :func:`explain` asks each planned explainer for its raw maps. An explainer that fails on one
  input gives that input an error and the others go on: a batched explainer that raises is
  retried one input at a time to find which.
- :func:`finish_stack` turns raw maps into heatmaps in image geometry: non-finite values become
  0 with a warning, flat maps are flagged, unsigned maps are clipped at 0 and scaled to peak 1,
  signed ones scaled by their largest magnitude into [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.core.cancel import Cancelled, CancelToken, ProgressFn, no_progress
from engine.core.case import Target
from engine.core.errors import ExplainerUnavailable, LucidaError, ModelError, UsageError
from engine.core.log import log_traceback, scrub
from engine.explain.api import (
    ATTENTION_NEEDS,
    INPUT_LAYER,
    PluginError,
    is_layer_based,
    is_segmentation,
    resolve_params,
)
from engine.explain.capture import Capture, run_capture
from engine.explain.registry import registry
from engine.explain.targets import roi_on_grid
from engine.models.preprocess import maps_to_image


@dataclass
class Plan:
    """Explainers resolved against one model: what :func:`capture` and :func:`explain` need.

    Attributes
    ----------
    explainers : list
        The explainers that can run on the model, in request order.
    params : dict
        Checked parameters per method name.
    layers : list of str
        Layers the layer-based explainers map (empty when none is layer-based).
    gradients : bool
        Whether any explainer needs layer gradients.
    warnings : list of str
        One line per requested method that cannot run on the model.
    attentions : bool
        Whether any explainer reads a vision transformer's attention probabilities.
    attention_gradients : bool
        Whether any explainer reads the target's gradients with respect to that attention.
    readout_gradients : bool
        Whether any explainer reads each block's read-out gradients (LeGrad's).
    """

    explainers: list
    params: dict[str, dict]
    layers: list[str]
    gradients: bool
    warnings: list[str] = field(default_factory=list)
    attentions: bool = False
    attention_gradients: bool = False
    readout_gradients: bool = False

    @property
    def methods(self) -> list[str]:
        """Registry keys of the planned explainers."""
        return [e.name for e in self.explainers]

    def map_layers(self, explainer: Any) -> list[str]:
        """The map keys ``explainer`` produces: the layers, or ``"input"``."""
        return list(self.layers) if is_layer_based(explainer) else [INPUT_LAYER]


def resolve_layers(model: Any, layers: str | list[str]) -> list[str]:
    """Return the layer names a request means.

    ``layers`` is ``"auto"`` (the model's default layer), ``"all"`` (every candidate), a
    comma-separated string or a list of names.

    Raises
    ------
    UsageError
        For a layer the model does not have, naming the candidates.
    ModelError
        For ``auto`` on a model without a default layer.
    """
    candidates = [info.name for info in model.layers()]
    if layers in ("auto", "", None):
        default = model.default_layer
        if not default:
            raise ModelError(
                f"{model.name} has no default layer for layer-based methods",
                fix="name a layer with --layer (see `python main.py layers`)",
            )
        return [default]
    if layers == "all":
        return candidates
    names = [n.strip() for n in layers.split(",")] if isinstance(layers, str) else list(layers)
    for name in names:
        if name in candidates:
            continue
        try:
            model.submodule(name)
        except Exception:  # noqa: BLE001 - any failure to find the module means a bad name
            shown = ", ".join(candidates[:12]) + (" ..." if len(candidates) > 12 else "")
            raise UsageError(
                f"model {model.name} has no layer {name!r}",
                fix=f"use auto, all or one of: {shown}",
            ) from None
    return names


def plan(model: Any, methods: list[str] | str, layers: str | list[str] = "auto",
         params: dict[str, dict] | None = None) -> Plan:
    """Resolve methods, layers and parameters against ``model``.

    Parameters
    ----------
    model : LoadedModel
        The model.
    methods : list of str or str
        Registry keys (a comma-separated string is split).
    layers : str or list of str
        See :func:`resolve_layers`; only read when a method is layer-based.
    params : dict, optional
        Parameter values per method name (strings are parsed against each schema).

    Raises
    ------
    UsageError
        Unknown method, layer or parameter.
    ExplainerUnavailable
        No requested method can run on the model (the first reason).
    """
    reg = registry()
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else methods
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise UsageError("no method given", fix=f"use one of {', '.join(reg.names())}")
    explainers = [reg.get(n) for n in names]
    params = params or {}
    checked = {e.name: resolve_params(e, params.get(e.name)) for e in explainers}
    warnings: list[str] = []
    runnable = []
    for explainer in explainers:
        reason = explainer.unavailable_reason(model)
        if reason:
            warnings.append(f"{explainer.name}: {reason}")
        else:
            runnable.append(explainer)
    if not runnable:
        raise ExplainerUnavailable(warnings[0])
    layer_based = [e for e in runnable if is_layer_based(e)]
    chosen = resolve_layers(model, layers) if layer_based else []
    return Plan(
        explainers=runnable,
        params={e.name: checked[e.name] for e in runnable},
        layers=chosen,
        gradients=any("gradients" in e.needs for e in layer_based),
        warnings=warnings,
        attentions=any(ATTENTION_NEEDS & set(e.needs) for e in runnable),
        attention_gradients=any("attention_gradients" in e.needs for e in runnable),
        readout_gradients=any("readout_gradients" in e.needs for e in runnable),
    )


def capture(model: Any, x: torch.Tensor, target: Any, the_plan: Plan,
            image_shape: tuple[int, ...] | None = None) -> Capture:
    """Run the plan's one forward (and backward) pass over a batch; see :func:`run_capture`.

    Parameters
    ----------
    model : LoadedModel
        The model.
    x : torch.Tensor
        (N, C, *spatial) preprocessed inputs.
    target : Target or str or int or sequence
        What is explained: one :class:`engine.core.case.Target` (class, versus and region),
        or for a batch one class per input (``None`` meaning top).
    the_plan : Plan
        From :func:`plan`.
    image_shape : tuple of int, optional
        ``(rows, cols)`` of the image, to carry a target's region onto a segmentation model's
        output grid.
    """
    versus = roi = None
    if isinstance(target, Target):
        versus = target.versus
        if target.roi is not None and is_segmentation(model):
            if image_shape is None:
                raise UsageError("a region target needs the image's shape",
                                 fix="pass image_shape to capture")

            def roi(grid, box=target.roi, shape=tuple(image_shape[:2])):
                return roi_on_grid(box, shape, model.input, grid)
        target = target.label
    return run_capture(model, x, target, the_plan.layers, the_plan.gradients, versus, roi,
                       the_plan.attentions, the_plan.attention_gradients,
                       the_plan.readout_gradients)


def predict(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Class scores of a batch, without explaining it: the core's forward-only pass.

    Parameters
    ----------
    model : LoadedModel
        The model.
    x : torch.Tensor
        (N, C, *spatial) preprocessed inputs.

    Returns
    -------
    torch.Tensor
        (N, K) softmax or sigmoid probabilities on the CPU; each class's pixel share for a
        segmentation model.
    """
    cap = run_capture(model, x, "top", (), gradients=False)
    return cap.scores.detach().float().cpu()


@dataclass
class BatchMaps:
    """What :func:`explain` returns for a batch.

    ``maps[i]`` maps ``(method, layer)`` to input ``i``'s raw float32 map (a CPU tensor);
    ``errors[i]`` maps a method name to the one line saying why it failed on input ``i``;
    ``notes[i]`` maps a method name to what it reported for input ``i`` besides its maps (see
    :attr:`engine.explain.capture.Capture.notes`).
    """

    maps: list[dict[tuple[str, str], torch.Tensor]]
    errors: list[dict[str, str]]
    notes: list[dict[str, dict]] = field(default_factory=list)


def _one_line(explainer: Any, exc: Exception) -> str:
    if isinstance(exc, LucidaError):
        return f"{explainer.name}: {exc.one_line()}"
    # A plugin's bug: its traceback goes to the log, and the line says where.
    note = log_traceback(exc, f"explainer {explainer.name}")
    line = f"{explainer.name} failed: {type(exc).__name__}: {exc}"
    return scrub(f"{line}; {note}" if note else line)


def _as_tensor(raw: Any) -> torch.Tensor:
    if isinstance(raw, torch.Tensor):
        return raw.detach().float().cpu()
    return torch.as_tensor(np.asarray(raw, dtype=np.float32))


def _call(explainer, cap: Capture, keys, params, report, cancel) -> tuple[dict, list[dict]]:
    # The view counts its scored images into the root capture itself (Capture._count).
    view = cap.view(frozenset(explainer.needs))
    target = view.targets if explainer.batched else int(view.targets[0])
    layers = [k for k in keys if k != INPUT_LAYER]
    got = dict(explainer.explain(view, target, layers, params, report, cancel))
    # Every map is (N, *grid), batch first. A map of another shape is the plugin's mistake: it
    # is told in one line, not reshaped into something that would pass for a map.
    n, rank = len(cap), cap.input.dim() - 2
    maps = {}
    for key in keys:
        if key not in got:
            continue
        t = _as_tensor(got[key])
        if t.ndim != 1 + rank or t.shape[0] != n:
            grid = "h, w" if rank == 2 else "d, h, w"
            raise PluginError(
                f"its map for {key} is shaped {tuple(t.shape)}, not ({n}, {grid}): batch "
                f"first, for the {n} input(s) of a {rank}-D model",
                fix="return every map batch first, (N, *grid) with N = len(capture), as "
                "engine/explain/api.py describes")
        maps[key] = t
    return maps, list(view.notes.get(explainer.name, []))


def explain(cap: Capture, the_plan: Plan, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None,
            wanted: dict[str, list[str]] | None = None) -> BatchMaps:
    """Run every planned explainer on a capture and collect raw maps per input.

    Every explainer returns its maps batch first, (N, *grid) with the capture's N (1 for an
    unbatched explainer, which gets one input at a time) and a grid of the model input's rank.
    A map of another shape is that method's one-line error for the inputs it covers; the other
    methods go on.

    Parameters
    ----------
    cap : Capture
        The batch's capture (from :func:`capture`).
    the_plan : Plan
        From :func:`plan`.
    progress : callable, optional
        ``progress(fraction, message)`` over the whole batch.
    cancel : CancelToken, optional
        Raises :class:`engine.core.cancel.Cancelled` at the next check.
    wanted : dict, optional
        Map keys to make per method (default: all the plan's); lets a cache ask for what it
        lacks.

    Returns
    -------
    BatchMaps
    """
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    n = len(cap)
    out = BatchMaps(maps=[{} for _ in range(n)], errors=[{} for _ in range(n)],
                    notes=[{} for _ in range(n)])
    jobs = [(e, (wanted or {}).get(e.name, the_plan.map_layers(e))) for e in the_plan.explainers]
    jobs = [(e, keys) for e, keys in jobs if keys]
    share = 1.0 / max(1, len(jobs))
    for j, (explainer, keys) in enumerate(jobs):
        params = the_plan.params[explainer.name]
        base = j * share

        def report(fraction, message="", base=base, i=0, m=1):
            progress(base + share * (i + min(max(fraction, 0.0), 1.0)) / m, message)

        results: list[dict | None] = [None] * n
        if explainer.batched:
            try:
                got, notes = _call(explainer, cap, keys, params, report, cancel)
                for i, entry in enumerate(notes[:n]):
                    out.notes[i][explainer.name] = entry
                for key, stack in got.items():
                    for i in range(n):
                        results[i] = results[i] or {}
                        results[i][key] = stack[i]
            except Cancelled:
                raise
            except PluginError as exc:
                # Maps of the wrong shape come from the plugin, not from one input: running it
                # again input by input would only repeat them.
                for i in range(n):
                    out.errors[i][explainer.name] = _one_line(explainer, exc)
            except Exception as exc:  # noqa: BLE001 - isolate the input it fails on below
                if n == 1:
                    out.errors[0][explainer.name] = _one_line(explainer, exc)
                    continue
        for i in range(n):
            if results[i] is not None or explainer.name in out.errors[i]:
                continue
            try:
                got, notes = _call(explainer, cap.select(i), keys, params,
                                   lambda f, msg="", i=i: report(f, msg, i=i, m=n), cancel)
                if notes:
                    out.notes[i][explainer.name] = notes[0]
                results[i] = {key: stack[0] for key, stack in got.items()}
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
                out.errors[i][explainer.name] = _one_line(explainer, exc)
        for i in range(n):
            for key in keys:
                if results[i] is not None and key in results[i]:
                    out.maps[i][(explainer.name, key)] = results[i][key]
        report(1.0, f"{explainer.title} done")
    return out


@dataclass
class MapResult:
    """One finished explanation map.

    Attributes
    ----------
    method, layer : str
        Which map.
    raw : np.ndarray
        The explainer's own float32 map, in its own geometry and units.
    heatmap : np.ndarray
        float32 in image geometry: 0..1 (peak 1) for unsigned maps, -1..1 for signed ones.
    warning : str or None
        What is wrong with the map (non-finite or flat values).
    notes : dict
        What the explainer reported besides the map (Integrated Gradients' ``completeness``,
        a guided method's ``warning``); empty for most methods.
    signed : bool
        Whether the map keeps its sign.
    scale : float
        The raw value that maps to 1 (the peak, or the largest magnitude), in ``units``.
    units : str
        What a raw value measures (the explainer's ``units``).
    """

    method: str
    layer: str
    raw: np.ndarray
    heatmap: np.ndarray
    warning: str | None = None
    signed: bool = False
    scale: float = 1.0
    units: str = "a.u."
    notes: dict = field(default_factory=dict)


def finish_stack(raw: torch.Tensor, model: Any, image_shape: tuple[int, ...],
                 signed: bool = False, what: str = "map",
                 resample: Any = None) -> tuple[torch.Tensor, list, list]:
    """Finish a stack of maps of one geometry for images of one shape.

    Parameters
    ----------
    raw : torch.Tensor
        (N, h, w) raw maps over the model input (any resolution); (N, d, h, w) with
        ``resample``.
    model : LoadedModel
        Its input spec says how the input was placed in the image.
    image_shape : tuple of int
        ``(rows, cols)`` of the images.
    signed : bool
        Keep the sign (scale by the largest magnitude) instead of clipping at 0.
    what : str
        Names the map in warnings (``"gradcam map for layer4"``).
    resample : callable, optional
        ``resample(clean) -> (N, *image grid)``: how the cleaned maps reach image geometry
        (a volume's voxel grid, say); by default :func:`maps_to_image` with the model's spec.

    Returns
    -------
    heat : torch.Tensor
        (N, rows, cols) float32 heatmaps.
    warnings : list of str or None
        Per map.
    scales : list of float
        Per map, the raw value that maps to 1 (0 for a map with nothing to show).
    """
    raw = raw.float()
    finite = torch.isfinite(raw).flatten(1).all(1).tolist()
    clean = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    if not signed:
        clean = clean.clamp(min=0.0)
    flat = clean.flatten(1)
    spread = (flat.amax(1) - flat.amin(1)).tolist() if flat.shape[1] else [0.0] * len(raw)
    heat = maps_to_image(clean, model.input, tuple(image_shape[:2])) if resample is None \
        else resample(clean)
    # The peak of the resampled map, so that bilinear resampling cannot leave it below 1.
    # (Largest magnitude from the extremes, without an absolute copy of a volume-sized map.)
    spread_heat = heat.flatten(1)
    peak = torch.maximum(spread_heat.amax(1), -spread_heat.amin(1)) if spread_heat.shape[1] \
        else torch.zeros(len(raw))
    scale_raw = flat.abs().amax(1) if flat.shape[1] else torch.zeros(len(raw))
    heat = heat.div_(torch.where(peak > 0, peak, torch.ones_like(peak)).view(-1, *[1] * (
        heat.ndim - 1)))
    warnings: list[str | None] = []
    for ok, width, top in zip(finite, spread, peak.tolist(), strict=True):
        warning = None if ok else f"{what} has NaN or infinite values (shown as 0)"
        if not width > 0.0 or not top > 0.0:
            kind = "all zero" if not top > 0.0 else "constant"
            warning = warning or f"{what} is {kind}: nothing to show"
        warnings.append(warning)
    return heat, warnings, scale_raw.tolist()


def finish_map(method: str, layer: str, raw: Any, model: Any, image_shape,
               signed: bool = False, units: str = "a.u.") -> MapResult:
    """Finish one raw map into a :class:`MapResult` (the one-map form of :func:`finish_stack`)."""
    t = _as_tensor(raw)
    if t.ndim != 2:
        t = t.reshape(t.shape[-2:]) if t.numel() and t.ndim > 2 else torch.atleast_2d(t)
    heat, warnings, scales = finish_stack(t[None], model, tuple(image_shape), signed,
                                          f"{method} map for {layer}")
    return MapResult(method=method, layer=layer, raw=t.numpy().astype(np.float32),
                     heatmap=heat[0].numpy(), warning=warnings[0], signed=signed,
                     scale=float(scales[0]), units=units)


def explain_one(model: Any, x: torch.Tensor, method: str, layer: str, target: Any,
                params: dict | None = None, cancel: CancelToken | None = None,
                image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Run one explainer on one input and return its raw map for ``layer`` (numpy).

    Used where the model itself changes between runs (the randomisation sanity check), and to
    re-run a shown map on the unchanged model. ``target`` is the case's
    :class:`engine.core.case.Target` (or a class index), so a contrastive or region map is
    re-run as what it explains.

    Raises
    ------
    ExplainerUnavailable
        The explainer made no map for that layer (its one-line reason).
    """
    the_plan = plan(model, [method], [layer] if layer != INPUT_LAYER else "auto",
                    {method: params or {}})
    if not is_layer_based(the_plan.explainers[0]):
        the_plan.layers = []
    cap = capture(model, x, target, the_plan, image_shape)
    got = explain(cap, the_plan, cancel=cancel)
    if got.errors[0]:
        raise ExplainerUnavailable(next(iter(got.errors[0].values())))
    maps = got.maps[0]
    key = (method, layer if (method, layer) in maps else INPUT_LAYER)
    if key not in maps:
        raise ExplainerUnavailable(f"{method}: no map for {layer}")
    return maps[key].numpy().astype(np.float32)
