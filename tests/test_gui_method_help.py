"""Help ▸ What am I looking at?: a page per method, built from the plugin's own words."""

from __future__ import annotations

from gui_fixtures import demo_window

from engine.explain.api import Explainer
from engine.metrics.reading import FAMILIES, ROWS
from gui.method_help import method_page, open_for


def test_every_method_has_a_page_from_its_plugin(qapp, tmp_path):
    win = demo_window(qapp, tmp_path)
    dialog = open_for(win)
    # The method on screen is shown first.
    assert dialog.methods.currentData() == win.method
    text = dialog.page.toPlainText()
    explainer = win.explainers[win.method]
    assert explainer.description in text and explainer.citation[:40] in text
    shape = next(i.shape for i in win.model.layers() if i.name == win.layer)
    assert f"{shape[-2]}×{shape[-1]} grid" in text
    for _key, label, _fmt, _tip in ROWS:
        assert label in text
    for family, meaning, _keys in FAMILIES:
        assert meaning in text and family.capitalize() in text
    assert "never flips" in text and "marker" in text
    pages = {}
    for index in range(dialog.methods.count()):
        dialog.methods.setCurrentIndex(index)
        name = dialog.methods.currentData()
        pages[name] = dialog.page.toPlainText()
        assert win.explainers[name].description in pages[name]
    assert len(set(pages.values())) == len(pages)  # no two methods share a page
    assert "signed" in pages["intgrad"] and "blue" in pages["intgrad"]
    assert "cannot show evidence against" in pages["gradcam"]
    assert "baseline" in pages["occlusion"] and "baseline" not in pages["gradcam"]
    dialog.close()
    win.close()


def test_third_party_plugin_caveats_reach_its_page():
    class Mine(Explainer):
        name, title = "mine", "My method"
        description = "Something new."
        citation = "Me 2026"
        caveats = "It only sees the top-left quadrant."
        needs = frozenset({"forward_fn"})

    page = method_page(Mine())
    assert "My method" in page and "top-left quadrant" in page and "Me 2026" in page
