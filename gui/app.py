"""GUI entry point: ``python main.py [FILES...] [--demo] [--model CARD] [--screenshot OUT.png]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

#: The screenshot mode gives up after this long without a drawn explanation.
SCREENSHOT_TIMEOUT_MS = 180_000
#: After an error, how long the screenshot mode waits for something else to be drawn.
ERROR_GRACE_MS = 2_000
#: Pause between the first drawn map and the grab, so late layout passes settle.
SCREENSHOT_SETTLE_MS = 400
#: Screen a screenshot is taken on when there is no display (Qt's offscreen platform).
SCREENSHOT_SCREEN = (1440, 900)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the GUI's command line."""
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Lucida review window. Sub-commands (info, render, explain, ...) run the "
        "command-line tools instead; see `python main.py explain --help`.",
    )
    parser.add_argument("files", nargs="*", help="DICOM or image files, or folders, to open")
    parser.add_argument("--demo", action="store_true",
                        help="open the bundled demo study and demo model")
    parser.add_argument("--model", metavar="CARD",
                        help="model card (.toml), model file, demo or demo-biased")
    parser.add_argument("--trust-model", action="store_true",
                        help="allow model files that can run code when loaded (pickles)")
    parser.add_argument("--compare", action="store_true",
                        help="start in compare mode (methods × layers grid)")
    parser.add_argument("--review", metavar="FILE.lucida", type=Path,
                        help="reopen a saved review: its files, model and view")
    parser.add_argument("--screenshot", metavar="OUT.png", type=Path,
                        help="save a screenshot once the first explanation is drawn, then exit")
    return parser


#: The frame around the widget that has keyboard focus: bright enough to find on the dark theme.
FOCUS_COLOUR = "#4da3ff"
#: The application's style sheet: only the focus frame (the palette does the rest). A button's
#: background is kept, or the frame would replace the whole button.
FOCUS_STYLE = f"""
QPushButton:focus, QToolButton:focus {{
    border: 2px solid {FOCUS_COLOUR}; border-radius: 3px; background: palette(button);
    padding: 3px 8px;
}}
QComboBox:focus, QLineEdit:focus, QAbstractSpinBox:focus, QAbstractItemView:focus,
QCheckBox:focus, QRadioButton:focus, QSlider:focus, QTabBar:focus {{
    border: 2px solid {FOCUS_COLOUR}; border-radius: 3px;
}}
"""


def apply_dark_theme(app) -> None:
    """A dark Fusion palette: images are read in dim rooms, and grey UI keeps them dominant.

    The style sheet frames the focused widget (``FOCUS_STYLE``): keyboard users must see where
    they are.
    """
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QStyleFactory

    app.setStyle(QStyleFactory.create("Fusion"))
    palette = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(40, 42, 46), QColor(224, 224, 224)
    for role, colour in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight,
                                                 QColor(58, 110, 165)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.Mid, QColor(140, 140, 140)),
    ):
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText,
                     QColor(120, 120, 120))
    app.setPalette(palette)
    app.setStyleSheet(FOCUS_STYLE)


def main(argv: list[str] | None = None) -> int:
    """Open the review window and run the event loop.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name.

    Returns
    -------
    int
        0 on a normal exit (or a saved screenshot), 2 on bad usage or when a screenshot run
        hits an error and nothing is drawn, 1 if nothing was drawn in time.
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    review = None
    if args.review is not None:
        from engine.core.errors import LucidaError
        from engine.review import load_review

        try:
            review = load_review(args.review)
        except LucidaError as exc:
            print(f"error: {exc.one_line()}", file=sys.stderr)
            return 2
    if args.screenshot is not None:
        _virtual_screen()
    _log_uncaught()
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.main_window import QtMainWindow

    app = QApplication.instance() or QApplication(["lucida"])
    app.setApplicationName("Lucida")
    app.setOrganizationName("Lucida")
    apply_dark_theme(app)
    settings = None
    if args.screenshot is not None:
        # A screenshot shows the default layout, never this user's rearranged one.
        scratch = tempfile.mkdtemp(prefix="lucida-shot-")
        settings = QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat)
    window = QtMainWindow(settings=settings)
    window.trust_model = args.trust_model
    if args.demo:
        window.open_demo()
    if args.files:
        window.open_paths(args.files)
    if args.model:
        window.load_model(args.model)  # supersedes the demo model if both were asked for
    elif args.files and not args.demo:
        window.load_model("demo")
    if review is not None:
        from gui.review_io import restore

        restore(window, review)
    if args.compare:
        window.set_compare(True)
    window.show()

    if args.screenshot is not None:
        _arm_screenshot(app, window, args.screenshot, QTimer)
    return int(app.exec())


def _log_uncaught() -> None:
    """Log the traceback of an exception no handler caught (in a slot, say), then report it.

    Qt prints such an exception and carries on; its traceback must reach the log too.
    """
    from engine.core.log import log_traceback, setup_logging

    setup_logging()
    report = sys.excepthook

    def hook(kind, exc, tb) -> None:
        if issubclass(kind, Exception):
            log_traceback(exc.with_traceback(tb), "the window")
        report(kind, exc, tb)

    sys.excepthook = hook


def _virtual_screen() -> None:
    """Without a display, give Qt's offscreen platform a desktop-sized screen for screenshots.

    Its default screen is 800 × 800, and the window never grows beyond its screen.
    """
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return
    width, height = SCREENSHOT_SCREEN
    config = Path(tempfile.mkdtemp(prefix="lucida-screen-")) / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "screenshot", "x": 0, "y": 0,
                                               "width": width, "height": height,
                                               "logicalDpi": 96, "dpr": 1}]}))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


def _arm_screenshot(app, window, out: Path, timer_cls) -> None:
    """Save the window once the first map is drawn, then quit (exit 1 on timeout)."""
    state = {"done": False}

    def grab() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(out))
        print(f"screenshot {'saved to' if ok else 'FAILED for'} {out}", file=sys.stderr)
        window.close()
        app.exit(0 if ok else 1)

    def drawn(*_args) -> None:
        if state["done"] or not window.everything_drawn():
            return
        if window.use_check is None:
            # The intended-use badge is part of what a screenshot shows: wait for its check.
            timer_cls.singleShot(100, drawn)
            return
        state["done"] = True
        timer_cls.singleShot(SCREENSHOT_SETTLE_MS, grab)

    def give_up() -> None:
        if not state["done"]:
            print("error: no explanation was drawn in time; no screenshot saved", file=sys.stderr)
            window.close()
            app.exit(1)

    def failed(text: str) -> None:
        print(f"error: {text}", file=sys.stderr)
        # Wait for the worker to settle: an error may be followed by work that still draws.
        timer_cls.singleShot(ERROR_GRACE_MS, stop_if_stuck)

    def stop_if_stuck() -> None:
        if state["done"]:
            return
        if window.worker.busy():
            # Files are read on their own thread: the error can arrive while the model still
            # loads. Look again once that work has had time to settle (give_up bounds it).
            timer_cls.singleShot(ERROR_GRACE_MS, stop_if_stuck)
            return
        if not window.everything_drawn():
            state["done"] = True
            window.close()
            app.exit(2)

    window.sig_map_drawn.connect(drawn)
    window.sig_error.connect(failed)
    timer_cls.singleShot(SCREENSHOT_TIMEOUT_MS, give_up)
