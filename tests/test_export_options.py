"""The figure options an export draws with, and the refusal of a result without maps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from export_fixtures import fake_result, write_fake_dicom

from engine.core.errors import UsageError
from engine.export import FigureOptions, export_options, write_reports
from engine.export.volume_report import write_volume_exports
from engine.studies.image import open_image


@pytest.fixture()
def image(tmp_path):
    return open_image(write_fake_dicom(tmp_path / "case.dcm"))


def test_a_view_state_is_read_and_options_pass_through(image):
    result = fake_result(image)
    read = export_options(result, {"method": "gradcam", "opacity": 0.25, "colormap": "magma"})
    assert (read.method, read.opacity, read.colormap) == ("gradcam", 0.25, "magma")
    given = FigureOptions(colormap="viridis")
    assert export_options(result, given) is given
    assert export_options(result, None) == FigureOptions()


def test_a_result_without_maps_writes_nothing(image, tmp_path):
    empty = replace(fake_result(image), maps={})
    with pytest.raises(UsageError, match="no explanation map"):
        write_reports(empty, image, tmp_path / "2d", "pdf,html")
    with pytest.raises(UsageError, match="no explanation map"):
        write_volume_exports(empty, None, tmp_path / "3d", "pdf,html")
    assert not (tmp_path / "2d").exists() and not (tmp_path / "3d").exists()
