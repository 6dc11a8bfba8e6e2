"""Help ▸ User guide opens the locally built site; an error's "Read more" opens its page."""

from __future__ import annotations

from gui_fixtures import caught_urls
from PySide6.QtCore import QPoint, Qt

from engine.core.errors import TrustRequired


def _site(folder):
    (folder / "explanations").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>Lucida</h1>")
    (folder / "explanations" / "security.html").write_text("<h1>Security</h1>")
    return folder


def test_user_guide_action_opens_the_local_front_page(window, qtbot, tmp_path, monkeypatch):
    site = _site(tmp_path / "site")
    monkeypatch.setenv("LUCIDA_DOCS_SITE", str(site))
    with caught_urls() as catcher:
        window.actions_by_id["user_guide"].trigger()
        qtbot.waitUntil(lambda: len(catcher.urls) == 1)
    assert catcher.urls[0].toLocalFile() == str(site / "index.html")


def test_user_guide_not_built_says_how_to_build_it(window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCIDA_DOCS_SITE", str(tmp_path / "nothing"))
    window.actions_by_id["user_guide"].trigger()
    qtbot.waitUntil(lambda: window.banner.isVisible())
    assert "not built" in window.banner.label.text()
    assert "make docs" in window.banner.label.text()


def test_an_error_links_to_the_page_that_explains_its_fix(window, qtbot, tmp_path, monkeypatch):
    site = _site(tmp_path / "site")
    monkeypatch.setenv("LUCIDA_DOCS_SITE", str(site))
    line = TrustRequired("is a pickled Python object that can run code when loaded",
                         path="model.pt",
                         fix="pass --trust-model (or confirm in the GUI) only if you trust "
                             "where it came from").one_line()
    window.show_error(line)
    qtbot.waitUntil(lambda: window.banner.guide.isVisible())
    with caught_urls() as catcher:
        link = window.banner.guide
        qtbot.mouseClick(link, Qt.MouseButton.LeftButton,
                         pos=QPoint(link.width() // 2, link.height() // 2))
        qtbot.waitUntil(lambda: len(catcher.urls) == 1)
    assert catcher.urls[0].toLocalFile() == str(site / "explanations" / "security.html")
    # A line with no fix that a page explains gets no link.
    window.show_error("scan.dcm: cannot read the pixel data")
    assert not window.banner.guide.isVisible()
