"""The metrics controller: keeps the trust panel in line with the map and ROI on screen.

A new ROI on the same map needs only the ROI measures (``engine.metrics.localisation``); a new
map needs everything (``engine.metrics.case_metrics``), which runs at once for gradient and
activation methods and waits for Compute for perturbation methods, whose sanity check re-runs
them several times. Both run on the worker, tagged with the view they measure.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer

from engine.explain.api import INPUT_LAYER, is_layer_based
from gui.screen_fit import scrolling

#: Metric keys that depend on the ROI only (the rest depend on the map and the model).
ROI_KEYS = ("roi", "roi_shape", "pointing_hit", "energy_in_roi", "iou_at_half")
#: Map, method or ROI changes settle this long before the trust metrics follow them.
METRICS_DEBOUNCE_MS = 150
#: Width of the trust panel's column, in pixels: room for its table's labels and the curves.
TRUST_WIDTH = 320


def roi_only(heatmap, roi: tuple, shape: str) -> dict:
    """The ROI measures of a map whose other metrics are known (worker thread)."""
    from engine.metrics.localisation import roi_metrics

    return roi_metrics(heatmap, roi, shape)


class MetricsController:
    """Runs the trust metrics of the shown map for the trust panel.

    Parameters
    ----------
    window : QtMainWindow
    """

    def __init__(self, window) -> None:
        self.window = window
        self.panel = None
        self._for: tuple | None = None  # (map signature, ROI) the trust panel shows
        self._pending: tuple | None = None  # (signature, ROI, roi_only) being computed
        self._timer = QTimer(window)
        self._timer.setSingleShot(True)
        self._timer.setInterval(METRICS_DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)

    def schedule(self) -> None:
        """Bring the panel up to date once changes settle."""
        self._timer.start()

    def open_panel(self) -> None:
        """Show the trust-metrics dock and compute metrics for the current map."""
        window = self.window
        if self.panel is None:
            from gui.trust_panel import QtTrustPanel

            self.panel = window.trust_panel = QtTrustPanel(window)
            # Its summary, curves and table need height, which the right column spends on the
            # explanation panel and heatmap controls: it gets a full-height column of its own.
            window.docks["trust"] = window.add_dock("Trust", scrolling(self.panel),
                                                    Qt.DockWidgetArea.RightDockWidgetArea,
                                                    Qt.Orientation.Horizontal)
            # Sizes apply once the new column is laid out, on the next pass of the event loop.
            QTimer.singleShot(0, lambda: window.resizeDocks(
                [window.docks["trust"]], [TRUST_WIDTH], Qt.Orientation.Horizontal))
            self.panel.sig_compute_requested.connect(self.request)
            self.panel.sig_cancel_requested.connect(lambda: window.jobs.cancel("metrics"))
            window.docks["trust"].visibilityChanged.connect(
                lambda visible: visible and self.schedule())
        window.docks["trust"].show()
        window.docks["trust"].raise_()
        self.request()

    def clear(self) -> None:
        """Another image is shown: nothing measured belongs to it yet."""
        self._for = self._pending = None
        if self.panel is not None:
            self.panel.set_busy(False)
            self.panel.set_metrics(None)

    def shown_metrics(self) -> dict | None:
        """The trust metrics of the map and ROI on screen, as the panel shows them.

        Returns
        -------
        dict or None
            ``method``, ``layer`` and the measures; None while the panel has not measured
            what is on screen (closed, still computing, or out of date).
        """
        window, panel = self.window, self.panel
        if panel is None or not panel.metrics or self._for is None:
            return None
        roi = None if window.roi is None else (window.roi, window.roi_shape)
        if self._for != (self._signature(), roi):
            return None
        return {"method": window.method, "layer": self._layer(), **panel.metrics}

    # -- what is measured -------------------------------------------------------------------
    def _layer(self) -> str:
        window = self.window
        return window.layer if is_layer_based(window.explainers.get(window.method)) \
            else INPUT_LAYER

    def _signature(self) -> tuple | None:
        """Identify the map on screen (image, frame, model, target, method, params, layer)."""
        window = self.window
        if window.image is None or window.model is None or window.method is None:
            return None
        explain = window.explain
        return explain.map_key(explain.context_key(), window.method, window.layer)

    def _measurable(self):
        """Return the result holding the map on screen, or None while it is not ready."""
        window = self.window
        if window.image is None or window.model is None or window.method is None:
            return None
        result = window.current_result()
        if result is None:
            return None  # the prediction for this image/target has not arrived yet
        return result if (window.method, self._layer()) in result.maps else None

    def refresh(self) -> None:
        """Bring an open trust panel in line with the map and ROI on screen."""
        window, panel = self.window, self.panel
        if panel is None or not window.docks["trust"].isVisible() or window.compare_on:
            return
        result = self._measurable()
        if result is None:
            return
        signature = self._signature()
        roi = None if window.roi is None else (window.roi, window.roi_shape)
        if self._for == (signature, roi):
            return
        pending = self._pending
        if pending is not None and pending[0] == signature and (pending[1] == roi
                                                                or not pending[2]):
            return  # it is being computed; a full run's end catches up with a newer ROI
        if self._for is not None and self._for[0] == signature and \
                "deletion_auc" in panel.metrics:
            if roi is None:
                panel.set_metrics({k: v for k, v in panel.metrics.items() if k not in ROI_KEYS})
                self._for = (signature, None)
                return
            heatmap = result.maps[(window.method, self._layer())].heatmap
            panel.set_busy(True)
            self._pending = (signature, roi, True)
            window.jobs.submit("metrics", lambda _p, _c, _partial: roi_only(heatmap, *roi),
                               tag=window.view_tag(), on_done=self._done,
                               on_failed=self._failed, on_cancelled=self._cancelled,
                               on_progress=self._progress, signature=signature, roi=roi,
                               roi_only=True)
            return
        if "forward_fn" in getattr(window.explainers.get(window.method), "needs", ()):
            self._stale()
            return
        self.request()

    def _stale(self) -> None:
        self._for = None
        self.window.jobs.cancel("metrics")
        self.panel.set_metrics(None)
        self.panel.summary.setText(
            "Out of date: the map on screen changed. Press Compute to measure it "
            "(this method's sanity check re-runs it several times).")

    def request(self) -> int | None:
        """Compute the trust metrics of the shown map, with the current ROI, on the worker."""
        window = self.window
        if window.result is None or window.image is None or window.model is None:
            window.show_error("no explanation to measure yet. Fix: open an image and wait for "
                              "its map")
            return None
        result = self._measurable()
        if result is None:
            window.show_error("the map on screen is still being computed. Fix: wait for it, "
                              "then press Compute")
            return None
        image, model = window.image, window.model
        method, layer = window.method, self._layer()
        roi, shape = window.roi, window.roi_shape
        if self.panel is not None:
            self.panel.set_busy(True)
        signature, roi_value = self._signature(), None if roi is None else (roi, shape)
        self._pending = (signature, roi_value, False)

        def run(progress, cancel, _partial):
            from engine.metrics.battery import trust_battery  # on the worker: imports torch

            # The metric families (sensitivity, ROAD, complexity...) measure 2-D maps.
            return trust_battery(window.session, result, image, model, method, layer, roi=roi,
                                 roi_shape=shape, progress=progress, cancel=cancel,
                                 families=getattr(image, "kind", None) != "volume")

        return window.jobs.submit("metrics", run, tag=window.view_tag(), on_done=self._done,
            on_failed=self._failed, on_cancelled=self._cancelled, on_progress=self._progress,
            signature=signature, roi=roi_value, roi_only=False)

    # -- answers ----------------------------------------------------------------------------
    def _progress(self, fraction: float, text: str, _context: dict) -> None:
        if self.panel is not None:
            self.panel.set_progress(fraction, text)

    def _done(self, metrics: dict, context: dict) -> None:
        self._pending = None
        line = (metrics.get("uncertainty") or {}).get("summary")
        self.window.status.message.setText(
            f"Trust metrics computed; {line}" if line else "Trust metrics computed")
        if self.panel is None:
            return
        self.panel.set_busy(False)
        if context["roi_only"]:
            kept = {k: v for k, v in self.panel.metrics.items() if k not in ROI_KEYS}
            metrics = {**kept, **metrics}
        self.panel.set_metrics(metrics)
        self._for = (context["signature"], context["roi"])
        # The map or ROI may have changed while this ran: catch up.
        self.schedule()

    def _failed(self, text: str, _context: dict) -> None:
        self._pending = None
        self.window.show_error(text)
        if self.panel is not None:
            self.panel.set_busy(False)

    def _cancelled(self, _context: dict) -> None:
        self._pending = None
        if self.panel is not None:
            self.panel.set_busy(False)
