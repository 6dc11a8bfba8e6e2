"""Regenerate ``docs/images/cluster-browser.png`` and ``docs/images/audit-performance.png``.

Opens a finished demo audit in the review window as File ▸ Open audit… does, clicks the
cluster with the most over-represented metadata, then its first exemplar (which opens in the
viewer with its map), and saves the window; then the Performance tab. Usage::

    python main.py audit --demo --n 60 --out DEMO --keep-identifiers --no-pdf
    python tools/cluster_browser_screenshot.py DEMO/demo-biased [OUT_FOLDER]

(``OUT_FOLDER`` defaults to ``docs/images``.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from screenshot_window import open_window, save_grab, wait


def _most_enriched(clusters: dict) -> tuple[str, int]:
    """The (class, index) of the cluster whose top enrichment has the smallest p-value."""
    best, key = 2.0, None
    for entry in clusters["classes"]:
        for i, cluster in enumerate(entry.get("clusters", [])):
            for e in cluster["enriched"][:1]:
                if e["p_adjusted"] < best:
                    best, key = e["p_adjusted"], (entry["class"], i)
    if key is None:
        raise SystemExit("error: the audit has no clusters; audit at least 20 images a class")
    return key


def main(argv: list[str]) -> int:
    """Open the audit, click a cluster and an exemplar, and save the two screenshots."""
    if not argv:
        raise SystemExit(__doc__)
    folder = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else Path("docs/images")
    app, win = open_window()
    win.open_demo()
    wait(app, lambda: win.result is not None and not win.worker.busy())
    win.open_audit_view()
    view = win.audit_view
    if not view.open_audit(folder):
        raise SystemExit(f"error: {view.status.text()}")
    # The Audit dock takes most of the window's height, as a user drags its edge.
    win.resizeDocks([win.docks["audit"]], [560], Qt.Orientation.Vertical)
    browser = view.results.clusters
    view.tabs.setCurrentWidget(browser)
    clusters = json.loads((folder / "clusters.json").read_text())
    QTest.mouseClick(browser.buttons[_most_enriched(clusters)], Qt.MouseButton.LeftButton)
    item = browser.exemplar_list.item(0)
    path = Path(item.data(Qt.ItemDataRole.UserRole)[1])
    browser.exemplar_list.setCurrentItem(item)
    QTest.mouseClick(browser.exemplar_list.viewport(), Qt.MouseButton.LeftButton,
                     pos=browser.exemplar_list.visualItemRect(item).center())
    wait(app, lambda: win.image is not None and win.image.path == path
         and win.result is not None and not win.worker.busy())
    save_grab(app, win, out / "cluster-browser.png")
    view.tabs.setCurrentIndex(next(i for i in range(view.tabs.count())
                                   if view.tabs.tabText(i) == "Performance"))
    save_grab(app, win, out / "audit-performance.png")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
