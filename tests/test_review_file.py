"""Review files: saved from the window, reopened field by field, and checked on the way in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gui_fixtures import WAIT_MS, demo_window, image_named, pump

from engine.core.resources import DEMO_STUDY
from engine.review import (
    REVIEW_VERSION,
    Review,
    ReviewError,
    ReviewFile,
    check_review,
    load_review,
    save_review,
)

ROOT = Path(__file__).resolve().parents[1]


def _review(tmp_path: Path, image: Path) -> Review:
    from engine.review import file_entry

    return Review([file_entry(image.parent, hash_file=False)], file_entry(image),
                  {"spec": "demo", "sha256": "ab" * 32, "needs_trust": False},
                  {"method": "gradcam", "layer": "features.3", "opacity": 0.5}, None)


def test_round_trip_and_checks(tmp_path):
    image = tmp_path / "case.png"
    shutil.copy(next(DEMO_STUDY.glob("*.png")), image)
    written = save_review(tmp_path / "mine", _review(tmp_path, image))
    assert written.name == "mine.lucida"
    doc = json.loads(written.read_text())
    assert doc["format"] == "lucida-review" and doc["version"] == REVIEW_VERSION
    review = load_review(written)
    assert review.view["layer"] == "features.3" and review.shown.path == str(image)
    assert check_review(review, "ab" * 32) == []
    # A changed model and a changed image are both named.
    problems = check_review(review, "cd" * 32)
    assert len(problems) == 1 and "model changed" in problems[0]
    image.write_bytes(image.read_bytes() + b"\0")
    assert any("image changed" in line for line in check_review(review))
    image.unlink()
    assert f"{image}: no longer exists" in check_review(review)


def test_missing_file_names_the_pacs_study(tmp_path):
    review = Review([ReviewFile(str(tmp_path / "gone.dcm"), "",
                                {"StudyInstanceUID": "1.2.3"})], None,
                    {"spec": "demo"}, {})
    (line,) = check_review(review)
    assert "gone.dcm: no longer exists" in line and "1.2.3" in line


@pytest.mark.parametrize("content, words", [
    ("{not json", "not a readable review file"),
    ('{"format": "something-else", "version": 1}', "not a Lucida review file"),
    ('{"format": "lucida-review", "version": 99, "opened": []}', "newer Lucida"),
    ('{"format": "lucida-review", "version": 1, "opened": []}', "names no open files"),
    ('{"format": "lucida-review", "version": 1, "opened": [{"path": "a.png"}], '
     '"model": {"spec": "demo"}, "view": {"zoom": "big"}}', "'zoom' is malformed"),
])
def test_bad_review_files_get_one_line(tmp_path, content, words):
    path = tmp_path / "bad.lucida"
    path.write_text(content)
    with pytest.raises(ReviewError) as info:
        load_review(path)
    line = info.value.one_line()
    assert words in line and str(path) in line and "\n" not in line


def test_window_review_saved_and_reopened_field_by_field(qapp, qtbot, tmp_path):
    from PySide6.QtCore import QPointF

    from gui.review_io import open_review, save_to, view_fields

    first = demo_window(qapp, tmp_path)
    # Another image than the one the demo opens on, then a non-default class, layer and view.
    chosen = image_named(first, "phantom_0004.png")
    first.browser.tree.itemClicked.emit(chosen, 0)
    assert pump(qapp, lambda: first.image.path.name == "phantom_0004.png"
                and first.result is not None and first.layer_model.heatmap is not None
                and not first.worker.busy())
    layers = [info.name for info in first.model.layers()]
    layer = next(name for name in layers if name != first.layer)
    with qtbot.waitSignal(first.sig_map_drawn, timeout=WAIT_MS):
        first.set_target(1)
    with qtbot.waitSignal(first.sig_map_drawn, timeout=WAIT_MS):
        first.explain.set_versus(0)  # "nodule rather than normal"
    with qtbot.waitSignal(first.sig_map_drawn, timeout=WAIT_MS):
        first.set_layer(layer)
    first.set_window(-200.0, 900.0)
    first.layer_model.opacity = 0.35
    first.layer_model.colormap = "inferno"
    first.layer_model.threshold = 0.2
    first.set_roi((4, 6, 30, 28), "ellipse")
    first.viewer.zoom_by(2.0)
    first.measure_tools.distance.measure(QPointF(3, 4), QPointF(23, 19))
    first.actions_by_id["annotations"].trigger()  # annotations off
    saved_view = view_fields(first)
    assert saved_view["ruler"] == [3.0, 4.0, 23.0, 19.0] and not saved_view["annotations"]
    first_distance = first.measure_tools.distance.text
    path = save_to(first, tmp_path / "review")
    assert path is not None and path.is_file()
    # The study is recorded as it was opened (the demo folder is one entry, not its files).
    opened = [entry.path for entry in load_review(path).opened]
    assert str(Path(DEMO_STUDY).absolute()) in opened and len(opened) == len(first.files.paths)
    saved_image = first.image.path
    assert pump(qapp, lambda: not first.worker.busy())
    first.close()

    (tmp_path / "second").mkdir()
    second = demo_window(qapp, tmp_path / "second")
    review = open_review(second, path)
    assert review is not None
    assert pump(qapp, lambda: getattr(second, "review_restored", None) is review)
    assert pump(qapp, lambda: second.layer_model.heatmap is not None
                and not second.worker.busy() and second.result is not None)
    restored = view_fields(second)
    assert second.image.path == saved_image
    for name, value in saved_view.items():
        if name in ("zoom", "center"):
            assert restored[name] == pytest.approx(value, rel=1e-3, abs=0.5), name
        else:
            assert restored[name] == value, name
    assert second.result.target == 1 and second.result.versus == "normal"
    assert second.panel.versus.currentData() == 0
    assert second.measure_tools.distance.text == first_distance
    assert not second.actions_by_id["annotations"].isChecked()
    assert pump(qapp, lambda: not second.worker.busy())
    second.close()


def test_changed_model_is_reported_and_pickle_is_asked_again(qapp, tmp_path):
    from gui.review_io import capture_review, open_review

    win = demo_window(qapp, tmp_path)
    review = capture_review(win)
    review.model["sha256"] = "0" * 64
    path = save_review(tmp_path / "changed", review)
    errors = []
    win.sig_error.connect(errors.append)
    asked = []
    win.confirm_trust = lambda name, message: asked.append(name) or False
    open_review(win, path)
    assert pump(qapp, lambda: any("model changed" in line for line in errors))
    # A review of a pickled model does not carry trust: loading it asks, and "no" loads nothing.
    pickled = tmp_path / "model.pkl"
    import torch

    torch.save(win.model.module, pickled)
    review.model = {"spec": str(pickled), "sha256": "", "needs_trust": True}
    path = save_review(tmp_path / "pickled", review)
    open_review(win, path)
    assert pump(qapp, lambda: asked)
    assert win.model_spec != str(pickled)
    win.close()


def test_command_line_opens_a_review(tmp_path):
    bad = tmp_path / "bad.lucida"
    bad.write_text("{}")
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "--review", str(bad),
                          "--screenshot", str(tmp_path / "shot.png")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert f"{bad}: not a Lucida review file" in run.stderr
    assert "Traceback" not in run.stderr


def test_command_line_restores_a_review(tmp_path):
    from engine.review import file_entry

    image = DEMO_STUDY / "phantom_0004.png"
    review = Review([file_entry(image)], file_entry(image),
                    {"spec": "demo", "sha256": "", "needs_trust": False},
                    {"method": "gradcampp", "colormap": "viridis", "opacity": 0.4}, None)
    path = save_review(tmp_path / "good", review)
    shot = tmp_path / "shot.png"
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "--review", str(path),
                          "--screenshot", str(shot)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert shot.stat().st_size > 10_000
