"""Volume exports: reports with a row of planes per map, the plane figure and NIfTI maps."""

from __future__ import annotations

import base64
import io
import re

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pypdf import PdfReader

from engine.core.errors import UsageError
from engine.core.resources import RESOURCES
from engine.explain.session import ExplainRequest, Session
from engine.export.volume_report import PLANES_FIGURE, write_volume_exports
from engine.models.loaded import load_model
from engine.studies.planes import three_planes
from engine.studies.tree import open_paths
from tests.export_leaks import found

LAYERS = ["features.6", "features.9"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    volume = open_paths([str(RESOURCES / "studies" / "demo-ct" / "chest_ct")]).all_volumes()[0]
    result = Session(device="cpu").explain(ExplainRequest(
        image=volume, model=load_model("demo-3d"), methods=["gradcam"], layers=LAYERS))
    out = {}
    for keep in (False, True):
        folder = tmp_path_factory.mktemp(f"keep_{keep}")
        out[keep] = write_volume_exports(
            result, volume, folder, "pdf,html,png,nifti", keep_identifiers=keep,
            figure_options={"method": "gradcam", "layer": "features.6", "opacity": 0.5},
            all_maps=True)
    return volume, result, out


def _html_figures(path) -> list[np.ndarray]:
    data = path.read_bytes()
    return [np.asarray(PILImage.open(io.BytesIO(base64.b64decode(m.group(1)))))
            for m in re.finditer(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", data)]


def test_every_file_is_written(case):
    _volume, _result, out = case
    names = sorted(p.name for p in out[False])
    assert names == sorted([PLANES_FIGURE, "report.pdf", "report.html", "report.json",
                            "heatmap_gradcam_features-6.nii.gz",
                            "heatmap_gradcam_features-9.nii.gz"])


def test_the_report_has_a_row_of_three_planes_per_map(case):
    volume, result, out = case
    html = next(p for p in out[False] if p.suffix == ".html")
    figures = _html_figures(html)
    assert len(figures) == len(result.maps) == 2
    peak = np.unravel_index(int(np.argmax(result.maps["gradcam", "features.6"].heatmap)),
                            volume.shape)
    views = three_planes(volume, volume.index_to_patient(peak))
    # Each plane enlarged twice, 4 pixels apart: the three planes side by side in one row
    # (each map's planes cross at its own peak, so a plane may gain or lose a pixel).
    width = sum(2 * v.image.shape[1] + 4 for v in views.values())
    height = max(2 * v.image.shape[0] for v in views.values())
    for figure in figures:
        assert abs(figure.shape[1] - width) <= 6
        assert height - 2 <= figure.shape[0] < height + 40  # the row, then the research line
    text = " ".join(" ".join(page.extract_text().split())
                    for page in PdfReader(next(p for p in out[False] if p.suffix == ".pdf")).pages)
    for needle in ("64 × 128 × 128 voxels (slices × rows × columns)", "Figure 2", "features.9",
                   "axial, coronal and sagittal planes", "Research use only"):
        assert needle in text, needle


def test_the_map_as_nifti_lands_on_its_voxels(case):
    volume, result, out = case
    path = next(p for p in out[False] if p.name == "heatmap_gradcam_features-6.nii.gz")
    data = np.asarray(nib.load(str(path)).dataobj)
    heat = result.maps["gradcam", "features.6"].heatmap
    i, j, k = np.unravel_index(int(data.argmax()), data.shape)
    assert (k, j, i) == np.unravel_index(int(np.argmax(heat)), heat.shape)


@pytest.mark.parametrize("key", ["PatientName", "PatientID", "AccessionNumber"])
def test_no_byte_of_a_deidentified_volume_export_holds_identifiers(case, key):
    volume, _result, out = case
    value = volume.identifiers()[key]
    for path in out[False]:
        assert not found(path, value), f"{key} in {path.name}"
    kept = {p.suffix: found(p, value) for p in out[True]}
    assert kept[".pdf"] and kept[".html"] and kept[".json"]


def test_an_unknown_format_is_a_usage_error(case, tmp_path):
    volume, result, _out = case
    with pytest.raises(UsageError, match="dicom"):
        write_volume_exports(result, volume, tmp_path, "pdf,dicom")
    assert list(tmp_path.iterdir()) == []
