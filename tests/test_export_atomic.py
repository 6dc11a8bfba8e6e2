"""A failed export leaves no half-written file behind and says why in one line."""

from __future__ import annotations

import errno
import os

import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom

import engine.export as export
from engine.core import atomic
from engine.core.atomic import StagedFiles, write_atomic
from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import ExportError
from engine.export import FigureOptions, write_reports
from engine.studies.image import open_image


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    image = open_image(write_fake_dicom(root / "case.dcm", size=32))
    return image, fake_result(image)


def _export(case, out_dir, formats=("png", "html", "dicom")):
    image, result = case
    return write_reports(
        result, image, out_dir, list(formats), figure_options=FigureOptions(dpi=50)
    )


def test_full_disk_leaves_nothing_and_keeps_the_old_file(case, tmp_path, monkeypatch):
    (tmp_path / "report.html").write_text("previous report")
    real_write = os.write
    calls = {"n": 0}

    def write_then_fill(fd, data):
        # The first chunk lands, then the disk is full: a half-written file if not atomic.
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "write", write_then_fill)
    with pytest.raises(ExportError) as info:
        _export(case, tmp_path)
    line = info.value.one_line()
    assert "No space left on device" in line and "free some disk space" in line
    assert "\n" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert (tmp_path / "report.html").read_text() == "previous report"


def test_unwritable_folder_says_why(case, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the output folder") as info:
        _export(case, blocker / "out")
    assert "choose a folder" in info.value.one_line()
    with pytest.raises(ExportError, match="not a folder"):
        _export(case, blocker)
    assert blocker.read_text() == "x"


def test_failed_rename_removes_every_staged_file(tmp_path, monkeypatch):
    real_replace = os.replace

    def fail_second(src, dst):
        if str(dst).endswith("b.txt"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_second)
    with pytest.raises(ExportError, match="Permission denied"):
        with StagedFiles(tmp_path) as staged:
            staged.add("a.txt", b"a")
            staged.add("b.txt", b"b")
            staged.add("c.txt", b"c")
            staged.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_atomic_replaces_whole_file(tmp_path):
    target = write_atomic(tmp_path / "sub" / "f.bin", b"1" * 10_000)
    write_atomic(target, b"2")
    assert target.read_bytes() == b"2"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_leak_guard_refuses_to_write(case, tmp_path, monkeypatch):
    def leaky_html(content, figures):
        return f"<p>{FAKE['PatientName']}</p>".encode("utf-16-le")

    monkeypatch.setattr(export, "report_html", leaky_html)
    with pytest.raises(ExportError, match="patient identifier"):
        _export(case, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cancel_writes_nothing(case, tmp_path):
    image, result = case
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if len(seen) == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        write_reports(
            result,
            image,
            tmp_path,
            ["png", "pdf"],
            progress=progress,
            cancel=token,
            figure_options=FigureOptions(dpi=50),
        )
    assert list(tmp_path.iterdir()) == []


def test_explain_outputs_are_published_together_or_not_at_all(case, tmp_path, monkeypatch):
    import json

    from engine.export.results import write_explain_outputs

    image, result = case
    (tmp_path / "result.json").write_text('{"previous": true}')
    real_write = os.write

    def fail_on_result_json(fd, data):
        # Everything before result.json is staged fine; then the disk fills up.
        if bytes(data[:1]) == b"{":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", fail_on_result_json)
    with pytest.raises(ExportError, match="No space left"):
        write_explain_outputs(result, image, tmp_path, {"load": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert json.loads((tmp_path / "result.json").read_text()) == {"previous": True}
    monkeypatch.undo()
    written = write_explain_outputs(result, image, tmp_path, {"load": 1.0})
    assert [p.name for p in written][-1] == "result.json"
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in written}
    assert json.loads((tmp_path / "result.json").read_text())["timings_ms"]["load"] == 1.0
