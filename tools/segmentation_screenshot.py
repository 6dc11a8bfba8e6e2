"""Regenerate ``docs/segmentation_outline.png`` and ``docs/export_file_to_study.png``.

The first is the review window with ``demo-seg`` on the demo study's nodule case, the nodule
class explained and its predicted mask outlined. The second is the export dialog over that
explanation with "File to the patient's study" chosen (a node file naming a local node).

Usage: ``python tools/segmentation_screenshot.py [DOCS_FOLDER]`` (default ``docs``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.app import apply_dark_theme  # noqa: E402
from gui.main_window import QtMainWindow  # noqa: E402


def _wait(app: QApplication, condition, limit: float = 180.0) -> None:
    """Process events until ``condition()`` holds; fail loudly after ``limit`` seconds."""
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    if not condition():
        raise SystemExit("timed out waiting for the window")


def main(argv: list[str]) -> int:
    """Explain the nodule class with demo-seg, save the window, then the filing dialog."""
    docs = Path(argv[0]) if argv else Path("docs")
    scratch = Path(tempfile.mkdtemp())
    nodes = scratch / "pacs.toml"
    nodes.write_text('[nodes.hospital-pacs]\ndicomweb = "http://127.0.0.1:8042/dicom-web"\n',
                     encoding="utf-8")
    os.environ["LUCIDA_PACS_CONFIG"] = str(nodes)
    app = QApplication(["lucida"])
    apply_dark_theme(app)
    settings = QSettings(str(scratch / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.resize(1440, 900)
    win.show()
    win.open_demo()
    _wait(app, lambda: win.result is not None and win.layer_model.heatmap is not None)
    win.load_model("demo-seg")
    _wait(app, lambda: win.result is not None and win.result.model.get("name") == "demo-seg")
    nodule = win.result.classes.index("nodule")
    win.set_target(nodule)
    _wait(app, lambda: win.result is not None and win.result.target == nodule
          and win.layer_model.heatmap is not None and not win.viewer.outline_path().isEmpty())
    # The nodule's evidence is small beside the lungs' in shared units; show its own range.
    win.layer_model.scale = "image"
    settle = time.monotonic() + 0.5
    _wait(app, lambda: time.monotonic() > settle)
    docs.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(docs / "segmentation_outline.png"))

    win.open_export()
    dialog = win._export_dialog
    dialog.kind_file.setChecked(True)
    _wait(app, lambda: dialog.preview.pixmap() is not None and not dialog.preview.pixmap()
          .isNull())
    dialog.grab().save(str(docs / "export_file_to_study.png"))
    dialog.close()
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
