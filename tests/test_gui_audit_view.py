"""The Audit view making its point: fitted axes, enrichment, group vs rest, two models, Demo."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from audit_view_fixtures import click_row, dark_theme
from gui_fixtures import WAIT_MS, demo_window, pump, qimage_pixels
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui.audit_charts import MIN_HEIGHT, QtBarChart, nice_axis

#: Demo phantoms per set for the cancel test (the Demo button makes its own 40 + 40).
N = 4


def test_the_axis_fits_a_two_percent_share():
    lo, hi, ticks = nice_axis([0.022, 0.018, 0.026], percent_cap=True)
    assert lo == 0.0 and 0.026 < hi < 0.2
    assert ticks[0] == 0.0 and ticks[-1] == hi and len(ticks) >= 3
    # Differences get a symmetric axis; shares never go past 100%.
    lo, hi, _ = nice_axis([-0.05, 0.01])
    assert lo == -hi and hi >= 0.05
    assert nice_axis([0.97], percent_cap=True)[1] == 1.0


def test_the_chart_draws_small_bars_tall(qtbot):
    chart = QtBarChart()
    qtbot.addWidget(chart)
    chart.resize(400, 240)
    chart.set_entries("t", [("a", 0.02, 0.015, 0.025), ("b", 0.001, 0.0, 0.002)])
    image = chart.grab().toImage()
    # The 2% bar is more than half the plot tall: its colour shows half-way up the plot.
    x = int(chart.width() * 0.3)
    column = [image.pixelColor(x, y).name() for y in range(image.height())]
    assert column.count("#4c72b0") > 0.4 * (chart.height() - 64)


@pytest.fixture(scope="module")
def demo(qapp, tmp_path_factory):
    """A review window whose Audit view's Demo button was clicked (both demo models)."""
    folder = tmp_path_factory.mktemp("audit_demo")
    win = demo_window(qapp, folder)
    win.open_audit_view()
    view = win.audit_view
    view.out_edit.setText(str(folder / "out"))
    seen, errors = [], []
    view.progress.valueChanged.connect(seen.append)
    win.sig_error.connect(errors.append)
    QTest.mouseClick(view.demo_button, Qt.MouseButton.LeftButton)
    assert view.is_running() and view.cancel_button.isEnabled(), view.status.text()
    assert pump(qapp, lambda: not view.is_running(), timeout_ms=4 * WAIT_MS)
    yield win, view, folder / "out" / "demo", seen, errors
    win.close()


def test_demo_button_audits_both_demo_models(demo):
    _, view, out, seen, errors = demo
    assert not errors and "failed" not in view.status.text(), view.status.text()
    assert list(view.audits) == ["demo", "demo-biased"]
    data = (out / "data" / "manifest.csv").read_text().splitlines()
    assert len(data) == 1 + 2 * 40
    for name in view.audits:
        assert (out / name / "audit.json").is_file()
    assert view.progress.value() == 1000 and any(0 < v < 1000 for v in seen)
    assert view.demo_button.isEnabled() and not view.cancel_button.isEnabled()


def test_two_audits_show_the_biased_model_on_the_marker(demo):
    _, view, _, _, _ = demo
    assert view.role_combo.currentText() == "marker"
    unbiased = view.audits["demo"][1]["roi_share"]["marker"]["mean"]
    biased = view.audits["demo-biased"][1]["roi_share"]["marker"]["mean"]
    assert biased > unbiased
    label, bars = view.share_chart.entries[0]
    assert label == "all" and [b[0] for b in bars] == [unbiased, biased]
    assert view.share_chart.series == ["demo", "demo-biased"]
    assert view.finding.text().startswith("demo-biased puts")
    # The marker's few-percent share is drawn on an axis that fits it.
    largest = max(v for _, bs in view.share_chart.entries for b in bs for v in b
                  if v is not None)
    assert largest < 0.15 and view.share_chart.axis[1] < 0.2


def test_two_audits_each_get_their_summary_and_mean_maps(demo):
    from PySide6.QtWidgets import QLabel

    _, view, _, _, _ = demo
    text = view.status.text()
    for name, (_, audit, _) in view.audits.items():
        assert f"{name}: {audit['n']} images" in text
    tips = [w.toolTip() for w in view.grid_host.findChildren(QLabel) if w.toolTip()]
    for name, (_, _, folder) in view.audits.items():
        pngs = list((folder / "mean_heatmaps").glob("*__*.png"))
        assert pngs and sum(t.startswith(f"{name}: ") for t in tips) == len(pngs)


def _marker_area_fraction(manifest) -> float:
    """Mean marker-box area over image area, by hand from the manifest and the image files."""
    fracs = []
    with manifest.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if not rec["marker_box"]:
                continue
            x0, y0, x1, y1 = (float(v) for v in rec["marker_box"].split())
            path = manifest.parent / rec["path"]
            if path.suffix == ".png":
                with Image.open(path) as im:
                    rows, cols = im.height, im.width
            else:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                rows, cols = ds.Rows, ds.Columns
            fracs.append((x1 - x0) * (y1 - y0) / (rows * cols))
    return sum(fracs) / len(fracs)


def test_enrichment_is_share_over_area_fraction(demo):
    _, view, out, _, _ = demo
    area = _marker_area_fraction(out / "data" / "manifest.csv")
    for k, name in enumerate(view.audits):
        share = view.audits[name][1]["roi_share"]["marker"]["mean"]
        enrichment = view.enrichment_chart.entries[0][1][k][0]
        assert enrichment == pytest.approx(share / area, rel=1e-6)
        cell = view.models_table.item(k, 3).text()
        assert cell == f"{share / area:.1f}×"
    assert view.enrichment_chart.reference == 1.0 and not view.enrichment_chart.percent


def test_each_group_is_contrasted_with_the_rest(demo):
    _, view, _, _, _ = demo
    by_label = dict(view.contrast_chart.entries)
    biased = view.audits["demo-biased"][1]["roi_share"]["marker"]["by_group"]
    # The complement of set=correlated is the counterfactual set.
    diff, lo, hi = by_label["set=correlated"][1]
    expected = biased["set=correlated"]["mean"] - biased["set=counterfactual"]["mean"]
    assert diff == pytest.approx(expected)
    assert lo <= diff <= hi
    # site=B has the only markers: no complement to contrast it with, so no bar.
    assert "site=B" not in by_label


def test_the_view_lists_method_titles_and_their_parameters(demo):
    win, view, _, _, _ = demo
    assert view.method() == "gradcam"
    assert view.method_combo.currentText() == win.explainers["gradcam"].title != "gradcam"
    names = [p.name for p in win.explainers["gradcam"].params]
    assert names and set(view.params.values()) == set(names)
    view.set_method("occlusion")
    assert set(view.params.values()) == {p.name for p in win.explainers["occlusion"].params}
    view.set_method("gradcam")


def test_a_row_opens_its_image_with_the_audited_model_method_and_layer(demo, qapp, qtbot):
    win, view, out, _, _ = demo
    view.table_audit.setCurrentText("demo-biased")
    assert view.audited_model == "demo-biased"
    audit = view.audits["demo-biased"][1]
    win.set_method("gradcampp")
    with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS,
                          check_params_cb=lambda method, _layer: method == "gradcam"):
        click_row(qtbot, view.table, 0)
    assert pump(qapp, lambda: win.model_spec == "demo-biased" and win.image is not None
                and win.image.path.parent.parent == out / "data")
    assert win.method == "gradcam" and win.layer == audit["layer"]


def test_demo_cancel_keeps_the_view_usable(qapp, tmp_path):
    from gui.audit_view import QtAuditView

    view = QtAuditView()
    view.out_edit.setText(str(tmp_path))
    view.start_demo(n=N)
    view.cancel()
    assert pump(qapp, lambda: not view.is_running())
    assert view.status.text().startswith("Cancelled") and view.demo_button.isEnabled()
    view.close()


def _brightest(pixels) -> int:
    """The largest grey level of an RGB block (text is the brightest thing on a dark plot)."""
    return int(pixels.max(axis=2).max())


def test_chart_labels_are_light_on_the_dark_theme(demo, qapp):
    _, view, _, _, _ = demo
    view.tabs.setCurrentIndex(1)
    chart = view.share_chart
    assert pump(qapp, lambda: chart.isVisible() and chart.height() >= MIN_HEIGHT), chart.size()
    with dark_theme(qapp) as palette:
        pixels = qimage_pixels(chart.grab().toImage())
    view.tabs.setCurrentIndex(0)
    # The chart is drawn on the theme's dark background.
    assert palette.color(palette.ColorRole.Window).lightness() < 60
    assert np.median(pixels) < 60
    h = pixels.shape[0]
    # Tick labels left of the plot and group labels under it: light on the dark background.
    assert _brightest(pixels[40:h - 40, :24]) > 180
    assert _brightest(pixels[h - 36:, :]) > 180


def test_an_empty_chart_says_why(qtbot):
    chart = QtBarChart()
    qtbot.addWidget(chart)
    chart.resize(400, 240)
    chart.set_entries("t", [])
    blank = qimage_pixels(chart.grab().toImage())
    chart.set_entries("t", [], empty="one group only (site=B): nothing to compare")
    said = qimage_pixels(chart.grab().toImage())
    middle = slice(60, 180)
    assert not np.array_equal(said[middle], blank[middle])
