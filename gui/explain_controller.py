"""The explain controller: which maps the view wants, from the cache or from the worker.

Maps are cached by (image content, frame, model, target, method, parameters, layer), never by
path, so switching layer
or method back is instant. Every request is tagged with the image and frame it was made for; the
job router drops what arrives for a view that is gone. The absolute overlay scale needs a
maximum shared by the maps being compared; :meth:`ExplainController.shared_max` computes it from
the cache (every class and image explained with the same model, method and layer, or every
cell of the compare grid).

A segmentation model's explanation comes with the predicted mask of the explained class,
outlined over the image (the contours are traced on the worker). The class list picks the class;
a region drawn with the ROI tool becomes the region explained, in place of the predicted mask.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from engine.explain.api import INPUT_LAYER, is_layer_based, is_segmentation
from engine.explain.scale import shared_maximum
from gui.caption import missing_map_warning
from gui.compare_requests import CompareRequests
from gui.overlay_layer import map_info, mask_contours, owner_key

#: Method shown first when the registry has it.
DEFAULT_METHOD = "gradcam"
#: Maps this window keeps for instant layer/method switches (each is one image-sized array).
MAP_CACHE_SIZE = 256


def load_registry():
    """Import every explainer plugin (worker thread) and return (explainers, errors)."""
    from engine.explain.registry import registry

    reg = registry()
    return {name: reg.get(name) for name in reg.names()}, list(getattr(reg, "errors", []))


def target_outline(result) -> list | None:
    """Contours of the explained class's predicted mask (None for a classifier's result)."""
    labels = getattr(result, "segmentation", None)
    if labels is None:
        return None
    return mask_contours(np.asarray(labels) == result.target)


class ExplainController(CompareRequests):
    """Asks for maps and puts them on screen, in the single viewer or the compare grid.

    Parameters
    ----------
    window : QtMainWindow
        Holds the view state (image, model, method, layer, target) and the widgets.
    """

    def __init__(self, window) -> None:
        self.window = window
        self.maps: OrderedDict[tuple, object] = OrderedDict()  # map key -> MapResult (LRU)
        self.results: dict[tuple, object] = {}  # context key -> last ExplainResult
        self.outlines: dict[tuple, list | None] = {}  # context key -> predicted-mask contours
        self.param_values: dict[str, dict] = {}
        self.compare_methods: list[str] = []
        self.compare_layers: list[str] = []

    # -- explainers -----------------------------------------------------------------------
    def load_explainers(self) -> int:
        """Import the plugins on the worker; the panel lists them when they arrive."""
        return self.window.jobs.submit("startup", lambda _p, _c, _partial: load_registry(),
                                       on_done=self._explainers_loaded)

    def _explainers_loaded(self, loaded, _context: dict) -> None:
        window = self.window
        window.explainers, errors = loaded
        if window.method not in window.explainers:
            window.method = DEFAULT_METHOD if DEFAULT_METHOD in window.explainers else next(
                iter(window.explainers), None)
        window.panel.set_explainers(window.explainers, window.method)
        for line in errors:
            window.show_error(f"plugin skipped: {line}")
        self.request()

    def explainer(self, method: str | None):
        return self.window.explainers.get(method)

    def reason(self, method: str) -> str | None:
        """Why ``method`` cannot run on the current model (judged on the worker), or None."""
        return self.window.reasons.get(method)

    def check_use(self) -> None:
        """Check the shown image against the model's intended use, on the worker."""
        window = self.window
        image, model = window.image, window.model
        if image is None or model is None or window.image_error is not None:
            return
        frame = window.viewer.frame
        window.jobs.submit("use", lambda _p, _c, _partial: model.check_use(image, frame).as_dict(),
                           tag=window.view_tag(), on_done=lambda use, _c: window.set_use(use),
                           on_failed=lambda _text, _c: window.set_use(None))

    # -- keys -------------------------------------------------------------------------------
    def context_key(self, target=None) -> tuple:
        """(image content, frame, model sha256, model name, target, versus).

        For a segmentation model with a drawn region, the target is ``(target, region box)``:
        maps of one region are not those of another. ``versus`` is the contrasted class index,
        or None. The image is named by its content, never its path."""
        window = self.window
        target = window.target if target is None else target
        what = "top" if target is None else int(target)
        region = self.explained_region()
        return (owner_key(window.image, window.viewer.frame), window.viewer.frame,
                window.model.sha256,
                window.model.name, what if region is None else (what, region), window.versus)

    def explained_region(self) -> tuple | None:
        """The drawn region a segmentation model explains (x0, y0, x1, y1), or None.

        An ellipse counts by its bounding box: the engine sums a target's logits over a box.
        """
        window = self.window
        if window.roi is None or not is_segmentation(window.model):
            return None
        return tuple(int(v) for v in window.roi)

    def params_for(self, method: str) -> dict:
        """Return the parameter values the user set for ``method`` (defaults otherwise)."""
        if method not in self.param_values:
            self.param_values[method] = {p.name: p.default
                                         for p in getattr(self.explainer(method), "params", ())}
        return self.param_values[method]

    def map_key(self, context_key: tuple, method: str, layer: str | None) -> tuple:
        params = tuple(sorted(self.params_for(method).items()))
        layer = layer if is_layer_based(self.explainer(method)) else INPUT_LAYER
        return context_key + (method, params, layer)

    def ready(self) -> bool:
        """Whether an image frame, a model and a method are there to be explained."""
        window = self.window
        return (window.image is not None and window.model is not None
                and window.method in window.explainers and window.image_error is None
                and window.frames.is_ready(window.viewer.frame))

    # -- the cache --------------------------------------------------------------------------
    def _store(self, context: dict, map_result) -> None:
        key = context["key"] + (map_result.method, context["params"][map_result.method],
                                map_result.layer)
        if self.maps.get(key) is map_result:
            return  # already drawn as a partial result
        self.maps[key] = map_result
        while len(self.maps) > MAP_CACHE_SIZE:
            self.maps.popitem(last=False)
        self._draw_if_wanted(map_result, key)

    def cached(self, key: tuple):
        """Return a cached MapResult (marking it recently used), or None."""
        found = self.maps.get(key)
        if found is not None:
            self.maps.move_to_end(key)
        return found

    def shared_max(self, units: str) -> float | None:
        """The absolute scale's maximum for the map(s) on screen in ``units``.

        Which maps are compared is the window's choice (:meth:`compared_maps`); the maximum
        is the engine's (:func:`engine.explain.scale.shared_maximum`).
        """
        return shared_maximum(self.compared_maps(), units)

    def compared_maps(self) -> list[tuple[float, str]]:
        """``(raw scale, units)`` of every cached map compared with the one(s) on screen.

        Single view: every cached map of this model, method, parameters and layer (every class,
        image and frame). Compare grid: those of every cell.
        """
        window = self.window
        if window.model is None:
            return []
        model = (window.model.sha256, window.model.name)
        if window.compare_on:
            wanted = {(m, tuple(sorted(self.params_for(m).items())), lay if is_layer_based(
                self.explainer(m)) else INPUT_LAYER)
                for m in self.compare_methods for lay in self.compare_layers}
        else:
            wanted = {self.map_key((), window.method, window.layer)}
        return [(m.scale, m.units) for key, m in self.maps.items()
                if key[2:4] == model and key[-3:] in wanted]

    def _draw_if_wanted(self, map_result, key: tuple) -> None:
        window = self.window
        if window.image is None or window.model is None:
            return
        ctx = self.context_key()
        if window.compare_on:
            if key[: len(ctx)] == ctx and key in self._wanted_keys():
                window.compare.set_map(map_result.method, map_result.layer, map_result,
                                       map_info(map_result))
                self._refresh_compare_scale()
                window.sig_map_drawn.emit(map_result.method, map_result.layer)
        elif key == self.map_key(ctx, window.method, window.layer):
            self.show_map(map_result)
        elif key[2:4] == ctx[2:4] and window.layer_model.heatmap is not None:
            # Another class or image joined the comparison: the absolute scale may change.
            window.layer_model.set_shared_max(self.shared_max(window.layer_model.info.units))

    def _wanted_keys(self) -> set:
        window = self.window
        if window.image is None or window.model is None:
            return set()
        ctx = self.context_key()
        if window.compare_on:
            return {self.map_key(ctx, m, lay) for m in self.compare_methods
                    for lay in self.compare_layers}
        return {self.map_key(ctx, window.method, window.layer)}

    def everything_drawn(self) -> bool:
        """Whether every wanted map is on screen (the one map, or every compare cell)."""
        window = self.window
        if window.compare_on:
            cells = window.compare.cells.values()
            return bool(cells) and window.compare.complete() and all(
                c.viewer.layer.heatmap is not None or "unavailable" in c.title.text()
                for c in cells)
        return window.layer_model.heatmap is not None

    def show_map(self, map_result) -> None:
        """Put one map on the single viewer (over the frame it belongs to)."""
        window = self.window
        info = map_info(map_result)
        window.layer_model.set_map(map_result.heatmap, info,
                                   owner=owner_key(window.image, window.viewer.frame),
                                   shared_max=self.shared_max(info.units))
        window.map_warning = map_result.warning
        window.update_caption()
        window.metrics.schedule()
        window.sig_map_drawn.emit(map_result.method, map_result.layer)

    # -- requests ---------------------------------------------------------------------------
    def request(self, submit: bool = True) -> int | None:
        """Show the wanted map(s) from the cache, or ask the worker for what is missing.

        With ``submit`` False only the cache is used (frames scrolling by, cine playing).

        Returns
        -------
        int or None
            The job id, or None when everything came from the cache (or nothing to do).
        """
        window = self.window
        window.debounce.stop()
        if not self.ready():
            return None
        ctx = self.context_key()
        self._show_prediction_from_cache(ctx)
        if window.compare_on:
            return self._request_compare(ctx, submit)
        explainer = self.explainer(window.method)
        reason = self.reason(window.method)
        if reason:
            window.layer_model.heatmap = None
            window.show_error(f"{explainer.title}: {reason}")
            return None
        cached = self.cached(self.map_key(ctx, window.method, window.layer))
        if cached is not None:
            self.show_map(cached)
            # A map streamed in early is cached before its prediction: when the job that
            # would bring the prediction was dropped (the image shown again meanwhile), ask
            # again, or the window keeps a map with no prediction.
            running = window.jobs.live_context("explain")
            if ctx in self.results or not submit or (running or {}).get("key") == ctx:
                return None
            return self._submit(ctx, [window.method], [window.layer] if is_layer_based(
                explainer) else "auto")
        window.layer_model.heatmap = None
        window.map_warning = None  # it spoke of the map shown before
        if not submit or window.viewer.is_playing():
            window.update_caption()
            return None  # maps are made per frame; playback shows the cached ones only
        # Gradient-family maps of every layer come from one capture almost for free, so ask
        # for all of them now and a later layer click is served from this window's cache.
        cheap = "forward_fn" not in getattr(explainer, "needs", ())
        layers = "all" if cheap or not is_layer_based(explainer) else [window.layer or "auto"]
        return self._submit(ctx, [window.method], layers)

    def _submit(self, ctx: tuple, methods: list[str], layers, kind: str = "explain",
                target=None) -> int:
        window = self.window
        target = window.target if target is None else target
        region = ctx[4][1] if isinstance(ctx[4], tuple) else None
        fields = dict(image=window.image, model=window.model, methods=list(methods),
                      layers=layers, target="top" if target is None else int(target),
                      frame=window.viewer.frame, roi=region, versus=ctx[5],
                      params={m: dict(self.params_for(m)) for m in methods})
        context = {"key": ctx, "methods": list(methods),
                   "params": {m: tuple(sorted(self.params_for(m).items())) for m in methods}}

        def run(progress, cancel, on_partial):
            # Imported here, on the worker: the session module imports torch.
            from engine.explain.session import ExplainRequest

            result = window.session.explain(ExplainRequest(**fields), progress=progress,
                                            cancel=cancel, on_partial=on_partial)
            return result, target_outline(result)

        if kind == "explain":
            # Metrics of the map being replaced must not hold the new map back on the one
            # worker; the trust panel measures the new map once it is drawn.
            window.jobs.cancel("metrics")
        return window.jobs.submit(
            kind, run, tag=window.view_tag(), background=kind != "explain",
            on_partial=lambda m, c: self._store(c, m),
            on_done=self._explained if kind == "explain" else self._reference_done,
            on_failed=self._failed if kind == "explain" else lambda _t, _c: None,
            on_cancelled=self._cancelled if kind == "explain" else None,
            **context)

    def _explained(self, outcome, context: dict) -> None:
        window = self.window
        result, outline = outcome
        for map_result in result.maps.values():
            self._store(context, map_result)
        self.results[context["key"]] = result
        self.outlines[context["key"]] = outline
        if context["key"] != self.context_key():
            return  # the target changed while it ran; the cache keeps it for later
        self._end_compare_cells(context, "no map")
        window.result = result
        self._show_outline(context["key"])
        note = self.outline_note(context["key"])
        window.panel.set_prediction(result.classes, result.scores, result.target)
        window.set_use(result.intended_use or None)
        # A map's own warning ("... is all zero") is news only while that map is on screen: a
        # request for every layer brings back maps of layers nobody is looking at.
        shown = self._on_screen()
        off_screen = ({m.warning for key, m in result.maps.items() if key not in shown}
                      - {m.warning for key, m in result.maps.items() if key in shown})
        warnings = [w for w in result.warnings
                    if w != result.intended_use.get("message") and w not in off_screen]
        if not window.compare_on and window.layer_model.heatmap is None:
            # The job for this view is over and brought no map for its layer: say why the
            # view stays empty, in the caption beside "explaining ...".
            explainer = self.explainer(window.method)
            window.map_warning = missing_map_warning(
                getattr(explainer, "title", window.method), window.method,
                window.layer if is_layer_based(explainer) else INPUT_LAYER, warnings)
        for warning in warnings:
            window.status.message.setText(warning + note)
        if not warnings:
            window.status.message.setText(
                f"{result.target_name}: {100 * result.scores[result.target]:.1f} %"
                f" — {result.timings_ms.get('total', 0.0):.0f} ms" + note)
        window.update_caption()
        window.metrics.schedule()
        self._ensure_reference(result, context)

    def _on_screen(self) -> set[tuple[str, str]]:
        """``(method, layer)`` of every map the view shows (one, or every compare cell)."""
        window = self.window

        def layer_of(method: str, layer: str | None) -> str | None:
            return layer if is_layer_based(self.explainer(method)) else INPUT_LAYER

        if window.compare_on:
            return {(m, layer_of(m, lay)) for m in self.compare_methods
                    for lay in self.compare_layers}
        return {(window.method, layer_of(window.method, window.layer))}

    def _ensure_reference(self, result, context: dict) -> None:
        """Explain the top class too when another class is shown, so the absolute scale
        compares the map with the one the model's own decision rests on."""
        window = self.window
        top = max(range(len(result.scores)), key=result.scores.__getitem__)
        if top == result.target or window.compare_on:
            return
        ctx = context["key"][:4] + (top, None)  # the decision itself, uncontrasted
        if self.map_key(ctx, window.method, window.layer) in self.maps:
            return
        layers = [window.layer] if is_layer_based(self.explainer(window.method)) else "auto"
        self._submit(ctx, [window.method], layers, kind="reference", target=top)

    def _reference_done(self, outcome, context: dict) -> None:
        result, outline = outcome
        for map_result in result.maps.values():
            self._store(context, map_result)
        self.results.setdefault(context["key"], result)
        self.outlines.setdefault(context["key"], outline)

    def _show_outline(self, ctx: tuple) -> None:
        """Outline the explained class's predicted mask, when the result for ``ctx`` has one, in
        the viewer and in every cell of the compare grid."""
        window = self.window
        window.viewer.set_outline(self.outlines.get(ctx), frame=ctx[1])
        window.compare.set_outline(self.outlines.get(ctx), frame=ctx[1])

    def outline_note(self, ctx: tuple) -> str:
        """What the outline and the map show, for the status line ("" without an outline)."""
        result = self.results.get(ctx)
        if result is None or self.outlines.get(ctx) is None:
            return ""
        where = ("the drawn region" if isinstance(ctx[4], tuple)
                 else f"the pixels predicted as {result.target_name}")
        return (f" — outlined: predicted {result.target_name} mask; the map explains "
                f"{result.target_name} over {where}")

    def _failed(self, text: str, context: dict) -> None:
        self.window.show_error(text)
        self._end_compare_cells(context, "failed")

    def _cancelled(self, context: dict) -> None:
        self._end_compare_cells(context, "cancelled")

    def current_result(self):
        """Return the last result for what is shown, holding every map computed for it.

        Maps of one (image, frame, model, target) come from several requests (one per method,
        Score-CAM one layer at a time); exports and metrics need the one on screen, so the
        result handed to them carries all of those with the current parameters.
        """
        window = self.window
        if window.result is None or window.image is None or window.model is None:
            return window.result
        ctx = self.context_key()
        if self.results.get(ctx) is not window.result:
            return None  # the result is for another view (a frame or class being fetched)
        maps = dict(window.result.maps)
        for key, map_result in self.maps.items():
            method = key[len(ctx)]
            if key[: len(ctx)] == ctx and key[len(ctx) + 1] == tuple(
                    sorted(self.params_for(method).items())):
                maps[(method, map_result.layer)] = map_result
        return dataclasses.replace(window.result, maps=maps)

    def _show_prediction_from_cache(self, ctx: tuple) -> None:
        window = self.window
        result = self.results.get(ctx)
        if result is window.result:
            return
        window.result = result
        self._show_outline(ctx)
        if result is None:
            window.panel.clear_prediction()
        else:
            window.panel.set_prediction(result.classes, result.scores, result.target)
            window.set_use(result.intended_use or None)
        window.update_caption()

    # -- what the user changes --------------------------------------------------------------
    def roi_changed(self, _value) -> None:
        """A region was drawn or cleared: a segmentation model explains the new region."""
        if is_segmentation(self.window.model):
            self.request()

    def set_target(self, index: int | None) -> None:
        self.window.target = index
        self.request()

    def set_versus(self, index: int | None) -> None:
        """Contrast the target with class ``index`` (logit target − logit index), or not."""
        self.window.versus = index
        self.request()

    def set_method(self, name: str) -> None:
        window = self.window
        window.method = name
        if window.panel.current_method() != name:
            window.panel.select_method(name)
        self.request()

    def set_layer(self, name: str) -> None:
        self.window.layer = name
        self.request()

    def params_changed(self, values: dict) -> None:
        window = self.window
        if window.method is not None:
            self.param_values[window.method] = dict(values)
            window.debounce.start()
