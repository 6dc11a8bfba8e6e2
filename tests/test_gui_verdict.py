"""The reviewer's verdict beside the prediction: clicked, typed, saved with the review, restored
when it is reopened, exported in the report, and cleared when the case changes."""

from __future__ import annotations

from gui_fixtures import WAIT_MS, click_item, demo_window, image_named, pump
from pypdf import PdfReader
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QLineEdit

from engine.review import load_review

COMMENT = "the map rests on the corner marker"


def answer_file_dialog(qtbot, path) -> None:
    """Answer the next file dialog (Save or Open) like a person: type ``path`` and accept."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        dialog.findChild(QLineEdit, "fileNameEdit").setText(str(path))
        box = dialog.findChild(QDialogButtonBox)
        accept = next(b for b in box.buttons()
                      if box.buttonRole(b) == QDialogButtonBox.ButtonRole.AcceptRole)
        qtbot.mouseClick(accept, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)


def _click_image(window, qtbot, name: str) -> None:
    click_item(window.browser.tree, image_named(window, name))


def _pdf_text(path) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(path).pages)


def test_verdict_is_saved_exported_restored_and_cleared(qapp, qtbot, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        box = win.panel.verdict_box
        assert win.verdict is None and box.choice() is None
        shown = win.image.path.name
        qtbot.mouseClick(box.buttons["disagree"], Qt.MouseButton.LeftButton)
        qtbot.mouseClick(box.comment, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(box.comment, COMMENT)
        assert win.verdict is not None
        assert (win.verdict.value, win.verdict.comment) == ("disagree", COMMENT)
        assert win.verdict.recorded  # when it was given

        # The report holds it (File ▸ Export report…, PDF only).
        win.actions_by_id["export"].trigger()
        dialog = win._export_dialog
        out = tmp_path / "export"
        dialog.folder.setText(str(out))
        for fmt, check in dialog.output_checks.items():
            check.setChecked(fmt == "pdf")
        with qtbot.waitSignal(dialog.sig_exported, timeout=WAIT_MS):
            qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        text = _pdf_text(out / "report.pdf")
        assert "Reviewer verdict disagree" in text, text
        assert COMMENT in text
        dialog.reject()

        # File ▸ Save review… writes it with the review.
        saved = tmp_path / "case.lucida"
        answer_file_dialog(qtbot, saved)
        win.actions_by_id["save_review"].trigger()
        assert saved.is_file()
        assert load_review(saved).verdict.value == "disagree"

        # Another image is another case: no verdict, and the box is empty.
        other = next(n for n in ("phantom_0004.png", "phantom_0002.dcm") if n != shown)
        _click_image(win, qtbot, other)
        assert pump(qapp, lambda: win.image.path.name == other and win.result is not None)
        assert win.verdict is None
        assert box.choice() is None and box.comment.text() == ""

        # File ▸ Open review… brings the case and its verdict back.
        answer_file_dialog(qtbot, saved)
        win.actions_by_id["open_review"].trigger()
        assert pump(qapp, lambda: getattr(win, "review_restored", None) is not None
                    and win.result is not None and not win.worker.busy())
        assert win.image.path.name == shown
        assert win.verdict is not None
        assert (win.verdict.value, win.verdict.comment) == ("disagree", COMMENT)
        assert box.choice() == "disagree" and box.comment.text() == COMMENT
    finally:
        win.close()


def test_another_class_or_model_clears_the_verdict(qapp, qtbot, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        box = win.panel.verdict_box
        qtbot.mouseClick(box.buttons["agree"], Qt.MouseButton.LeftButton)
        assert win.verdict.value == "agree"
        # A click on the other class explains it: another question, no verdict yet.
        prediction = win.panel.prediction
        row = prediction.topLevelItem(1 - win.result.target)
        qtbot.mouseClick(prediction.viewport(), Qt.MouseButton.LeftButton,
                         pos=prediction.visualItemRect(row).center())
        assert pump(qapp, lambda: win.result is not None and win.target is not None
                    and not win.worker.busy())
        assert win.verdict is None and box.choice() is None
    finally:
        win.close()
