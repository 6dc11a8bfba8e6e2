"""The window's actions, menus and toolbar, bound to the keys of ``gui.shortcuts``."""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar

from engine.core.log import setup_logging
from gui import method_help, review_io
from gui.measure_tools import MeasureTools
from gui.model_compare import ModelCompare
from gui.model_loading import DEVICES
from gui.shortcuts import KEYS
from gui.viewer import CT_PRESETS

#: Labels of the device choices.
DEVICE_LABELS = {"auto": "Automatic (CUDA, then MPS, then CPU)", "cpu": "CPU",
                 "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


def show_log() -> bool:
    """Open the log of internal errors in the desktop's viewer; return whether it opened.

    The file exists from the moment logging is set up, so there is always something to open.
    """
    path = setup_logging()
    return path is not None and QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def build_actions(window) -> None:
    """Create every action, menu and the toolbar of ``window``.

    Sets ``window.actions_by_id``, ``recent_menu``, ``tools_menu``, ``device_actions``,
    ``preset_combo`` and ``frame_label``; and the viewer's measuring tools and annotations
    (``window.measure_tools``) and the model comparison (``window.model_compare``), which the
    actions drive.
    """
    window.actions_by_id = {}
    window.measure_tools = MeasureTools(window.viewer)
    window.model_compare = ModelCompare(window)

    def act(action_id: str, text: str, slot, checkable: bool = False) -> QAction:
        action = QAction(text, window)
        key = KEYS.get(action_id, ("", ""))[0]
        if key:
            action.setShortcut(QKeySequence(key))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        window.addAction(action)  # shortcuts work while any child has focus
        window.actions_by_id[action_id] = action
        return action

    menu = window.menuBar().addMenu("&File")
    menu.addAction(act("open", "&Open…", window.files.open_dialog))
    window.recent_menu = menu.addMenu("Open &recent")
    window.files.fill_recent()
    menu.addAction(act("open_model", "Open &model…", window.models.open_dialog))
    menu.addSeparator()
    menu.addAction(act("open_review", "Open re&view…", lambda: review_io.open_dialog(window)))
    menu.addAction(act("save_review", "&Save review…", lambda: review_io.save_dialog(window)))
    menu.addAction(act("open_audit", "Open au&dit…", window.open_audit_dialog))
    menu.addSeparator()
    menu.addAction(act("export", "&Export report…", window.open_export))
    menu.addSeparator()
    menu.addAction(act("quit", "&Quit", window.close))

    menu = window.menuBar().addMenu("&View")
    menu.addAction(act("overlay", "Show &heatmap", window.toggle_overlay, True))
    window.actions_by_id["overlay"].setChecked(True)
    menu.addAction(act("compare", "&Compare mode", window.set_compare, True))
    menu.addAction(act("annotations", "Image &annotations",
                       window.measure_tools.annotations.set_enabled, True))
    window.actions_by_id["annotations"].setChecked(True)
    menu.addSeparator()
    menu.addAction(act("fit", "&Fit", window.fit))
    menu.addAction(act("actual", "&Actual size", window.actual_size))
    menu.addAction(act("reset", "&Reset view", window.reset_view))
    menu.addAction(act("invert", "&Invert", window.set_invert, True))
    windows = menu.addMenu("&Window presets")
    for n, (name, center, width) in enumerate(CT_PRESETS, start=1):
        windows.addAction(act(f"preset{n}", f"{name} ({center:g} / {width:g})",
                              lambda _c=False, n=n: window.ct_preset(n)))
    menu.addSeparator()
    menu.addAction(act("prev", "Previous frame", lambda: window.viewer.step_frame(-1)))
    menu.addAction(act("next", "Next frame", lambda: window.viewer.step_frame(1)))
    menu.addAction(act("cine", "Play / stop cine", window.viewer.toggle_cine))
    menu.addAction(act("opacity_down", "Opacity −10 %", lambda: window.nudge_opacity(-0.1)))
    menu.addAction(act("opacity_up", "Opacity +10 %", lambda: window.nudge_opacity(0.1)))
    menu.addSeparator()
    devices = menu.addMenu("Compute &device")
    group = QActionGroup(window)
    window.device_actions = {}
    for choice in DEVICES:
        action = QAction(DEVICE_LABELS[choice], window, checkable=True)
        action.setChecked(choice == window.device_choice)
        action.triggered.connect(lambda _c=False, choice=choice: window.set_device(choice))
        group.addAction(action)
        devices.addAction(action)
        window.device_actions[choice] = action
    menu.addSeparator()
    for dock in window.docks.values():
        menu.addAction(dock.toggleViewAction())
    menu.addAction("Reset layout", window.reset_layout)

    window.tools_menu = window.menuBar().addMenu("&Tools")
    window.tools_menu.addAction(act("cancel", "Cancel running work", window.escape))
    roi_menu = window.tools_menu.addMenu("&Region of interest")
    window.roi_tools = QActionGroup(window)
    window.roi_tools.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
    for shape in ("box", "ellipse"):
        action = act(f"roi_{shape}", f"Draw {shape} ROI",
                     lambda on, shape=shape: window.roi_tool_toggled(shape, on), True)
        action.setToolTip(f"Drag on the image to draw a {shape} region of interest; "
                          "Esc returns to panning")
        window.roi_tools.addAction(action)
        roi_menu.addAction(action)
    roi_menu.addAction(act("roi_clear", "Clear ROI", window.clear_roi))
    distance = window.measure_tools.distance
    window.tools_menu.addAction(act("measure", "Measure &distance", distance.set_active, True))
    distance.sig_active.connect(window.actions_by_id["measure"].setChecked)
    distance.sig_measured.connect(lambda text: window.message.setText(f"Distance {text}"))
    window.tools_menu.addAction(act("compare_models", "Compare with &model…",
                                    window.model_compare.choose))
    window.tools_menu.addAction("&Trust metrics for this map", window.open_trust_panel)
    window.tools_menu.addAction("Bias &audit", window.open_audit_view)
    window.tools_menu.addAction("Describe this &model file…", window.describe_model)

    menu = window.menuBar().addMenu("&Help")
    menu.addAction(act("user_guide", "User &guide", lambda: window.open_user_guide()))
    menu.addAction(act("method_help", "&What am I looking at?",
                       lambda: method_help.open_for(window)))
    menu.addAction(act("help", "&Shortcuts", window.show_help))
    menu.addAction(act("show_log", "Show &log", show_log))
    menu.addAction("&About Lucida", window.about)

    toolbar = QToolBar("View")
    toolbar.setObjectName("toolbar_view")
    window.addToolBar(toolbar)
    for action_id in ("open", "fit", "actual", "reset", "invert", "overlay", "compare"):
        toolbar.addAction(window.actions_by_id[action_id])
    toolbar.addSeparator()
    for action_id in ("roi_box", "roi_ellipse", "roi_clear", "measure"):
        toolbar.addAction(window.actions_by_id[action_id])
    toolbar.addSeparator()
    toolbar.addWidget(QLabel(" Window "))
    window.preset_combo = QComboBox()
    window.preset_combo.setMinimumWidth(200)
    window.preset_combo.activated.connect(window.preset_picked)
    toolbar.addWidget(window.preset_combo)
    window.frame_label = QLabel()
    toolbar.addWidget(window.frame_label)
