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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.cancel import Cancelled, CancelToken, ProgressFn, no_progress
from engine.capture import Capture, CaptureCache, run_capture
from engine.errors import ExplainerUnavailable, LucidaError, ModelError, UsageError
from engine.registry import registry
from plugins.api import INPUT_LAYER, is_layer_based, resolve_params

#: Share of the progress bar given to the capture; the explainers share the rest.
_CAPTURE_SHARE = 0.1


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``.

    Parameters
    ----------
    name : str
        ``auto`` (CUDA, then Apple MPS, then CPU) or a torch device string (``cpu``, ``cuda:0``).

    Raises
    ------
    UsageError
        For an unknown device or one this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {name!r}", fix="use auto, cpu, cuda or mps") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        raise UsageError(f"device {name!r} is not available here", fix="use --device auto or cpu")
    return device


@dataclass
class ExplainRequest:
    """What to explain: one image frame, one model, some methods, some layers, one target.

    ``layers`` is ``"auto"`` (the model's default layer), ``"all"`` (every candidate layer), a
    comma-separated string or a list of names. ``target`` is ``"top"``, a class index or a class
    name. ``params`` maps a method name to its parameter values.
    """

    image: Any
    model: Any
    methods: list[str]
    layers: str | list[str] = "auto"
    target: str | int = "top"
    frame: int = 0
    params: dict[str, dict] = field(default_factory=dict)


@dataclass
class MapResult:
    """One explanation map.

    ``raw`` is the explainer's float32 (h, w) map; ``heatmap`` is float32 (H, W) in image
    geometry, normalised to 0..1 (NaN and infinite values count as 0). ``warning`` says what is
    wrong with the map (NaN, infinite or all-zero values), else None.
    """

    method: str
    layer: str
    raw: np.ndarray
    heatmap: np.ndarray
    warning: str | None = None


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


def _to_numpy(raw: Any) -> np.ndarray:
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().float().cpu().numpy()
    return np.asarray(raw, dtype=np.float32)


def finish_map(method: str, layer: str, raw: Any, model: Any, image_shape) -> MapResult:
    """Turn an explainer's raw map into a :class:`MapResult`.

    The map is min-max normalised (non-finite values count as 0) and resampled into image
    geometry by ``model.map_to_image``. A map with non-finite values, or with no variation at all,
    gets a warning instead of raising.
    """
    raw = _to_numpy(raw)
    if raw.ndim != 2:
        raw = raw.reshape(raw.shape[-2:]) if raw.size and raw.ndim > 2 else np.atleast_2d(raw)
    warning = None
    finite = np.isfinite(raw)
    clean = np.where(finite, raw, np.float32(0.0))
    if not finite.all():
        warning = f"{method} map for {layer} has NaN or infinite values (shown as 0)"
    low, high = (float(clean.min()), float(clean.max())) if clean.size else (0.0, 0.0)
    if high - low > 0.0:
        norm = (clean - low) / (high - low)
    else:
        norm = np.zeros_like(clean)
        what = "all zero" if high == 0.0 else "constant"
        warning = warning or f"{method} map for {layer} is {what}: nothing to show"
    heat = np.asarray(model.map_to_image(norm.astype(np.float32), tuple(image_shape)),
                      dtype=np.float32)
    # Bilinear resampling of a finite 0..1 map stays finite and within 0..1, but can move the
    # peak off the pixel grid; scale it back to 1 (in place: this runs on every layer switch).
    peak = float(heat.max()) if heat.size else 0.0
    if 0.0 < peak < 1.0:
        np.multiply(heat, np.float32(1.0 / peak), out=heat)
    return MapResult(method=method, layer=layer, raw=raw, heatmap=heat, warning=warning)


def resolve_layers(model: Any, layers: str | list[str]) -> list[str]:
    """Return the layer names a request means.

    Raises
    ------
    UsageError
        For a layer the model does not have, naming the candidates.
    """
    candidates = [info.name for info in model.layers()]
    if layers == "auto":
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


def _freeze(params: dict) -> tuple:
    return tuple(sorted(params.items()))


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
            Stops the work at its next batch (raising :class:`engine.cancel.Cancelled`).
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

    def predict(self, image: Any, model: Any, frame: int = 0) -> list[float]:
        """Return the model's class scores (softmax or sigmoid) for one image frame."""
        with self._run_lock, torch.inference_mode():
            x = model.preprocess(image, frame)
            return [float(s) for s in model.scores(model.logits(x))[0]]

    # -- internals --------------------------------------------------------------------------
    def _capture(self, request, layers, gradients, token) -> tuple[Capture, dict, bool]:
        model, image = request.model, request.image
        key = (id(model), str(getattr(image, "path", id(image))), request.frame,
               tuple(getattr(image, "shape", ())), str(request.target))
        cached = self._captures.get(key)
        if cached is not None and cached.covers(layers, gradients):
            return cached, cached.maps, True
        token.check()
        union = list(dict.fromkeys([*(cached.layers if cached else []), *layers]))
        gradients = gradients or bool(cached is not None and cached.has_gradients)
        x = model.preprocess(image, request.frame)
        capture = run_capture(model, x, request.target, union, gradients)
        self.forward_passes += 1
        # Maps depend only on (image, model, target), so those of the replaced capture stay valid.
        capture.maps = cached.maps if cached is not None else {}
        self._captures.put(key, capture)
        return capture, capture.maps, False

    def _explain(self, request, progress, token, on_partial) -> ExplainResult:
        model = request.model
        reg = registry()
        names = list(dict.fromkeys(request.methods))
        if not names:
            raise UsageError("no method given", fix=f"use one of {', '.join(reg.names())}")
        explainers = [reg.get(n) for n in names]
        params = {e.name: resolve_params(e, request.params.get(e.name)) for e in explainers}
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
        layers = resolve_layers(model, request.layers) if layer_based else []
        gradients = any("gradients" in e.needs for e in layer_based)

        start = time.perf_counter()
        progress(0.0, "running the model")
        capture, done_maps, hit = self._capture(request, layers, gradients, token)
        timings = {
            "forward": 0.0 if hit else capture.timings_ms["forward"],
            "backward": 0.0 if hit else capture.timings_ms["backward"],
        }
        progress(_CAPTURE_SHARE, "model done")

        maps_start = time.perf_counter()
        maps: dict[tuple[str, str], MapResult] = {}
        image_shape = tuple(request.image.shape)
        share = (1.0 - _CAPTURE_SHARE) / len(runnable)
        for i, explainer in enumerate(runnable):
            base = _CAPTURE_SHARE + i * share
            wanted = layers if is_layer_based(explainer) else [INPUT_LAYER]
            frozen = _freeze(params[explainer.name])

            def report(fraction, message="", base=base):
                progress(base + share * min(max(fraction, 0.0), 1.0), message)

            missing = [
                layer for layer in wanted if (explainer.name, layer, frozen) not in done_maps
            ]
            if missing:
                raw_maps = self._run_explainer(
                    explainer, capture, missing, params[explainer.name], report, token, warnings
                )
                skipped = [layer for layer in missing if layer not in raw_maps]
                if raw_maps and skipped:
                    warnings.append(f"{explainer.name}: no map for {', '.join(skipped)}")
                for layer in missing:
                    if layer not in raw_maps:
                        continue
                    done_maps[(explainer.name, layer, frozen)] = finish_map(
                        explainer.name, layer, raw_maps[layer], model, image_shape
                    )
            for layer in wanted:
                result = done_maps.get((explainer.name, layer, frozen))
                if result is None:
                    continue
                maps[(explainer.name, layer)] = result
                if result.warning:
                    warnings.append(result.warning)
                if on_partial is not None:
                    on_partial(result)
            report(1.0, f"{explainer.title} done")
        if not maps:
            raise ExplainerUnavailable(warnings[-1] if warnings else "no map could be made")
        timings["maps"] = (time.perf_counter() - maps_start) * 1000.0
        timings["total"] = (time.perf_counter() - start) * 1000.0
        target = capture.target
        return ExplainResult(
            model=model.describe(),
            image_path=str(getattr(request.image, "path", "")),
            frame=request.frame,
            classes=list(model.classes),
            scores=[float(s) for s in capture.scores],
            target=target,
            target_name=str(model.classes[target]),
            maps=maps,
            params=params,
            timings_ms=timings,
            warnings=warnings,
        )

    @staticmethod
    def _run_explainer(explainer, capture, layers, params, report, token, warnings) -> dict:
        try:
            return dict(explainer.explain(capture, capture.target, layers, params, report, token))
        except Cancelled:
            raise
        except LucidaError as exc:
            warnings.append(f"{explainer.name}: {exc.one_line()}")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            warnings.append(f"{explainer.name} failed: {type(exc).__name__}: {exc}")
        return {}
