"""The one way the GUI, the CLI and the tests run explanations.

A :class:`Session` owns the capture cache. :meth:`Session.explain` takes an
:class:`ExplainRequest`, reuses or runs one capture, asks each explainer for its maps, and turns
every raw map into a heatmap in image geometry. Progress and finished maps are reported as they
come; a newer request cancels a stale one; a broken map comes back with a warning, never as an
exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.core.cancel import Cancelled, CancelToken, ProgressFn, no_progress
from engine.core.case import Case, Target, content_of, freeze
from engine.core.device import resolve_device
from engine.core.errors import ExplainerUnavailable, UsageError
from engine.explain import core
from engine.explain.api import is_segmentation
from engine.explain.capture import Capture, CaptureCache
from engine.explain.core import MapResult, finish_map, resolve_layers
from engine.explain.identity import model_hash
from engine.explain.targets import label_map

__all__ = ["ExplainRequest", "ExplainResult", "MapResult", "Session", "finish_map",
           "resolve_device", "resolve_layers"]

#: Share of the progress bar given to the capture; the explainers share the rest.
_CAPTURE_SHARE = 0.1


@dataclass(frozen=True)
class ExplainRequest:
    """What to explain: one image frame, one model, some methods, some layers, one target.

    A frozen value. ``layers`` is ``"auto"`` (the model's default layer), ``"all"`` (every
    candidate layer), a comma-separated string or a sequence of names. ``target`` is one
    :class:`engine.core.case.Target` (class, ``versus`` and region); a class given alone
    (``"top"``, an index or a name) is made into one with the ``versus`` and ``roi`` keywords,
    which are read only then. ``versus`` names a second class for a contrastive target: the
    maps then explain ``logit[target] - logit[versus]``. For a segmentation model, ``roi``
    (``x0, y0, x1, y1`` image pixels) is the region whose target logits are explained, instead
    of the pixels the model assigns to the target. ``params`` maps a method name to its
    parameter values.
    """

    image: Any
    model: Any
    methods: tuple[str, ...]
    layers: str | tuple[str, ...] = "auto"
    target: Target | str | int = "top"
    frame: int = 0
    params: Mapping[str, Mapping] = field(default_factory=dict)
    versus: InitVar[str | int | None] = None
    roi: InitVar[tuple[float, float, float, float] | None] = None

    def __post_init__(self, versus, roi) -> None:
        target = self.target
        if not isinstance(target, Target):
            target = Target(target, versus, roi)
        elif versus is not None or roi is not None:
            raise UsageError("give versus and roi inside the Target, not beside it",
                             fix="pass target=Target(label, versus, roi)")
        set_ = object.__setattr__
        set_(self, "target", target)
        set_(self, "methods", tuple(self.methods))
        if not isinstance(self.layers, str):
            set_(self, "layers", tuple(self.layers))
        set_(self, "params", MappingProxyType(
            {str(m): MappingProxyType(dict(p)) for m, p in dict(self.params).items()}))
        set_(self, "frame", int(self.frame))

    @property
    def case(self) -> Case:
        """The case this request explains (no method): content, model hash and target.

        A classifier's drawn region does not change its maps, so it is left out; a
        segmentation model's region is what it explains, so it is kept.
        """
        target = self.target
        if target.roi is not None and not is_segmentation(self.model):
            target = replace(target, roi=None)
        return Case(content=content_of(self.image, self.frame), model=model_hash(self.model),
                    target=target)


@dataclass
class ExplainResult:
    """Everything one explanation produced, ready for display, export and ``result.json``."""

    model: dict
    image_path: str
    frame: int
    classes: list[str]
    scores: list[float]
    target: int
    target_name: str
    maps: dict[tuple[str, str], MapResult]
    params: dict
    timings_ms: dict
    warnings: list[str]
    intended_use: dict = field(default_factory=dict)
    versus: str | None = None
    segmentation: np.ndarray | None = None
    case: Case | None = None


class _RequestToken(CancelToken):
    """Cancelled when the caller's token is, or when a newer request supersedes this one."""

    def __init__(self, parent: CancelToken | None) -> None:
        super().__init__()
        self._parent = parent

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()


class Session:
    """Runs explanations, caching captures by (image, model, target).

    Parameters
    ----------
    device : str
        Where new models should run: ``auto`` (CUDA, then MPS, then CPU) or a device string.
        Requests run on their model's own device; see :func:`resolve_device`.
    cache_size : int
        Most captures kept (each keeps its finished maps too).

    Attributes
    ----------
    forward_passes : int
        Model forward passes run for captures (cache hits run none).
    """

    def __init__(self, device: str = "auto", cache_size: int = 8) -> None:
        self.device = resolve_device(device)
        self.forward_passes = 0
        self._captures = CaptureCache(cache_size)
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._current: _RequestToken | None = None

    def clear_cache(self) -> None:
        """Forget every cached capture and map."""
        with self._run_lock:
            self._captures.clear()

    def explain(
        self,
        request: ExplainRequest,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        on_partial=None,
    ) -> ExplainResult:
        """Run one request.

        Parameters
        ----------
        request : ExplainRequest
            What to explain.
        progress : callable, optional
            ``progress(fraction, message)``.
        cancel : CancelToken, optional
            Stops the work at its next batch (raising :class:`engine.core.cancel.Cancelled`).
        on_partial : callable, optional
            Called with each :class:`MapResult` as soon as it is ready.

        Returns
        -------
        ExplainResult

        Raises
        ------
        Cancelled
            When ``cancel`` fires or a newer request supersedes this one.
        LucidaError
            For an unknown method or layer, a bad parameter or target, or when no requested
            method can run on the model.
        """
        token = _RequestToken(cancel)
        with self._state_lock:
            if self._current is not None:
                self._current.cancel()
            self._current = token
        try:
            with self._run_lock:
                token.check()
                return self._explain(request, progress or no_progress, token, on_partial)
        finally:
            with self._state_lock:
                if self._current is token:
                    self._current = None

    # -- internals --------------------------------------------------------------------------
    def _capture(self, request, the_plan, token) -> tuple[Capture, dict, bool]:
        model, image = request.model, request.image
        # Keyed by content, model hash and target, never by path or id(): two series in one
        # folder, or two model objects, are never mixed.
        key = request.case
        cached = self._captures.get(key)
        if cached is not None and cached.covers(the_plan.layers, the_plan.gradients,
                                                the_plan.attentions, the_plan.attention_gradients,
                                                the_plan.readout_gradients):
            return cached, cached.maps, True
        token.check()
        union = list(dict.fromkeys([*(cached.layers if cached else []), *the_plan.layers]))
        gradients = the_plan.gradients or bool(cached is not None and cached.has_gradients)
        x = model.preprocess(image, request.frame)
        # A capture with the attention holds its gradients too, so that rollout, relevance and
        # LeGrad are all served by one pass whichever of them is asked for first.
        attentions = the_plan.attentions or bool(cached is not None and cached.covers(
            [], False, attentions=True))
        wider = core.Plan(the_plan.explainers, the_plan.params, union, gradients,
                          attentions=attentions, attention_gradients=attentions,
                          readout_gradients=attentions)
        capture = core.capture(model, x, key.target, wider, tuple(image.shape))
        self.forward_passes += 1
        # Maps depend only on the case, so those of the replaced capture stay valid.
        capture.maps = cached.maps if cached is not None else {}
        self._captures.put(key, capture)
        return capture, capture.maps, False

    def _explain(self, request, progress, token, on_partial) -> ExplainResult:
        model = request.model
        the_plan = core.plan(model, request.methods, request.layers, request.params)
        warnings = list(the_plan.warnings)
        start = time.perf_counter()
        progress(0.0, "running the model")
        capture, done_maps, hit = self._capture(request, the_plan, token)
        timings = {
            "forward": 0.0 if hit else capture.timings_ms["forward"],
            "backward": 0.0 if hit else capture.timings_ms["backward"],
        }
        progress(_CAPTURE_SHARE, "model done")

        maps_start = time.perf_counter()
        frozen = {name: freeze(p) for name, p in the_plan.params.items()}
        missing = {
            e.name: [k for k in the_plan.map_layers(e)
                     if (e.name, k, frozen[e.name]) not in done_maps]
            for e in the_plan.explainers
        }
        if any(missing.values()):
            got = core.explain(
                capture, the_plan,
                lambda f, m="": progress(_CAPTURE_SHARE + (1 - _CAPTURE_SHARE) * f, m),
                token, wanted=missing,
            )
            warnings.extend(got.errors[0].values())
            image_shape = tuple(request.image.shape)
            finish, where = finish_map, image_shape
            if getattr(request.image, "kind", None) == "volume":
                # A 3-D model's maps go back onto the volume's own voxel grid.
                from engine.explain.volume_finish import finish_volume_map

                finish, where = finish_volume_map, request.image
            for explainer in the_plan.explainers:
                made = [k for k in missing[explainer.name] if (explainer.name, k) in got.maps[0]]
                skipped = [k for k in missing[explainer.name] if k not in made]
                if made and skipped:
                    warnings.append(f"{explainer.name}: no map for {', '.join(skipped)}")
                for layer in made:
                    finished = finish(
                        explainer.name, layer, got.maps[0][(explainer.name, layer)], model,
                        where, signed=bool(getattr(explainer, "signed", False)),
                        units=str(getattr(explainer, "units", "a.u.")),
                    )
                    finished.notes = dict(got.notes[0].get(explainer.name, {}))
                    done_maps[(explainer.name, layer, frozen[explainer.name])] = finished
        maps: dict[tuple[str, str], MapResult] = {}
        for explainer in the_plan.explainers:
            for layer in the_plan.map_layers(explainer):
                result = done_maps.get((explainer.name, layer, frozen[explainer.name]))
                if result is None:
                    continue
                maps[(explainer.name, layer)] = result
                # A guided method's functional-ReLU warning is said once, not once per layer.
                for line in (result.warning, result.notes.get("warning")):
                    if line and line not in warnings:
                        warnings.append(line)
                if on_partial is not None:
                    on_partial(result)
        progress(1.0, "maps done")
        if not maps:
            raise ExplainerUnavailable(warnings[-1] if warnings else "no map could be made")
        timings["maps"] = (time.perf_counter() - maps_start) * 1000.0
        timings["total"] = (time.perf_counter() - start) * 1000.0
        target = capture.target
        check = getattr(model, "check_use", None)
        use = check(request.image, request.frame).as_dict() if check is not None else {}
        if use.get("status") == "mismatch":
            warnings.append(use["message"])
        return ExplainResult(
            model=model.describe(),
            image_path=str(getattr(request.image, "path", "")),
            frame=request.frame,
            classes=list(model.classes),
            scores=[float(s) for s in capture.scores[0]],
            target=target,
            target_name=str(model.classes[target]),
            maps=maps,
            params=the_plan.params,
            timings_ms=timings,
            warnings=warnings,
            intended_use=use,
            versus=None if capture.versus is None else str(model.classes[capture.versus]),
            segmentation=None if capture.region is None else label_map(
                model, capture.logits, tuple(request.image.shape[:2])).numpy().astype(np.uint8),
            case=replace(request.case,
                         target=request.case.target.resolved(target, capture.versus)),
        )
