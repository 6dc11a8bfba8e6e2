"""Opening folders on the real window: the Problems list, progress, thumbnails on the worker."""

from __future__ import annotations

import shutil
import threading

import pytest
from gui_fixtures import PYDICOM_FILES, WAIT_MS, pump

from engine.studies.filetypes import FAILED, SKIPPED, classify, looks_like_image
from engine.studies.tree import FileProblem

BAD_FILES = 76


def test_every_file_that_failed_is_listed_with_its_reason(window, qapp, qtbot, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "good.dcm")
    for n in range(BAD_FILES):
        (folder / f"bad{n:02d}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    (folder / "notes.txt").write_text("not an image")
    shutil.copy(PYDICOM_FILES / "rtplan.dcm", folder / "plan.dcm")  # a DICOM without pixels
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        window.open_paths([str(folder)])
    assert f"(and {BAD_FILES - 1} more" in blocker.args[0]
    assert pump(qapp, lambda: window.image is not None and window.image.path.name == "good.dcm")
    rows = window.problems.rows()
    assert len(rows) == BAD_FILES + 2
    failed = [r for r in rows if r[1] == FAILED]
    assert sorted(r[0] for r in failed) == [f"bad{n:02d}.dcm" for n in range(BAD_FILES)]
    assert all(r[2] for r in rows)  # every row says why
    skipped = {r[0]: r[2] for r in rows if r[1] == SKIPPED}
    assert set(skipped) == {"notes.txt", "plan.dcm"}
    assert "holds no image" in skipped["plan.dcm"]
    assert window.docks["problems"].isVisible()
    assert f"{BAD_FILES} failed" in window.problems.summary.text()


def test_reading_a_folder_reports_progress_and_thumbnails_come_from_the_worker(
        window, qapp, qtbot, tmp_path, monkeypatch):
    import gui.file_opening as file_opening

    threads = []
    draw = file_opening.thumbnail

    def recording(image, *args):
        threads.append(threading.current_thread())
        return draw(image, *args)

    monkeypatch.setattr(file_opening, "thumbnail", recording)
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(40):
        shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / f"ct{n:02d}.dcm")
    progress = []
    window.worker.sig_progress.connect(lambda _job, fraction, _m: progress.append(fraction))
    window.open_paths([str(folder)])
    assert window.browser.hint.text().startswith("Reading many")
    assert pump(qapp, lambda: len(threads) >= 40 and not window.worker.busy())
    assert progress and max(progress) == pytest.approx(1.0)
    assert all(t is not threading.main_thread() for t in threads)
    assert pump(qapp, lambda: all(not item.icon(0).isNull()
                                  for item in window.browser.image_items()))
    assert len(window.browser.image_items()) == 40


def test_the_file_type_policy_lives_in_the_engine(tmp_path):
    assert looks_like_image("scan.dcm") and looks_like_image("IM000001")
    assert not looks_like_image("manifest.csv")
    named = tmp_path / "notes.txt"
    problems = classify([FileProblem(named, "is not a DICOM or image file", SKIPPED),
                         FileProblem(tmp_path / "readme.md", "is not a DICOM or image file",
                                     SKIPPED),
                         FileProblem(tmp_path / "junk.dcm", "is not a DICOM or image file",
                                     SKIPPED),
                         FileProblem(tmp_path / "sr.dcm", "holds no image (Basic Text SR)",
                                     SKIPPED),
                         FileProblem(tmp_path / "cut.dcm", "pixel data is truncated", FAILED)],
                        named=[named])
    assert [p.kind for p in problems] == [FAILED, SKIPPED, FAILED, SKIPPED, FAILED]
