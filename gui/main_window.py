"""The review window: study browser, viewer, explanation panel, tags, status bar, docks."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import LucidaError
from engine.core.resources import DEMO_STUDY
from engine.explain.api import INPUT_LAYER, is_layer_based
from gui.compare_view import QtCompareGrid
from gui.explain_panel import OPEN_CARD, QtExplainPanel
from gui.overlay_controls import QtOverlayControls
from gui.overlay_layer import OverlayLayer
from gui.roi_item import describe_roi
from gui.shortcuts import KEYS, help_html
from gui.study_browser import QtStudyBrowser, thumbnail
from gui.tag_panel import QtTagPanel
from gui.viewer import CT_PRESETS, QtImageViewer
from gui.worker import QtEngineWorker

#: Method shown first when the registry has it.
DEFAULT_METHOD = "gradcam"
#: Parameter edits and frame scrolling settle this long before a new explanation is asked for.
DEBOUNCE_MS = 250
RECENT_MAX = 10
#: Maps this window keeps for instant layer/method switches (each is one image-sized array).
MAP_CACHE_SIZE = 256
#: Suffixes of files that are meant to be images: failing to open one is an error.
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ""}
#: Metric keys that depend on the ROI only (the rest depend on the map and the model).
ROI_KEYS = ("roi", "roi_shape", "pointing_hit", "energy_in_roi", "iou_at_half")
#: Map, method or ROI changes settle this long before the trust metrics follow them.
METRICS_DEBOUNCE_MS = 150
#: Width of the trust panel's column, in pixels: room for its table's labels and the curves.
TRUST_WIDTH = 320


def _series_text(image) -> str:
    dataset = image.dataset
    return "" if dataset is None else str(dataset.get("SeriesDescription", ""))


class TrustNeeded:
    """Returned by a model-load job when the file can run code and was not trusted."""

    def __init__(self, spec: str, message: str) -> None:
        self.spec, self.message = spec, message


def _load_model(spec: str, trust: bool):
    """Load a model on the worker thread, discovering its layers there too."""
    from engine.core.errors import TrustRequired
    from engine.models.loaded import load_model

    try:
        model = load_model(spec, trust=trust)
    except TrustRequired as exc:
        return TrustNeeded(spec, exc.one_line())
    model.layers()  # the dry forward pass is cached on the model; do it off the GUI thread
    return model


def _roi_metrics(heatmap, roi: tuple[int, int, int, int], shape: str) -> dict:
    """The ROI keys of ``case_metrics`` for a map whose other metrics are already known.

    Moving an ROI changes only these; recomputing the deletion curves and the sanity cascade
    for it would make the user wait seconds for numbers that cannot change.
    """
    import numpy as np

    from engine.metrics.localisation import (
        energy_in_roi,
        iou_at_threshold,
        pointing_hit,
        roi_mask,
    )

    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    mask = roi_mask(heat.shape, roi, shape)
    return {"roi": list(roi), "roi_shape": shape, "pointing_hit": pointing_hit(heat, mask),
            "energy_in_roi": energy_in_roi(heat, mask),
            "iou_at_half": iou_at_threshold(heat, mask, 0.5)}


def _open_paths(paths: list[str], progress, cancel):
    """Open files or folders and render thumbnails, on the worker thread."""
    from engine.studies.tree import open_paths

    tree = open_paths(paths, progress=progress, cancel=cancel)
    thumbs = {}
    for image in tree.all_images():
        cancel.check()
        try:
            thumbs[str(image.path)] = thumbnail(image)
        except LucidaError:
            continue  # the tree still lists it; opening it will report the reason
    return tree, thumbs


class QtErrorBanner(QFrame):
    """A non-modal one-line message over the viewer, dismissed by its close button."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setStyleSheet(
            "QFrame { background: #5a1d1d; } QLabel { color: #ffe0e0; padding: 4px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 2, 0)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        """Show ``text`` (one line from ``LucidaError.one_line``)."""
        self.label.setText(text)
        self.show()


class QtMainWindow(QMainWindow):
    """The review window. It holds view state and turns user intent into worker jobs.

    Parameters
    ----------
    settings : QSettings, optional
        Where dock layout and recent files persist (tests pass a temporary file).
    session : engine.explain.session.Session, optional
        The engine session; one is made if omitted. Only the worker thread calls it.

    Signals
    -------
    sig_map_drawn(str method, str layer)
        A heatmap reached the screen (the screenshot mode and tests wait for it).
    sig_error(str one_line)
        An error was shown to the user.
    """

    sig_map_drawn = Signal(str, str)
    sig_error = Signal(str)

    def __init__(self, settings: QSettings | None = None, session=None) -> None:
        super().__init__()
        from engine.explain.session import Session

        self.setWindowTitle("Lucida")
        self.resize(1440, 900)
        self.settings = settings or QSettings("Lucida", "Lucida")
        self.session = session or Session()
        self.worker = QtEngineWorker(self)
        self.image = None
        self.model = None
        self.model_spec: str | None = None
        self.trust_model = False
        self.confirm_trust = self._ask_trust
        self.target: int | None = None  # None = the top class
        self.method: str | None = None
        self.layer: str | None = None
        self.result = None
        self.explainers: dict[str, object] = {}
        self.param_values: dict[str, dict] = {}
        self.maps: OrderedDict[tuple, object] = OrderedDict()  # map key -> MapResult (LRU)
        self._results: dict[tuple, object] = {}  # context key -> last ExplainResult
        self.compare_on = False
        self.compare_methods: list[str] = []
        self.compare_layers: list[str] = []
        self._jobs: dict[int, dict] = {}
        self._latest: dict[str, int] = {}
        self._picking_preset = False
        self.roi: tuple[int, int, int, int] | None = None  # image pixels, end-exclusive
        self.roi_shape = "box"
        self._metrics_for: tuple | None = None  # (map signature, ROI) the trust panel shows
        self._metrics_pending: tuple | None = None  # (signature, ROI, roi_only) being computed

        self.layer_model = OverlayLayer(self)
        self.viewer = QtImageViewer(self.layer_model)
        self.compare = QtCompareGrid(self.layer_model)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.viewer)
        self.stack.addWidget(self.compare)
        self.banner = QtErrorBanner()
        self.caption = QLabel()
        self.caption.setStyleSheet(
            "background: #17181b; color: #f0f0f0; padding: 4px 8px; font-size: 13px;"
        )
        # A long caption wraps onto a second line; as a minimum width it would squeeze the docks
        # and widen the window.
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(self.caption)
        central_layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.browser = QtStudyBrowser()
        self.tags = QtTagPanel()
        self.panel = QtExplainPanel()
        self.overlay_controls = QtOverlayControls(self.layer_model)
        self.docks = {
            "studies": self._dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "explain": self._dock("Explanation", self.panel,
                                  Qt.DockWidgetArea.RightDockWidgetArea),
            "overlay": self._dock("Heatmap", self.overlay_controls,
                                  Qt.DockWidgetArea.RightDockWidgetArea),
            "tags": self._dock("DICOM tags", self.tags, Qt.DockWidgetArea.LeftDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["studies"], self.docks["tags"])
        self.docks["studies"].raise_()
        self.resizeDocks([self.docks["studies"], self.docks["explain"]], [290, 360],
                         Qt.Orientation.Horizontal)
        self._build_status_bar()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.request_explain)
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(METRICS_DEBOUNCE_MS)
        self._metrics_timer.timeout.connect(self._refresh_metrics)
        self._build_actions()
        self._connect()
        self._load_explainers()
        self._restore_layout()
        self.setAcceptDrops(True)

    # -- construction -----------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area, orientation=None) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        if orientation is None:
            self.addDockWidget(area, dock)
        else:
            self.addDockWidget(area, dock, orientation)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.message = QLabel("Ready")
        self.pixel_label = QLabel()
        self.pixel_label.setMinimumWidth(260)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel_work)
        bar.addWidget(self.message, 1)
        bar.addPermanentWidget(self.pixel_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

    def _build_actions(self) -> None:
        self.actions_by_id: dict[str, QAction] = {}

        def act(action_id: str, text: str, slot, checkable: bool = False) -> QAction:
            action = QAction(text, self)
            key = KEYS.get(action_id, ("", ""))[0]
            if key:
                action.setShortcut(QKeySequence(key))
            action.setCheckable(checkable)
            action.triggered.connect(slot)
            self.addAction(action)  # shortcuts work while any child has focus
            self.actions_by_id[action_id] = action
            return action

        menu = self.menuBar().addMenu("&File")
        menu.addAction(act("open", "&Open…", self._open_dialog))
        self.recent_menu = menu.addMenu("Open &recent")
        self._fill_recent()
        menu.addSeparator()
        menu.addAction(act("export", "&Export report…", self.open_export))
        menu.addSeparator()
        menu.addAction(act("quit", "&Quit", self.close))

        menu = self.menuBar().addMenu("&View")
        menu.addAction(act("overlay", "Show &heatmap", self._toggle_overlay, True))
        self.actions_by_id["overlay"].setChecked(True)
        menu.addAction(act("compare", "&Compare mode", self.set_compare, True))
        menu.addSeparator()
        menu.addAction(act("fit", "&Fit", self._fit))
        menu.addAction(act("actual", "&Actual size", self._actual))
        menu.addAction(act("reset", "&Reset view", self.reset_view))
        menu.addAction(act("invert", "&Invert", self._invert, True))
        windows = menu.addMenu("&Window presets")
        for n, (name, center, width) in enumerate(CT_PRESETS, start=1):
            windows.addAction(act(f"preset{n}", f"{name} ({center:g} / {width:g})",
                                  lambda _c=False, n=n: self._ct_preset(n)))
        menu.addSeparator()
        menu.addAction(act("prev", "Previous frame", lambda: self._step_frame(-1)))
        menu.addAction(act("next", "Next frame", lambda: self._step_frame(1)))
        menu.addAction(act("cine", "Play / stop cine", self.viewer.toggle_cine))
        menu.addAction(act("opacity_down", "Opacity −10 %", lambda: self._nudge_opacity(-0.1)))
        menu.addAction(act("opacity_up", "Opacity +10 %", lambda: self._nudge_opacity(0.1)))
        menu.addSeparator()
        for dock in self.docks.values():
            menu.addAction(dock.toggleViewAction())
        menu.addAction("Reset layout", self.reset_layout)

        self.tools_menu = self.menuBar().addMenu("&Tools")
        self.tools_menu.addAction(act("cancel", "Cancel running work", self._escape))
        roi_menu = self.tools_menu.addMenu("&Region of interest")
        self.roi_tools = QActionGroup(self)
        self.roi_tools.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for shape in ("box", "ellipse"):
            action = act(f"roi_{shape}", f"Draw {shape} ROI",
                         lambda on, shape=shape: self._roi_tool_toggled(shape, on), True)
            action.setToolTip(f"Drag on the image to draw a {shape} region of interest; "
                              "Esc returns to panning")
            self.roi_tools.addAction(action)
            roi_menu.addAction(action)
        roi_menu.addAction(act("roi_clear", "Clear ROI", self.clear_roi))
        self._add_optional_tools()

        menu = self.menuBar().addMenu("&Help")
        menu.addAction(act("help", "&Shortcuts", self.show_help))
        menu.addAction("&About Lucida", self._about)

        toolbar = QToolBar("View")
        toolbar.setObjectName("toolbar_view")
        self.addToolBar(toolbar)
        for action_id in ("open", "fit", "actual", "reset", "invert", "overlay", "compare"):
            toolbar.addAction(self.actions_by_id[action_id])
        toolbar.addSeparator()
        for action_id in ("roi_box", "roi_ellipse", "roi_clear"):
            toolbar.addAction(self.actions_by_id[action_id])
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window "))
        self.preset_combo = QComboBox()
        self.preset_combo.setMinimumWidth(200)
        self.preset_combo.setPlaceholderText("Custom (right drag)")
        self.preset_combo.activated.connect(self._preset_picked)
        toolbar.addWidget(self.preset_combo)
        self.frame_label = QLabel()
        toolbar.addWidget(self.frame_label)

    def _add_optional_tools(self) -> None:
        """Add menu entries for panels that may not be installed; a missing one is skipped."""
        self.trust_panel = None
        self.audit_view = None
        if importlib.util.find_spec("gui.trust_panel") is not None:
            self.tools_menu.addAction("&Trust metrics for this map", self.open_trust_panel)
        if importlib.util.find_spec("gui.audit_view") is not None:
            self.tools_menu.addAction("Bias &audit", self.open_audit_view)

    def _connect(self) -> None:
        w = self.worker
        w.sig_started.connect(self._job_started)
        w.sig_progress.connect(self._job_progress)
        w.sig_partial.connect(self._job_partial)
        w.sig_finished.connect(self._job_finished)
        w.sig_failed.connect(self._job_failed)
        w.sig_cancelled.connect(self._job_cancelled)
        w.sig_idle.connect(lambda: self._set_busy(False))
        self.viewer.sig_pixel_info.connect(self.pixel_label.setText)
        self.viewer.sig_frame_changed.connect(self._frame_changed)
        self.viewer.sig_window_changed.connect(self._window_changed)
        self.viewer.sig_roi_changed.connect(self._roi_changed)
        self.viewer.sig_roi_tool_changed.connect(self._roi_tool_changed)
        self.browser.sig_image_selected.connect(self.show_image)
        self.browser.sig_files_dropped.connect(self.open_paths)
        p = self.panel
        p.sig_model_requested.connect(self._model_requested)
        p.sig_target_changed.connect(self.set_target)
        p.sig_method_changed.connect(self.set_method)
        p.sig_params_changed.connect(self._params_changed)
        p.sig_layer_changed.connect(self.set_layer)
        p.sig_compare_changed.connect(self._compare_changed)
        self.layer_model.sig_changed.connect(self._layer_model_changed)

    def _load_explainers(self) -> None:
        from engine.explain.registry import registry

        reg = registry()
        self.explainers = {name: reg.get(name) for name in reg.names()}
        self.method = DEFAULT_METHOD if DEFAULT_METHOD in self.explainers else next(
            iter(self.explainers), None)
        self.panel.set_explainers(self.explainers, self.method)
        for line in getattr(reg, "errors", []):
            self.show_error(f"plugin skipped: {line}")

    # -- jobs -------------------------------------------------------------------------------
    def _submit(self, kind: str, fn, **context) -> int:
        job_id = self.worker.submit(kind, fn)
        self._jobs[job_id] = {"kind": kind, **context}
        self._latest[kind] = job_id
        return job_id

    def _current(self, job_id: int) -> dict | None:
        context = self._jobs.get(job_id)
        if context is None or self._latest.get(context["kind"]) != job_id:
            return None
        return context

    def _job_started(self, job_id: int, kind: str) -> None:
        self._set_busy(True)
        self.progress.setValue(0)
        self.message.setText({"open": "Opening files…", "model": "Loading model…",
                              "explain": "Explaining…",
                              "metrics": "Computing trust metrics…"}.get(kind, "Working…"))

    def _job_progress(self, job_id: int, fraction: float, text: str) -> None:
        context = self._current(job_id)
        if context is not None:
            self.progress.setValue(int(1000 * fraction))
            if text:
                self.message.setText(text)
            if context["kind"] == "metrics" and self.trust_panel is not None:
                self.trust_panel.set_progress(fraction, text)

    def _job_partial(self, job_id: int, map_result) -> None:
        context = self._jobs.get(job_id)
        if context is not None and context["kind"] == "explain":
            self._store_map(context, map_result)

    def _job_finished(self, job_id: int, kind: str, result) -> None:
        context = self._jobs.pop(job_id, None)
        if context is None:
            return
        if kind == "explain":
            for map_result in result.maps.values():
                self._store_map(context, map_result)
        if self._latest.get(kind) != job_id:
            return
        if kind == "open":
            self._opened(*result, context)
        elif kind == "model":
            self._model_loaded(result, context)
        elif kind == "explain":
            self._explained(result, context)
        elif kind == "metrics":
            self._metrics_done(result, context)

    def _job_failed(self, job_id: int, kind: str, text: str) -> None:
        context = self._jobs.pop(job_id, None)
        if context is not None and self._latest.get(kind) == job_id:
            self.show_error(text)
            if kind == "explain" and self.compare_on:
                for method in context.get("methods", []):
                    self.compare.set_status(method, "failed")
            if kind == "metrics" and self.trust_panel is not None:
                self._metrics_pending = None
                self.trust_panel.set_busy(False)

    def _job_cancelled(self, job_id: int, kind: str) -> None:
        context = self._jobs.pop(job_id, None)
        if context is not None and self._latest.get(kind) == job_id:
            self.message.setText("Cancelled")
            self.progress.setValue(0)
            if kind == "metrics" and self.trust_panel is not None:
                self._metrics_pending = None
                self.trust_panel.set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)

    def cancel_work(self) -> None:
        """Cancel the running engine work (Cancel button, Esc)."""
        self.worker.cancel()

    def _escape(self) -> None:
        # Esc first leaves the ROI tool (the gesture the user is in), then cancels work.
        if self.viewer.roi_tool is not None:
            self.viewer.set_roi_tool(None)
        else:
            self.cancel_work()

    # -- files ------------------------------------------------------------------------------
    def open_paths(self, paths: list[str], prefer: str | None = None) -> int:
        """Open files or folders on the worker; the first image is shown when they are read.

        Parameters
        ----------
        paths : list of str
            Files or folders.
        prefer : str, optional
            Show first the first image whose series description contains this text.
        """
        paths = [str(p) for p in paths]
        self._remember_recent(paths)
        return self._submit("open", lambda progress, cancel, _partial:
                            _open_paths(paths, progress, cancel), paths=paths, prefer=prefer)

    def open_demo(self) -> None:
        """Open the bundled demo study on a nodule case, and the demo model."""
        self.open_paths([str(DEMO_STUDY)], prefer="nodule")
        self.load_model("demo")

    def _open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "",
                                                "Images (*.dcm *.png *.jpg *.jpeg *.tif *.tiff);;"
                                                "All files (*)")
        if files:
            self.open_paths(files)

    def _opened(self, tree, thumbs, context: dict) -> None:
        images = tree.all_images()
        if images:  # a drop of unreadable files keeps the study that is open
            self.browser.set_tree(tree, thumbs)
        # Files the user named, or image files inside a folder, that fail are errors; other
        # files in a folder (a manifest, a README) are only counted.
        named = {str(Path(p)) for p in context["paths"]}
        failed = [(p, r) for p, r in tree.skipped
                  if str(p) in named or Path(p).suffix.lower() in IMAGE_SUFFIXES]
        if failed:
            path, reason = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            self.show_error(f"{path}: {reason}{more}")
        if images:
            prefer = context.get("prefer")
            wanted = [i for i in images if prefer and prefer in _series_text(i)]
            self.show_image((wanted or images)[0])
            ignored = len(tree.skipped) - len(failed)
            self.message.setText(f"Opened {len(images)} image(s)"
                                 + (f"; {ignored} other file(s) ignored" if ignored else ""))
        elif not failed:
            self.show_error("no images found in the opened files. Fix: open DICOM files or "
                            "PNG, JPEG, TIFF or BMP images")

    def _remember_recent(self, paths: list[str]) -> None:
        recent = [p for p in self.settings.value("recent", [], type=list) if p not in paths]
        self.settings.setValue("recent", (paths + recent)[:RECENT_MAX])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.value("recent", [], type=list):
            self.recent_menu.addAction(path, lambda p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(not self.recent_menu.isEmpty())

    def show_image(self, image) -> None:
        """Display an image and explain it with the current model, method and target."""
        self.image = image
        self.result = None
        self.viewer.set_image(image)
        self.browser.select_image(image)
        self.tags.set_dataset(image.dataset)
        self._fill_presets()
        self._update_frame_label()
        self._update_caption()
        self.request_explain()

    def _fill_presets(self) -> None:
        self.preset_combo.clear()
        if self.image is None or self.image.is_color:
            self.preset_combo.setEnabled(False)
            return
        self.preset_combo.setEnabled(True)
        self.preset_combo.addItem("File default", None)
        for label, preset in self.viewer.presets():
            self.preset_combo.addItem(label, preset)
        self.preset_combo.setCurrentIndex(0)

    # -- model ------------------------------------------------------------------------------
    def load_model(self, spec: str, trust: bool | None = None) -> int:
        """Load a model (``demo``, ``demo-biased`` or a card/model path) on the worker."""
        trust = self.trust_model if trust is None else trust
        return self._submit("model", lambda _p, _c, _partial: _load_model(spec, trust),
                            spec=spec)

    def _model_requested(self, spec: str) -> None:
        if spec == OPEN_CARD:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open model card", "",
                "Model cards and files (*.toml *.pt *.pth *.pt2 *.pkl);;All files (*)")
            if not path:
                if self.model_spec:
                    self.panel.set_model(self.model, self.model_spec)
                return
            spec = path
        self.load_model(spec)

    def _ask_trust(self, message: str) -> bool:
        answer = QMessageBox.warning(
            self, "Trust this model file?",
            f"{message}\n\nLoading it can run any code it contains. Load it only if you trust "
            "where it came from.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _model_loaded(self, model, context: dict) -> None:
        if isinstance(model, TrustNeeded):
            if self.confirm_trust(model.message):
                self.load_model(model.spec, trust=True)
            else:
                self.show_error(model.message)
            return
        self.model = model
        self.model_spec = context["spec"]
        self.panel.set_model(model, context["spec"])
        self.compare_methods, self.compare_layers = self.panel.compare_selection()
        self.layer = model.default_layer
        self.target = None
        self.message.setText(f"Model {model.name} loaded")
        self.request_explain()

    # -- explanation ------------------------------------------------------------------------
    def _context_key(self, target=None) -> tuple:
        target = self.target if target is None else target
        return (str(self.image.path), self.viewer.frame, self.model.sha256, self.model.name,
                "top" if target is None else int(target))

    def params_for(self, method: str) -> dict:
        """Return the parameter values the user set for ``method`` (defaults otherwise)."""
        if method not in self.param_values:
            explainer = self.explainers.get(method)
            self.param_values[method] = {p.name: p.default
                                         for p in getattr(explainer, "params", ())}
        return self.param_values[method]

    def _map_key(self, context_key: tuple, method: str, layer: str | None) -> tuple:
        params = tuple(sorted(self.params_for(method).items()))
        explainer = self.explainers.get(method)
        layer = layer if is_layer_based(explainer) else INPUT_LAYER
        return context_key + (method, params, layer)

    def _store_map(self, context: dict, map_result) -> None:
        key = context["key"] + (map_result.method, context["params"][map_result.method],
                                map_result.layer)
        if self.maps.get(key) is map_result:
            return  # already drawn as a partial result
        self.maps[key] = map_result
        while len(self.maps) > MAP_CACHE_SIZE:
            self.maps.popitem(last=False)
        self._draw_if_wanted(map_result, key)

    def _cached(self, key: tuple):
        """Return a cached MapResult (marking it recently used), or None."""
        found = self.maps.get(key)
        if found is not None:
            self.maps.move_to_end(key)
        return found

    def _wanted_keys(self) -> set:
        if self.image is None or self.model is None:
            return set()
        ctx = self._context_key()
        if self.compare_on:
            return {self._map_key(ctx, m, lay) for m in self.compare_methods
                    for lay in self.compare_layers}
        return {self._map_key(ctx, self.method, self.layer)}

    def _draw_if_wanted(self, map_result, key: tuple) -> None:
        if self.image is None or self.model is None:
            return
        ctx = self._context_key()
        if self.compare_on:
            if key[: len(ctx)] == ctx and key in self._wanted_keys():
                self.compare.set_map(map_result.method, map_result.layer, map_result.heatmap,
                                     map_result.warning)
                self.sig_map_drawn.emit(map_result.method, map_result.layer)
        elif key == self._map_key(ctx, self.method, self.layer):
            self._show_map(map_result)

    def everything_drawn(self) -> bool:
        """Whether every wanted map is on screen (the one map, or every compare cell)."""
        if self.compare_on:
            cells = self.compare.cells.values()
            return bool(cells) and all(c.viewer.layer.heatmap is not None
                                       or "unavailable" in c.title.text() for c in cells)
        return self.layer_model.heatmap is not None

    def _show_map(self, map_result) -> None:
        self.layer_model.heatmap = map_result.heatmap
        self.viewer.viewport().update()
        self._update_caption(map_result.warning)
        self._metrics_timer.start()
        self.sig_map_drawn.emit(map_result.method, map_result.layer)

    def request_explain(self) -> int | None:
        """Show the wanted map(s) from the cache, or ask the worker for what is missing.

        Returns
        -------
        int or None
            The job id, or None when everything came from the cache (or nothing to do).
        """
        self._debounce.stop()
        if self.image is None or self.model is None or self.method is None:
            return None
        ctx = self._context_key()
        if self.compare_on:
            return self._request_compare(ctx)
        explainer = self.explainers[self.method]
        reason = explainer.unavailable_reason(self.model)
        if reason:
            self.layer_model.heatmap = None
            self.show_error(f"{explainer.title}: {reason}")
            return None
        cached = self._cached(self._map_key(ctx, self.method, self.layer))
        if cached is not None:
            self._show_map(cached)
            self._show_prediction_from_cache(ctx)
            return None
        self.layer_model.heatmap = None
        # Gradient-family maps of every layer come from one capture almost for free, so ask
        # for all of them now and a later layer click is served from this window's cache.
        cheap = "forward_fn" not in getattr(explainer, "needs", ())
        layers = "all" if cheap or not is_layer_based(explainer) else [self.layer or "auto"]
        return self._submit_explain(ctx, [self.method], layers)

    def _request_compare(self, ctx: tuple) -> int | None:
        rebuilt = self.compare.set_grid(
            self.image, self.viewer.frame,
            [(m, self.explainers[m].title) for m in self.compare_methods],
            self.compare_layers, self.viewer.window, self.viewer.invert)
        missing_methods = []
        for method in self.compare_methods:
            reason = self.explainers[method].unavailable_reason(self.model)
            if reason:
                self.compare.set_status(method, f"unavailable: {reason}")
                continue
            for layer in self.compare_layers:
                cached = self._cached(self._map_key(ctx, method, layer))
                if cached is None:
                    missing_methods.append(method)
                    break
                self.compare.set_map(method, layer, cached.heatmap, cached.warning)
        if self.compare.cells and len(missing_methods) == 0:
            self.sig_map_drawn.emit("compare", "")
        if not missing_methods or not self.compare_layers:
            return None
        if rebuilt:
            # New cells lay themselves out and paint on the next pass of the event loop; start
            # the worker after that, so the two do not compete for the CPU during the first paint.
            layers = list(self.compare_layers)

            def submit() -> None:
                if self.compare_on and self.image is not None and self.model is not None \
                        and self._context_key() == ctx and layers == self.compare_layers:
                    self._submit_explain(ctx, missing_methods, layers)

            QTimer.singleShot(0, submit)
            return None
        return self._submit_explain(ctx, missing_methods, list(self.compare_layers))

    def _submit_explain(self, ctx: tuple, methods: list[str], layers) -> int:
        from engine.explain.session import ExplainRequest

        request = ExplainRequest(
            image=self.image, model=self.model, methods=list(methods), layers=layers,
            target="top" if self.target is None else int(self.target),
            frame=self.viewer.frame,
            params={m: dict(self.params_for(m)) for m in methods})
        session = self.session
        context = {"key": ctx, "methods": list(methods),
                   "params": {m: tuple(sorted(self.params_for(m).items())) for m in methods}}

        def run(progress, cancel, on_partial):
            return session.explain(request, progress=progress, cancel=cancel,
                                   on_partial=on_partial)

        # Metrics of the map being replaced must not hold the new map back on the one worker;
        # the trust panel measures the new map once it is drawn.
        self.worker.cancel("metrics")
        return self._submit("explain", run, **context)

    def _explained(self, result, context: dict) -> None:
        self.result = result
        self.panel.set_prediction(result.classes, result.scores, result.target)
        self._results[context["key"]] = result
        for warning in result.warnings:
            self.message.setText(warning)
        if not result.warnings:
            self.message.setText(
                f"{result.target_name}: {100 * result.scores[result.target]:.1f} %"
                f" — {result.timings_ms.get('total', 0.0):.0f} ms")
        self._update_caption()
        self._metrics_timer.start()

    def current_result(self):
        """Return the last result for what is shown, holding every map computed for it.

        Maps of one (image, frame, model, target) come from several requests (one per method,
        Score-CAM one layer at a time); exports and metrics need the one on screen, so the
        result handed to them carries all of those with the current parameters.
        """
        if self.result is None or self.image is None or self.model is None:
            return self.result
        ctx = self._context_key()
        maps = dict(self.result.maps)
        for key, map_result in self.maps.items():
            method = key[len(ctx)]
            if key[: len(ctx)] == ctx and key[len(ctx) + 1] == tuple(
                    sorted(self.params_for(method).items())):
                maps[(method, map_result.layer)] = map_result
        return dataclasses.replace(self.result, maps=maps)

    def _show_prediction_from_cache(self, ctx: tuple) -> None:
        result = self._results.get(ctx)
        if result is not None:
            self.result = result
            self.panel.set_prediction(result.classes, result.scores, result.target)
            self._update_caption()

    def set_target(self, index: int | None) -> None:
        """Explain another class (None: the top class)."""
        self.target = index
        self.request_explain()

    def set_method(self, name: str) -> None:
        """Explain with another registered method."""
        self.method = name
        if self.panel.current_method() != name:
            self.panel.select_method(name)
        self.request_explain()

    def set_layer(self, name: str) -> None:
        """Show another layer's map; served from the cache when it was computed."""
        self.layer = name
        self.request_explain()

    def _params_changed(self, values: dict) -> None:
        if self.method is not None:
            self.param_values[self.method] = dict(values)
            self._debounce.start()

    def _compare_changed(self, on: bool, methods: list, layers: list) -> None:
        self.compare_methods, self.compare_layers = list(methods), list(layers)
        if on != self.compare_on:
            self.set_compare(on)
        elif on:
            self.request_explain()

    def set_compare(self, on: bool) -> None:
        """Switch between the single viewer and the methods × layers grid."""
        on = bool(on)
        if self.panel.compare_box.isChecked() != on:
            # The panel's toggle comes back through _compare_changed, which calls this again.
            self.panel.compare_box.setChecked(on)
            return
        self.compare_on = on
        self.actions_by_id["compare"].setChecked(on)
        self.compare_methods, self.compare_layers = self.panel.compare_selection()
        self.stack.setCurrentWidget(self.compare if on else self.viewer)
        self._update_caption()
        self.request_explain()

    # -- view -------------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        """Apply a window to the viewer (and every compare cell)."""
        self.viewer.set_window(center, width)

    def _ct_preset(self, number: int) -> None:
        _name, center, width = CT_PRESETS[number - 1]
        wanted = (center, width)
        for index in range(self.preset_combo.count()):
            if self.preset_combo.itemData(index) in (wanted, list(wanted)):
                self._preset_picked(index)
                return
        self.set_window(center, width)

    def _window_changed(self, center: float, width: float) -> None:
        self.compare.set_window(center, width)
        if not self._picking_preset:
            # Keys, drags and resets no longer match a listed preset: show "Custom".
            self.preset_combo.setCurrentIndex(-1)
        self._update_caption()

    def _preset_picked(self, index: int) -> None:
        preset = self.preset_combo.itemData(index)
        self._picking_preset = True
        try:
            if preset is None:
                self.viewer.reset_window()
            elif isinstance(preset, (tuple, list)):
                self.set_window(*preset)
            else:
                self.viewer.apply_preset(preset)
        finally:
            self._picking_preset = False
        self.preset_combo.setCurrentIndex(index)

    def reset_view(self) -> None:
        """Reset window, inversion and zoom."""
        self._preset_picked(0)
        self.actions_by_id["invert"].setChecked(False)
        self.compare.set_invert(False)
        self._fit()

    def _fit(self) -> None:
        self.viewer.fit()
        for cell in self.compare.cells.values():
            cell.viewer.fit()

    def _actual(self) -> None:
        self.viewer.one_to_one()
        for cell in self.compare.cells.values():
            cell.viewer.one_to_one()

    def _invert(self, on: bool) -> None:
        self.viewer.set_invert(on)
        self.compare.set_invert(on)

    def _toggle_overlay(self, on: bool) -> None:
        self.layer_model.visible = on

    def _layer_model_changed(self, name: str) -> None:
        if name == "visible":
            self.actions_by_id["overlay"].setChecked(self.layer_model.visible)

    def _nudge_opacity(self, delta: float) -> None:
        self.layer_model.opacity = min(1.0, max(0.0, round(self.layer_model.opacity + delta, 2)))

    def _step_frame(self, delta: int) -> None:
        self.viewer.step_frame(delta)

    def _frame_changed(self, _frame: int) -> None:
        self._update_frame_label()
        self.layer_model.heatmap = None
        self._debounce.start()

    def _update_frame_label(self) -> None:
        n = self.image.n_frames if self.image is not None else 1
        self.frame_label.setText(f"   Frame {self.viewer.frame + 1} / {n}" if n > 1 else "")

    def _update_caption(self, warning: str | None = None) -> None:
        if self.image is None:
            self.caption.setText("")
            return
        parts = [f"<b>{self.image.path.name}</b>", self.image.modality]
        if self.viewer.window is not None:
            center, width = self.viewer.window
            parts.append(f"W {width:.0f} / L {center:.0f}")
        if self.result is not None and self.model is not None:
            target = self.result.target
            if self.compare_on:
                parts.append(f"compare {len(self.compare_methods)} methods × "
                             f"{len(self.compare_layers)} layers")
            else:
                title = getattr(self.explainers.get(self.method), "title", self.method)
                explainer = self.explainers.get(self.method)
                parts.append(f"{title} · {self.layer if is_layer_based(explainer) else 'input'}")
            parts.append(f"explaining <b>{self.result.target_name}</b> "
                         f"({100 * self.result.scores[target]:.1f} %)")
            parts.append(f"model {self.model.name}")
        if self.roi is not None:
            parts.append(describe_roi((self.roi, self.roi_shape)))
        text = "   │   ".join(parts)
        if warning:
            text += f"   │   <span style='color:#ffb347'>⚠ {warning}</span>"
        self.caption.setText(text)

    # -- errors and help --------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        """Show a one-line, non-modal error; the app keeps running."""
        self.banner.show_message(text)
        self.message.setText("Error — see the message above the image")
        self.sig_error.emit(text)

    def show_help(self) -> None:
        """Show the shortcut table (non-modal)."""
        box = QMessageBox(self)
        box.setWindowTitle("Lucida shortcuts")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(help_html())
        box.setModal(False)
        box.show()
        self._help_box = box

    def _about(self) -> None:
        QMessageBox.about(self, "About Lucida",
                          "Lucida shows why an image classifier decided what it decided.\n"
                          "Heatmaps are explanations of a model, not findings.")

    # -- optional panels --------------------------------------------------------------------
    def view_state(self) -> dict:
        """Return the display state an export reproduces."""
        window = self.viewer.window
        return {"window": window, "invert": self.viewer.invert,
                "opacity": self.layer_model.opacity, "colormap": self.layer_model.colormap,
                "threshold": self.layer_model.threshold, "method": self.method,
                "layer": self.layer}

    def open_export(self) -> None:
        """Open the export dialog for the current result."""
        if self.result is None or self.image is None:
            self.show_error("nothing to export yet. Fix: open an image and wait for its map")
            return
        try:
            from gui.export_dialog import QtExportDialog
        except ImportError as exc:
            self.show_error(f"export is not available ({exc})")
            return
        self._export_dialog = QtExportDialog(self, self.current_result(), self.image,
                                             self.view_state())
        self._export_dialog.show()

    def open_trust_panel(self) -> None:
        """Show the trust-metrics dock and compute metrics for the current map."""
        if self.trust_panel is None:
            try:
                from gui.trust_panel import QtTrustPanel
            except ImportError as exc:
                self.show_error(f"trust metrics are not available ({exc})")
                return
            self.trust_panel = QtTrustPanel(self)
            # Its summary, curves and table need height, which the right column spends on the
            # explanation panel and heatmap controls: it gets a full-height column of its own.
            self.docks["trust"] = self._dock("Trust", self.trust_panel,
                                             Qt.DockWidgetArea.RightDockWidgetArea,
                                             Qt.Orientation.Horizontal)
            # Sizes apply once the new column is laid out, on the next pass of the event loop.
            QTimer.singleShot(0, lambda: self.resizeDocks(
                [self.docks["trust"]], [TRUST_WIDTH], Qt.Orientation.Horizontal))
            self.trust_panel.sig_compute_requested.connect(self.request_metrics)
            self.docks["trust"].visibilityChanged.connect(
                lambda visible: visible and self._metrics_timer.start())
        self.docks["trust"].show()
        self.docks["trust"].raise_()
        self.request_metrics()

    # -- region of interest and trust metrics -----------------------------------------------
    def set_roi(self, roi: tuple[int, int, int, int] | None, shape: str = "box") -> None:
        """Draw ``roi`` (x0, y0, x1, y1; image pixels, end-exclusive) on the viewer."""
        self.viewer.set_roi(roi, shape)

    def clear_roi(self) -> None:
        """Remove the ROI; the trust panel drops its ROI metrics."""
        self.viewer.clear_roi()

    def _roi_tool_toggled(self, shape: str, on: bool) -> None:
        if on:
            self.viewer.set_roi_tool(shape)
        elif self.viewer.roi_tool == shape:
            self.viewer.set_roi_tool(None)

    def _roi_tool_changed(self, shape: str) -> None:
        for name in ("box", "ellipse"):
            self.actions_by_id[f"roi_{name}"].setChecked(name == shape)
        if shape:
            self.message.setText(f"Drag on the image to draw a {shape} ROI; Esc to stop drawing")

    def _roi_changed(self, value) -> None:
        self.roi, self.roi_shape = (None, self.roi_shape) if value is None else value
        text = describe_roi(value)
        self.message.setText(text[:1].upper() + text[1:])
        self._update_caption()
        self._metrics_timer.start()

    def _map_signature(self) -> tuple | None:
        """Identify the map on screen (image, frame, model, target, method, params, layer)."""
        if self.image is None or self.model is None or self.method is None:
            return None
        return self._map_key(self._context_key(), self.method, self.layer)

    def _measurable(self):
        """Return the result holding the map on screen, or None while it is not ready."""
        if self.image is None or self.model is None or self.method is None:
            return None
        if self.result is None or self._results.get(self._context_key()) is not self.result:
            return None  # the prediction for this image/target has not arrived yet
        result = self.current_result()
        return result if (self.method, self._metrics_layer()) in result.maps else None

    def _metrics_layer(self) -> str:
        return self.layer if is_layer_based(self.explainers.get(self.method)) else INPUT_LAYER

    def _refresh_metrics(self) -> None:
        """Bring an open trust panel in line with the map and ROI on screen.

        A new ROI on the same map only needs the ROI keys; a new map needs everything, which
        runs at once for gradient and activation methods and waits for Compute for
        perturbation methods (their sanity check re-runs them several times).
        """
        panel = self.trust_panel
        if panel is None or not self.docks["trust"].isVisible() or self.compare_on:
            return
        result = self._measurable()
        if result is None:
            return
        signature = self._map_signature()
        roi = None if self.roi is None else (self.roi, self.roi_shape)
        if self._metrics_for == (signature, roi):
            return
        pending = self._metrics_pending
        if pending is not None and pending[0] == signature and (pending[1] == roi
                                                                or not pending[2]):
            return  # it is being computed; a full run's end catches up with a newer ROI
        if self._metrics_for is not None and self._metrics_for[0] == signature and \
                "deletion_auc" in panel.metrics:
            if roi is None:
                panel.set_metrics({k: v for k, v in panel.metrics.items() if k not in ROI_KEYS})
                self._metrics_for = (signature, None)
                return
            heatmap = result.maps[(self.method, self._metrics_layer())].heatmap
            panel.set_busy(True)
            self._metrics_pending = (signature, roi, True)
            self._submit("metrics", lambda _p, _c, _partial: _roi_metrics(heatmap, *roi),
                         signature=signature, roi=roi, roi_only=True)
            return
        if "forward_fn" in getattr(self.explainers.get(self.method), "needs", ()):
            self._metrics_stale()
            return
        self.request_metrics()

    def _metrics_stale(self) -> None:
        self._metrics_for = None
        self.worker.cancel("metrics")
        self.trust_panel.set_metrics(None)
        self.trust_panel.summary.setText(
            "Out of date: the map on screen changed. Press Compute to measure it "
            "(this method's sanity check re-runs it several times).")

    def request_metrics(self) -> int | None:
        """Compute the trust metrics of the shown map, with the current ROI, on the worker."""
        if self.result is None or self.image is None or self.model is None:
            self.show_error("no explanation to measure yet")
            return None
        result = self._measurable()
        if result is None:
            self.show_error("the map on screen is still being computed. Fix: wait for it, "
                            "then press Compute")
            return None
        from engine.metrics import case_metrics

        session, image, model = self.session, self.image, self.model
        method, layer = self.method, self._metrics_layer()
        roi, shape = self.roi, self.roi_shape
        if self.trust_panel is not None:
            self.trust_panel.set_busy(True)
        signature, roi_value = self._map_signature(), None if roi is None else (roi, shape)
        self._metrics_pending = (signature, roi_value, False)
        return self._submit("metrics", lambda progress, cancel, _p: case_metrics(
            session, result, image, model, method, layer, roi=roi, roi_shape=shape,
            progress=progress, cancel=cancel), signature=signature, roi=roi_value,
            roi_only=False)

    def _metrics_done(self, metrics: dict, context: dict) -> None:
        self._metrics_pending = None
        self.message.setText("Trust metrics computed")
        if self.trust_panel is None:
            return
        self.trust_panel.set_busy(False)
        if context["roi_only"]:
            kept = {k: v for k, v in self.trust_panel.metrics.items() if k not in ROI_KEYS}
            metrics = {**kept, **metrics}
        self.trust_panel.set_metrics(metrics)
        self._metrics_for = (context["signature"], context["roi"])
        # The map or ROI may have changed while this ran: catch up.
        self._metrics_timer.start()

    def open_audit_view(self) -> None:
        """Show the bias-audit dock."""
        if self.audit_view is None:
            try:
                from gui.audit_view import QtAuditView
            except ImportError as exc:
                self.show_error(f"the audit view is not available ({exc})")
                return
            self.audit_view = QtAuditView(self)
            self.audit_view.sig_open_image.connect(self._open_from_audit)
            self.docks["audit"] = self._dock("Audit", self.audit_view,
                                             Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["audit"].show()

    def _open_from_audit(self, path: str, method: str, layer: str) -> None:
        if method in self.explainers:
            self.method = method
            self.panel.select_method(method)
        if layer:
            self.layer = layer
        self.open_paths([path])

    # -- layout persistence -----------------------------------------------------------------
    def _restore_layout(self) -> None:
        self._default_state = self.saveState()
        geometry = self.settings.value("geometry")
        state = self.settings.value("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def reset_layout(self) -> None:
        """Put the docks back where they start."""
        self.restoreState(self._default_state)

    def save_layout(self) -> None:
        """Persist window geometry and dock layout."""
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.save_layout()
        self.worker.stop()
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
