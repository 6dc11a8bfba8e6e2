"""The review window: study browser, viewer, explanation panel, tags, problems, status bar.

The window holds the view state (image, model, method, layer, target, ROI) and the widgets;
small controllers turn intent into worker jobs: :mod:`gui.file_opening`, :mod:`gui.frames`,
:mod:`gui.model_loading`, :mod:`gui.explain_controller` and :mod:`gui.metrics_controller`,
all through the one :class:`gui.jobs.JobRouter`. Menus and the toolbar live in
:mod:`gui.actions`, the view commands (window, invert, zoom) in :mod:`gui.view_commands` and,
for volumes, :mod:`gui.volume_commands`. The frame signals are answered in
:mod:`gui.frame_events`, the Audit dock in :mod:`gui.audit_dock`, the saved layout in
:mod:`gui.window_state` and the Help windows in :mod:`gui.help_commands`.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.core.resources import DEMO_STUDY
from engine.explain.model_fit import demo_model_for, model_mismatch
from engine.studies.volume import is_volume
from engine.studies.windows import window_text
from gui.actions import build_actions
from gui.audit_dock import AuditDock
from gui.caption import QtCaptionBar, describe_view
from gui.compare_view import QtCompareGrid
from gui.explain_controller import ExplainController
from gui.explain_panel import QtExplainPanel
from gui.file_opening import FileOpener
from gui.frame_events import FrameEvents
from gui.frames import FrameLoader
from gui.help_commands import HelpCommands
from gui.jobs import JobRouter
from gui.metrics_controller import MetricsController
from gui.model_loading import ModelLoader
from gui.overlay_controls import QtOverlayControls
from gui.overlay_layer import OverlayLayer
from gui.pacs_dock import QtPacsDock
from gui.problems_panel import QtProblemsPanel
from gui.screen_fit import available_geometry, fit_to_screen, keep_viewer_share, scrolling
from gui.status_bar import QtErrorBanner, QtStatus, error_status
from gui.study_browser import QtStudyBrowser
from gui.tag_panel import QtTagPanel
from gui.verdict_box import CaseVerdict
from gui.viewer import QtImageViewer
from gui.volume_commands import VolumeViewCommands
from gui.volume_controller import VolumeController
from gui.volume_view import QtVolumeView
from gui.window_state import PREFERRED_SIZE, WindowState
from gui.worker import EngineWorkers

__all__ = ["DEMO_STUDY", "QtMainWindow"]

#: Parameter edits and frame scrolling settle this long before a new explanation is asked for.
DEBOUNCE_MS = 250


class QtMainWindow(QMainWindow, VolumeViewCommands, FrameEvents, AuditDock, WindowState,
                   HelpCommands):
    """The review window. It holds view state and turns user intent into worker jobs.

    Parameters
    ----------
    settings : QSettings, optional
        Where dock layout, recent files, the device and the export folder persist (tests
        pass a temporary file).
    session : engine.explain.session.Session, optional
        The engine session; one is made on the worker when first needed if omitted.

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
        self.setWindowTitle("Lucida")
        self.settings = settings or QSettings("Lucida", "Lucida")
        self._session = session
        self._session_lock = threading.Lock()
        self.worker = EngineWorkers(self)  # files are read on one thread, the rest on another
        self.jobs = JobRouter(self.worker, self.view_tag, self)
        self.image = None
        self.image_token = 0  # grows with every image shown: answers for older ones are stale
        self.image_error: str | None = None  # why the shown image cannot be displayed
        self.model = None
        self.model_spec: str | None = None
        self.reasons: dict[str, str | None] = {}
        self.trust_model = False
        self.device_choice = str(self.settings.value("device", "auto"))
        self.device: str | None = None  # what the choice resolved to, once the worker knows
        self.target: int | None = None  # None = the top class
        self.versus: int | None = None  # a contrasted class: explain logit target − logit versus
        self.method: str | None = None
        self.layer: str | None = None
        self.result = None
        self.use_check: dict | None = None
        self.map_warning: str | None = None
        self.explainers: dict[str, object] = {}
        self.compare_on = False
        self.roi: tuple[int, int, int, int] | None = None  # image pixels, end-exclusive
        self.roi_shape = "box"
        self.trust_panel = None
        self.audit_view = None
        self._export_dialog = None
        self._card_dialog = None
        self._layer_after_load: str | None = None  # an audit row opens with its layer

        self.files = FileOpener(self)
        self.models = ModelLoader(self)
        self.confirm_trust = self.models.ask_trust
        self.explain = ExplainController(self)
        self.metrics = MetricsController(self)
        self.frames = FrameLoader(self.jobs, lambda: (self.image_token, None), self)
        self._build_widgets()
        self.verdicts = CaseVerdict(self)  # the reviewer's verdict on the case shown
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self.request_explain)
        build_actions(self)
        self._connect()
        self._restore_layout()
        self.setAcceptDrops(True)
        self.explain.load_explainers()
        self.models.set_device(self.device_choice)

    # -- construction -----------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.layer_model = OverlayLayer(self)
        self.viewer = QtImageViewer(self.layer_model)
        self.viewer.set_frame_source(self.frames.is_ready, self.frames.request)
        self.compare = QtCompareGrid(self.layer_model)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.viewer)
        self.stack.addWidget(self.compare)
        self.volume_view = QtVolumeView()
        self.stack.addWidget(self.volume_view)
        self.volumes = VolumeController(self.jobs, self.layer_model, self.volume_view,
                                        self.view_tag, self)
        self.banner = QtErrorBanner()
        self.banner.sig_guide.connect(self.open_user_guide)
        self.caption = QtCaptionBar()
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
        self.problems = QtProblemsPanel()
        self.pacs = QtPacsDock()
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.docks = {
            "studies": self.add_dock("Studies", self.browser, left),
            "explain": self.add_dock("Explanation", scrolling(self.panel), right),
            "overlay": self.add_dock("Heatmap", scrolling(self.overlay_controls), right),
            "tags": self.add_dock("DICOM tags", self.tags, left),
            "problems": self.add_dock("Problems", self.problems, left),
            "pacs": self.add_dock("PACS", self.pacs, left),
        }
        self.tabifyDockWidget(self.docks["studies"], self.docks["tags"])
        self.tabifyDockWidget(self.docks["studies"], self.docks["problems"])
        self.tabifyDockWidget(self.docks["studies"], self.docks["pacs"])
        self.docks["studies"].raise_()
        # Side columns give way on a small screen: the image keeps at least half the width.
        width = min(PREFERRED_SIZE[0], available_geometry(self).width())
        self.resizeDocks([self.docks["studies"], self.docks["explain"]],
                         [min(290, width // 5), min(360, width // 4)], Qt.Orientation.Horizontal)
        keep_viewer_share(self)  # a smaller window narrows the docks, not the image
        self.status = QtStatus()
        self.setStatusBar(self.status)
        # Short names the tests and the screenshot mode read.
        self.message, self.progress = self.status.message, self.status.progress
        self.pixel_label, self.cancel_button = self.status.pixel_label, self.status.cancel_button

    def _connect(self) -> None:
        self.jobs.sig_status.connect(self.message.setText)
        self.jobs.sig_progress.connect(self.status.set_progress)
        self.jobs.sig_failed.connect(self.show_error)
        self.status.sig_cancel.connect(self.cancel_work)
        self.frames.sig_ready.connect(self.viewer.frame_ready)
        self.frames.sig_failed.connect(self._frame_failed)
        v = self.viewer
        v.sig_pixel_info.connect(self.pixel_label.setText)
        v.sig_frame_shown.connect(self._first_frame_shown)
        v.sig_frame_changed.connect(self._frame_changed)
        v.sig_cine_changed.connect(self._cine_changed)
        v.sig_window_changed.connect(self.window_changed)
        v.sig_roi_changed.connect(self._roi_changed)
        v.sig_roi_changed.connect(self.explain.roi_changed)  # a drawn region to explain
        v.sig_roi_tool_changed.connect(self._roi_tool_changed)
        self.volumes.sig_ready.connect(self._volume_ready)
        self.volumes.sig_pixel_info.connect(self.pixel_label.setText)
        self.volumes.sig_window_changed.connect(self.window_changed)
        self.volume_view.sig_mip_toggled.connect(lambda _on: self.update_caption())
        self.browser.sig_image_selected.connect(self.files.show)
        self.browser.sig_series_selected.connect(self.files.show)
        self.browser.sig_files_dropped.connect(self.open_paths)
        self.files.connect_pacs(self.pacs)
        p = self.panel
        p.sig_model_requested.connect(self.models.requested)
        p.sig_target_changed.connect(self.set_target)
        p.sig_versus_changed.connect(self.explain.set_versus)
        p.sig_method_changed.connect(self.set_method)
        p.sig_params_changed.connect(self.explain.params_changed)
        p.sig_layer_changed.connect(self.set_layer)
        p.sig_compare_changed.connect(self.explain.compare_changed)
        self.layer_model.sig_changed.connect(self._layer_model_changed)

    # -- the worker's side ------------------------------------------------------------------
    @property
    def session(self):
        """The engine session, made on first use (normally on the worker, which imports torch)."""
        with self._session_lock:
            if self._session is None:
                from engine.explain.session import Session

                self._session = Session(device=self.device or "cpu")
            return self._session

    def view_tag(self) -> tuple[int, int]:
        """The view shown now, ``(image token, frame)``: jobs are tagged with it."""
        return self.image_token, self.viewer.frame

    def cancel_work(self) -> None:
        """Cancel the running engine work (Cancel button, Esc)."""
        self.jobs.cancel()

    # -- opening and showing ----------------------------------------------------------------
    def open_paths(self, paths: list[str], prefer: str | None = None) -> int:
        """Open files or folders on the worker (see ``FileOpener.open_paths``)."""
        return self.files.open_paths(paths, prefer)

    def open_demo(self) -> None:
        """Open the bundled demo study on a nodule case, and the demo model."""
        self.files.open_demo()

    def show_image(self, image) -> None:
        """Display an image and explain it with the current model, method and target.

        Everything from the image shown before is cleared at once, and every answer still on
        its way for it will be dropped: nothing on screen can belong to another image. A
        volume (a CT/MR series or a NIfTI file) is shown in three planes.
        """
        self._leave_image(image)
        if is_volume(image):
            self._show_volume(image)
            return
        self.volumes.clear()
        self.stack.setCurrentWidget(self.compare if self.compare_on else self.viewer)
        self._allow_compare(True)
        self.frames.show(image)
        self.viewer.set_image(image)  # asks the frame loader for its first frame
        self.browser.select_image(image)
        self.tags.set_dataset(image.dataset)
        self.fill_presets()
        self.update_frame_label()
        self.update_caption()

    def show_nothing(self, text: str = "") -> None:
        """Show no image: an empty view while files are read, or ``text`` (why) in its place."""
        self._leave_image(None)
        self.volumes.clear()
        self.frames.forget()
        self.stack.setCurrentWidget(self.viewer)
        self.viewer.clear()
        if text:
            self.viewer.show_message(text)
        self.layer_model.heatmap = None
        self.tags.set_dataset(None)
        self.fill_presets()
        self.update_frame_label()
        self.update_caption()

    def _leave_image(self, image) -> None:
        """Forget everything of the image shown before ``image``."""
        self.image_token += 1
        self.image = image
        self.image_error = None
        self.result = None
        self.map_warning = None
        self.set_use(None)
        self.panel.clear_prediction()
        self.metrics.clear()
        self.banner.hide()
        self._match_demo_model(image)

    def _match_demo_model(self, image) -> None:
        """In the demo, load the demo model that reads what is shown (a volume or an image).

        Only while the demo's own study is open and the user has not picked a model
        (``models.follows_demo``): a model is never changed behind the user's back, and the
        demo's chest X-ray model must not take over a CT slice of the user's files.
        """
        if image is None or not self.models.follows_demo:
            return
        wanted = demo_model_for(image, self.model_spec)
        if wanted is not None:
            self.model = None  # nothing is explained with the model that cannot read it
            self.load_model(wanted)

    # -- model and device -------------------------------------------------------------------
    def load_model(self, spec: str, trust: bool | None = None) -> int:
        """Load a model (``demo``, ``demo-biased`` or a card/model path) on the worker."""
        return self.models.load(spec, trust)

    def model_ready(self, model, reasons: dict, spec: str) -> None:
        """A model was loaded on the worker: show it and explain with it."""
        self.model, self.reasons, self.model_spec = model, dict(reasons), spec
        self.panel.set_model(model, spec, reasons)
        self.explain.compare_methods, self.explain.compare_layers = \
            self.panel.compare_selection()
        self.layer = self._layer_after_load or model.default_layer
        self._layer_after_load = None
        self.target = self.versus = None
        self.result = None
        # A load note (a bundle transform Lucida could not map, say) is shown, not dropped; the
        # explanation's progress soon replaces the message line, so the banner keeps it.
        notes = getattr(model, "notes", [])
        self.message.setText(f"Model {model.name} loaded" + "".join(f"; {n}" for n in notes))
        if notes:
            self.banner.show_message(" ".join(notes))
        self.check_use()
        self.request_explain()

    def set_device(self, choice: str) -> None:
        """Run models on ``choice``: ``auto``, ``cpu``, ``cuda`` or ``mps``."""
        self.models.set_device(choice)

    def sync_device_menu(self, available: dict | None = None) -> None:
        """Tick the chosen device in View ▸ Compute device; mark those this machine lacks."""
        for choice, action in self.device_actions.items():
            action.setChecked(choice == self.device_choice)
            if available is not None and choice in available:
                action.setEnabled(available[choice])

    def describe_model(self, spec: str | None = None) -> None:
        """Give a model file (the loaded one by default) a card, saved next to it."""
        self._card_dialog = self.models.describe(spec or self.model_spec)

    # -- intended use -------------------------------------------------------------------------
    def check_use(self) -> None:
        """Check the shown image against the model's intended use, on the worker."""
        self.explain.check_use()

    def set_use(self, use: dict | None) -> None:
        """Show an intended-use check (``UseCheck.as_dict()``) in the caption's badge."""
        self.use_check = use
        self.caption.set_badge(use)
        self.panel.set_caveat((use or {}).get("prediction_caveat"))

    # -- explanation (see ExplainController) --------------------------------------------------
    @property
    def verdict(self):
        """The reviewer's verdict (``engine.core.case.Verdict``) on the case shown, or None."""
        return self.verdicts.get()

    @verdict.setter
    def verdict(self, value) -> None:
        self.verdicts.set(value)

    @property
    def maps(self):
        """Cached maps: key -> ``MapResult``."""
        return self.explain.maps

    @property
    def param_values(self) -> dict:
        """Parameter values the user set, per method."""
        return self.explain.param_values

    def params_for(self, method: str) -> dict:
        """Return the parameter values the user set for ``method`` (defaults otherwise)."""
        return self.explain.params_for(method)

    def request_explain(self) -> int | None:
        """Show the wanted map(s) from the cache, or ask the worker for what is missing."""
        image = self.image
        mismatch = model_mismatch(self.model, image, "" if image is None
                                  else self.files.not_a_volume(image) or "")
        if mismatch:
            self.show_error(mismatch)
            return None
        return self.explain.request()

    def set_target(self, index: int | None) -> None:
        """Explain another class (None: the top class)."""
        self.explain.set_target(index)

    def set_method(self, name: str) -> None:
        """Explain with another registered method."""
        self.explain.set_method(name)

    def set_layer(self, name: str) -> None:
        """Show another layer's map; served from the cache when it was computed."""
        self.explain.set_layer(name)

    def set_compare(self, on: bool) -> None:
        """Switch between the single viewer and the methods × layers grid."""
        self.explain.set_compare(on)

    def current_result(self):
        """The result for what is shown, with every map computed for it (or None)."""
        return self.explain.current_result()

    def everything_drawn(self) -> bool:
        """Whether every wanted map is on screen (the one map, or every compare cell)."""
        return self.explain.everything_drawn()

    def update_caption(self) -> None:
        """Say what is shown: file, frame, window, method, class, model, ROI; warn if weak."""
        name, details, warning = describe_view(self)
        if self.volume_shown():
            s, r, c = self.image.shape
            details = [d for d in details if not d.startswith("W ")]
            details.insert(1, f"{s}×{r}×{c} volume")
            if self.volumes.window is not None:
                details.insert(2, window_text(*self.volumes.window))
            if self.volumes.mip and self.layer_model.heatmap is not None:
                details.append("map as MIP")
        self.caption.set_caption(name, details, warning)

    # -- errors -----------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        """Show a one-line, non-modal error; the app keeps running."""
        self.banner.show_message(text)
        self.message.setText(error_status(text))
        self.sig_error.emit(text)

    # -- panels -----------------------------------------------------------------------------
    def open_export(self) -> None:
        """Open the export dialog for the current result, in the last export folder.

        A volume exports its reports (a row of planes per map), plane figure and NIfTI maps.
        """
        if self.volume_shown():
            from gui.volume_export import export_volume

            export_volume(self)
            return
        from gui.export_folder import open_export

        open_export(self)

    def open_trust_panel(self) -> None:
        """Show the trust-metrics dock and compute metrics for the current map."""
        self.metrics.open_panel()

    def request_metrics(self) -> int | None:
        """Compute the trust metrics of the shown map, with the current ROI, on the worker."""
        return self.metrics.request()

    # -- layout persistence -----------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        fit_to_screen(self)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.save_layout()
        if self.audit_view is not None:
            self.audit_view.cancel()
        self.pacs.shutdown()
        self.worker.stop()
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
