"""Every way of opening, clicked on the real window: File ▸ Open of files or a folder, the
study tree's one row per series, and a series with a missing slice next to the 3-D model."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from gui_fixtures import PYDICOM_FILES, WAIT_MS, click_item, pump
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QFileSystemModel,
    QLineEdit,
    QListView,
)

from engine.studies.tree import NOT_A_VOLUME
from gui.file_opening import DEMO_CT, OpenDialog
from gui.study_browser import IMAGE_ROLE, SERIES_ROLE

CT_SERIES = DEMO_CT / "chest_ct"


def answer_open_dialog(qtbot, folder, names=(), whole_folder=False, seen=None):
    """Answer the next File ▸ Open dialog like a person: go to ``folder``, then type the file
    names and press Open, or press "Open this folder". ``seen`` gets the names it lists."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, OpenDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        loaded = []
        dialog.findChild(QFileSystemModel).directoryLoaded.connect(loaded.append)
        dialog.setDirectory(str(folder))
        if seen is not None:
            view = dialog.findChild(QListView, "listView")
            with contextlib.suppress(qtbot.TimeoutError):  # the dialog is answered whatever
                qtbot.waitUntil(lambda: str(folder) in loaded, timeout=WAIT_MS)
            root = view.rootIndex()
            seen.extend(view.model().index(r, 0, root).data()
                        for r in range(view.model().rowCount(root)))
        if whole_folder:
            button = getattr(dialog, "folder_button", None)
            if button is None:
                dialog.reject()  # a dialog that cannot open a folder
                return
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            return
        dialog.findChild(QLineEdit, "fileNameEdit").setText(
            " ".join(f'"{name}"' for name in names))
        box = dialog.findChild(QDialogButtonBox)
        qtbot.mouseClick(box.button(QDialogButtonBox.StandardButton.Open),
                         Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)


def _truncated_jpeg2000(folder):
    source = (PYDICOM_FILES / "MR_small_jp2klossless.dcm").read_bytes()
    path = folder / "cut_j2k.dcm"
    path.write_bytes(source[: len(source) - 8])
    return path


def test_file_open_of_a_failing_file_after_a_good_one_leaves_nothing_of_it(
        window, qapp, qtbot, tmp_path):
    assert window.image is not None and window.layer_model.heatmap is not None
    assert "explaining" in window.caption.text()
    bad = _truncated_jpeg2000(tmp_path)
    answer_open_dialog(qtbot, tmp_path, [bad.name])
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as error:
        window.actions_by_id["open"].trigger()
    assert "cut_j2k.dcm" in error.args[0] and "truncated" in error.args[0]
    assert window.image is None and window.result is None
    assert window.viewer.rendered_image().isNull() and window.layer_model.heatmap is None
    assert window.viewer.message().startswith("Cannot open cut_j2k.dcm")
    assert "explaining" not in window.caption.text()
    assert window.panel.prediction.topLevelItemCount() == 0
    assert [r[:2] for r in window.problems.rows()] == [("cut_j2k.dcm", "failed")]
    assert window.docks["problems"].isVisible()


def test_file_open_chooses_a_folder_and_lists_dicom_files_without_an_extension(
        window, qapp, qtbot, tmp_path):
    folder = tmp_path / "cd"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "IM0001")
    seen: list[str] = []
    answer_open_dialog(qtbot, folder, whole_folder=True, seen=seen)
    window.actions_by_id["open"].trigger()
    assert "IM0001" in seen, "the default filter hides DICOM files without an extension"
    assert pump(qapp, lambda: window.image is not None and window.image.path.name == "IM0001")
    assert window.files.paths == [str(folder)]


@pytest.fixture
def gapped_series(tmp_path):
    """The demo CT series with a middle slice deleted: 63 files that are not a volume."""
    folder = tmp_path / "gapped"
    shutil.copytree(CT_SERIES, folder)
    (folder / "IM0032.dcm").unlink()
    return folder


def _reopen_demo(window, qapp) -> None:
    window.files.open_demo()
    assert pump(qapp, lambda: window.result is not None and not window.worker.busy())


def test_a_series_that_is_not_a_volume_says_why_and_the_3d_model_stays(
        window, qapp, qtbot, gapped_series):
    _reopen_demo(window, qapp)
    series_row = window.browser.volume_items()[0]  # the demo CT's row
    click_item(window.browser.tree, series_row)
    assert pump(qapp, lambda: window.model is not None and window.model.name == "demo-3d"
                and window.volume_shown()), "the demo's CT opens with the demo 3-D model"
    assert pump(qapp, lambda: not window.worker.busy())
    jobs = []
    window.worker.sig_finished.connect(lambda _job, kind, _result: jobs.append(kind))
    names = sorted(p.name for p in gapped_series.iterdir())
    assert len(names) == 63
    answer_open_dialog(qtbot, gapped_series, names)
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS,
                          check_params_cb=lambda text: "reads volumes" in text) as error:
        window.actions_by_id["open"].trigger()
    assert "1 slice(s) missing" in error.args[0] and "\n" not in error.args[0]
    assert window.banner.isVisible() and "1 slice(s) missing" in window.banner.label.text()
    assert pump(qapp, lambda: not window.worker.busy())
    assert window.model_spec == "demo-3d" and "model" not in jobs, \
        "the model changed behind the user's back"
    assert window.result is None and "nodule" not in window.caption.text()
    (opened,) = window.files.tree.all_series()
    assert len(opened.images) == 63 and window.image is opened.middle
    (row,) = [r for r in window.problems.rows() if r[1] == NOT_A_VOLUME]
    assert row[0] == "gapped" and "1 slice(s) missing" in row[2]
    assert "series not a volume" in window.problems.summary.text()
    (series,) = window.browser.series_items()
    assert series.childCount() == 63 and not series.isExpanded()


def _is_ct(item) -> bool:
    return getattr(item.data(0, SERIES_ROLE), "modality", "") == "CT"


def test_the_study_tree_lists_a_ct_series_as_one_row_with_a_thumbnail(window, qapp, qtbot):
    _reopen_demo(window, qapp)
    rows = [i for i in window.browser.series_items() if _is_ct(i)]
    assert len(rows) == 1, "one row for the demo CT series"
    row = rows[0]
    assert row.childCount() == 64 and not row.isExpanded()
    assert row.data(0, IMAGE_ROLE) is not None and row.data(0, IMAGE_ROLE).kind == "volume"
    assert pump(qapp, lambda: not row.icon(0).isNull()), "the series row has no thumbnail"
    # A 2-D model picked by the user: the series opens its middle slice, the model stays.
    combo = window.panel.model_combo
    with qtbot.waitSignal(window.worker.sig_finished, timeout=WAIT_MS,
                          check_params_cb=lambda _job, kind, _r: kind == "model"):
        combo.activated.emit(combo.findData("demo"))
    assert pump(qapp, lambda: window.model is not None and not window.worker.busy())
    click_item(window.browser.tree, row)
    assert not window.volume_shown() and window.image is row.data(0, SERIES_ROLE).middle
    assert pump(qapp, lambda: window.result is not None and not window.worker.busy())
    assert window.model_spec == "demo"
