"""Side panels: DICOM tag search, parameter widgets from a schema, the study tree, Help."""

from __future__ import annotations

import shutil

from gui_fixtures import PYDICOM_FILES, ct_image

from engine.explain.api import Param
from engine.studies.tree import open_paths
from gui.param_form import QtParamForm
from gui.shortcuts import KEYS, help_html
from gui.study_browser import IMAGE_ROLE, QtStudyBrowser, thumbnail
from gui.tag_panel import QtTagPanel


def test_tag_search_filters_rows(qtbot):
    panel = QtTagPanel()
    qtbot.addWidget(panel)
    panel.set_dataset(ct_image().dataset)
    everything = panel.filter("")
    assert everything > 20
    panel.search.setText("KVP")
    visible = [panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
               if not panel.tree.topLevelItem(i).isHidden()]
    assert [item.text(1) for item in visible] == ["KVP"]
    assert panel.filter("0018,0060") == 1  # by tag number too
    assert panel.filter("no such tag anywhere") == 0


def test_param_form_builds_typed_widgets_from_the_schema(qtbot):
    schema = (
        Param("mode", "choice", 2, choices=(1, 2, 4)),
        Param("k", "int", 32, range=(1, 64)),
        Param("sigma", "float", 0.5, range=(0.0, 2.0)),
        Param("baseline", "bool", False),
        Param("label", "str", "x"),
    )
    form = QtParamForm(schema)
    qtbot.addWidget(form)
    assert form.values() == {"mode": 2, "k": 32, "sigma": 0.5, "baseline": False, "label": "x"}
    seen = []
    form.sig_changed.connect(seen.append)
    form.editor("k").setValue(500)  # clamped to the declared range
    form.editor("mode").setCurrentIndex(2)
    form.editor("baseline").setChecked(True)
    assert form.values()["k"] == 64
    assert form.values()["mode"] == 4 and isinstance(form.values()["mode"], int)
    assert seen[-1]["baseline"] is True


def test_study_browser_lists_images_with_thumbnails(qtbot, tmp_path):
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(PYDICOM_FILES / name, tmp_path / name)
    tree = open_paths([tmp_path])
    thumbs = {str(image.path): thumbnail(image) for image in tree.all_images()}
    assert all(max(t.shape[:2]) <= 64 for t in thumbs.values())
    browser = QtStudyBrowser()
    qtbot.addWidget(browser)
    browser.set_tree(tree, thumbs)
    items = browser.image_items()
    names = sorted(item.data(0, IMAGE_ROLE).path.name for item in items)
    assert names == ["CT_small.dcm", "MR_small.dcm"]
    # One-image series are single rows named by modality and description.
    assert any(item.text(0).startswith("CT") for item in items)
    assert all(not item.icon(0).isNull() for item in items)
    with qtbot.waitSignal(browser.sig_image_selected) as blocker:
        browser.tree.itemClicked.emit(items[0], 0)
    assert blocker.args[0] is items[0].data(0, IMAGE_ROLE)


def test_help_lists_every_bound_shortcut():
    html = help_html()
    for key, text in KEYS.values():
        assert f"<b>{key}</b>" in html and text in html
