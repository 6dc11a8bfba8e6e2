"""Two models, one case: explain the shown image with the window's model and a second one.

Tools ▸ Compare with model… asks for model B (``demo-biased`` against ``demo`` is the built-in
example) and opens :class:`gui.compare_view.QtModelCompareView`. One worker job loads model B
(once per model) and explains both models with the same method and parameters, each at its own
default layer, for the same class by name: the window's target class, or model A's top class.
The two-panel figure is drawn and written on the worker too.

Under the header the view gives each model's prediction and the share of its map's energy in a
common region (:func:`engine.metrics.model_agreement.model_agreement`): the ROI drawn on the
compared image, or else the other model's top-10 % region. Drawing or clearing the ROI updates it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog

from engine.core.errors import LucidaError
from engine.export.figure import probability_text
from engine.metrics.model_agreement import TOP_FRACTION, model_agreement
from gui.compare_view import QtModelCompareView

#: Built-in models offered as model B.
DEMO_MODELS = ("demo-biased", "demo")


class ModelCompare(QObject):
    """Asks the worker for two models' maps of the shown image and shows them side by side.

    Parameters
    ----------
    window : QtMainWindow
        Provides the image, frame, model, method, target, parameters, the viewer's window and
        the job router.
    """

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.view: QtModelCompareView | None = None
        self.models: dict[str, object] = {}  # model B, by spec, loaded once on the worker
        self.results: list = []
        self.spec: str | None = None
        self._case = None  # (image, frame) the results belong to

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        # The comparison is a window of its own: it goes when the review window closes.
        if watched is self.window and event.type() == QEvent.Type.Close \
                and self.view is not None:
            self.view.close()
        return False

    def choose(self) -> None:
        """Ask which model to compare with, then compare (Tools ▸ Compare with model…)."""
        window = self.window
        current = window.model_spec
        choices = [m for m in DEMO_MODELS if m != current] + [m for m in DEMO_MODELS
                                                               if m == current]
        spec, ok = QInputDialog.getItem(
            window, "Compare with model", "Model B (a built-in name or a model card path):",
            choices, 0, True)
        if ok and spec.strip():
            self.compare(spec.strip())

    def compare(self, spec: str) -> int | None:
        """Explain the shown image with the window's model (A) and ``spec`` (B), side by side.

        Returns
        -------
        int or None
            The job id, or None when there is nothing to compare yet (said in the status bar).
        """
        window = self.window
        image, model_a, method = window.image, window.model, window.method
        if image is None or model_a is None or method not in window.explainers:
            window.message.setText("Open an image and load a model before comparing models")
            return None
        frame = window.viewer.frame
        params = {method: dict(window.params_for(method))}
        target = "top" if window.target is None else int(window.target)
        view = self._show()
        self.spec, self.results, self._case = spec, [], (image, frame)
        title = window.explainers[method].title
        view.set_case(image, frame, window.viewer.window, window.viewer.invert,
                      [model_a.name, spec],
                      f"<b>{title}</b> on {image.path.name}: {model_a.name} (A) against "
                      f"{spec} (B), each at its default layer, for the same class; each map "
                      f"against its own peak.")
        trust = window.models.trust_for(spec)
        device = window.device_choice
        known = self.models.get(spec)

        def run(progress, cancel, _partial):
            # Imported here, on the worker: these modules import torch.
            from engine.explain.session import ExplainRequest
            from gui.model_loading import Loaded, load, resolve

            model_b = known
            if model_b is None:
                progress(0.05, f"Loading {spec}…")
                outcome = load(spec, trust, resolve(device))
                if not isinstance(outcome, Loaded):
                    return outcome  # TrustNeeded: the window asks, as when loading a model
                model_b = outcome.model
            session = window.session
            progress(0.2, f"Explaining with {model_a.name}…")
            first = session.explain(ExplainRequest(image, model_a, [method], "auto", target,
                                                   frame, params), cancel=cancel)
            progress(0.6, f"Explaining with {model_b.name}…")
            second = session.explain(ExplainRequest(image, model_b, [method], "auto",
                                                    first.target_name, frame, params),
                                     cancel=cancel)
            return model_b, first, second

        return window.jobs.submit("compare_models", run, tag=window.view_tag(),
                                  on_done=self._done, on_failed=self._failed)

    def _show(self) -> QtModelCompareView:
        if self.view is None:
            window = self.window
            self.view = QtModelCompareView(window.layer_model, window)
            self.view.setWindowFlag(Qt.WindowType.Window, True)
            self.view.resize(1100, 640)
            self.view.sig_export.connect(self.export_dialog)
            window.installEventFilter(self)
            window.viewer.sig_roi_changed.connect(lambda _roi: self.show_numbers())
        self.view.show()
        self.view.raise_()
        return self.view

    def _done(self, outcome, _context: dict) -> None:
        if not isinstance(outcome, tuple):
            self._failed(f"{outcome.name} {outcome.message}; load it once as the main model "
                         "to trust it, then compare", {})
            return
        model_b, first, second = outcome
        self.models[self.spec] = model_b
        self.results = [first, second]
        for index, result in enumerate(self.results):
            self.view.set_result(index, result)
        self.view.export_button.setEnabled(True)
        self.show_numbers()
        self.window.message.setText(
            f"{first.target_name}: {first.model.get('name')} "
            f"{100 * first.scores[first.target]:.1f} %, {second.model.get('name')} "
            f"{100 * second.scores[second.target]:.1f} %")

    def show_numbers(self) -> None:
        """Give each model's prediction and its map's energy share in the common region.

        The region is the ROI drawn on the window while it shows the compared image and
        frame, else each model's share lies in the other model's top region.
        """
        if self.view is None or len(self.results) != 2 or self._case is None:
            return
        window = self.window
        first, second = self.results
        same_case = window.image is self._case[0] and window.viewer.frame == self._case[1]
        roi = window.roi if same_case else None
        maps = [next(iter(r.maps.values())).heatmap for r in self.results]
        try:
            agreement = model_agreement(*maps, roi=roi, roi_shape=window.roi_shape)
        except LucidaError as exc:
            self.view.set_numbers(exc.one_line())
            return
        shares = (agreement.share_a, agreement.share_b)
        where = ("in the drawn ROI" if agreement.region == "roi" else
                 f"in the other model's top {TOP_FRACTION:.0%} region")
        parts = []
        for role, result, share in zip("AB", (first, second), shares, strict=True):
            p = probability_text(float(result.scores[result.target]))
            parts.append(f"<b>{role}</b> {result.model.get('name', '?')}: {result.target_name} "
                         f"p {p if p[0] in '<>' else '= ' + p}, <b>{share:.0%}</b> of its map's "
                         "energy")
        note = (f"an evenly spread map: {agreement.baseline:.0%}; top regions overlap "
                f"IoU {agreement.top_iou:.2f}")
        if agreement.region == "top":
            note += ". Draw an ROI to measure both maps in one region"
        self.view.set_numbers(f"{'; '.join(parts)} — {where} ({note}).")

    def _failed(self, text: str, _context: dict) -> None:
        if self.view is not None:
            self.view.set_status(1, "failed")
        self.window.show_error(text)

    def export_dialog(self) -> None:
        """Ask where to write the two-panel figure, then write it."""
        folder = Path(str(self.window.settings.value("export_dir", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(self.view, "Export model comparison",
                                              str(folder / "model_comparison.png"),
                                              "PNG image (*.png)")
        if path:
            self.export(path)

    def export(self, path: str, keep_identifiers: bool = False) -> int | None:
        """Write the two-panel figure to ``path`` on the worker (de-identified by default)."""
        if len(self.results) != 2 or self._case is None:
            return None
        image, _frame = self._case
        results = list(self.results)
        layer, viewer = self.window.layer_model, self.view.cells[0].viewer
        display = dict(window=viewer.window, invert=viewer.invert, opacity=layer.opacity,
                       colormap=layer.colormap, threshold=layer.threshold, corners=True)

        def run(_progress, _cancel, _partial):
            from engine.export.compare_figure import write_model_comparison
            from engine.export.figure import FigureOptions

            options = FigureOptions(**display)
            return write_model_comparison(results, image, path, options,
                                          keep_identifiers=keep_identifiers)

        return self.window.jobs.submit(
            "export_compare", run,
            on_done=lambda written, _c: self.window.message.setText(f"Wrote {written}"))
