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
from pathlib import Path

from screenshot_window import open_window, save_grab, wait


def main(argv: list[str]) -> int:
    """Explain the nodule class with demo-seg, save the window, then the filing dialog."""
    docs = Path(argv[0]) if argv else Path("docs")
    scratch = Path(tempfile.mkdtemp())
    nodes = scratch / "pacs.toml"
    nodes.write_text('[nodes.hospital-pacs]\ndicomweb = "http://127.0.0.1:8042/dicom-web"\n',
                     encoding="utf-8")
    os.environ["LUCIDA_PACS_CONFIG"] = str(nodes)
    app, win = open_window(scratch)
    win.open_demo()
    wait(app, lambda: win.result is not None and win.layer_model.heatmap is not None)
    win.load_model("demo-seg")
    wait(app, lambda: win.result is not None and win.result.model.get("name") == "demo-seg")
    nodule = win.result.classes.index("nodule")
    win.set_target(nodule)
    wait(app, lambda: win.result is not None and win.result.target == nodule
         and win.layer_model.heatmap is not None and not win.viewer.outline_path().isEmpty())
    # The nodule's evidence is small beside the lungs' in shared units; show its own range.
    win.layer_model.scale = "image"
    save_grab(app, win, docs / "segmentation_outline.png")

    win.open_export()
    dialog = win._export_dialog
    dialog.kinds.kind_file.setChecked(True)
    wait(app, lambda: dialog.preview.pixmap() is not None and not dialog.preview.pixmap()
         .isNull())
    save_grab(app, dialog, docs / "export_file_to_study.png")
    dialog.close()
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
