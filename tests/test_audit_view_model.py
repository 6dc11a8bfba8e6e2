"""What the Audit view shows, decided without a window: charts, reasons, table, row files."""

from __future__ import annotations

import subprocess
import sys

from engine.audit import view_model as vm


def _audit(groups: dict[str, dict], n_rest: int = 0) -> dict:
    """A small audit.json content: the marker role with ``groups`` and their contrasts."""
    by_group = {g: {"mean": s["mean"], "ci95": [s["mean"] - 0.01, s["mean"] + 0.01], "n": 3}
                for g, s in groups.items()}
    versus = {g: {"share": s["mean"], "enrichment": 2.0,
                  "vs_rest": {"diff": s.get("diff"), "ci95": [None, None], "n": 3,
                              "n_rest": n_rest}} for g, s in groups.items()}
    return {"n": 6, "method": "gradcam", "layer": "features.7", "verdicts": [],
            "flagged": [], "errors": [],
            "accuracy": {"overall": 0.5, "by_group": {g: 0.5 for g in groups}},
            "roi_share": {"marker": {"mean": 0.02, "ci95": [0.01, 0.03], "n": 3,
                                     "by_group": by_group},
                          "border": {"mean": 0.1, "ci95": [0.05, 0.15], "n": 6,
                                     "by_group": {}}},
            "roi_contrast": {"marker": {"enrichment": 3.0, "by_group": versus}}}


def test_a_lone_group_has_no_contrast_and_the_chart_says_why():
    audits = {"demo": _audit({"site=B": {"mean": 0.02}})}
    charts = vm.charts(audits, "marker", str.upper)
    assert charts["contrast"].entries == []
    assert charts["contrast"].empty == "one group only (site=B): nothing to compare"
    assert charts["share"].title == "Share of GRADCAM saliency on `marker` (95% CI)"
    assert [label for label, _ in charts["share"].entries] == ["all", "site=B"]


def test_groups_with_a_rest_are_contrasted_and_say_nothing():
    audits = {"a": _audit({"set=x": {"mean": 0.03, "diff": 0.01},
                           "set=y": {"mean": 0.02, "diff": -0.01}}, n_rest=3)}
    contrast = vm.charts(audits, "marker", str)["contrast"]
    assert [label for label, _ in contrast.entries] == ["set=x", "set=y"]
    assert contrast.entries[0][1] == [(0.01, None, None)] and contrast.empty == ""


def test_the_reasons_name_what_is_missing():
    assert "no groups" in vm.nothing_to_contrast("marker", [])
    many = vm.nothing_to_contrast("marker", ["label=nodule", "site=B"])
    assert "label=nodule, site=B" in many and "`marker`" in many


def test_two_audits_are_two_series_and_named_in_the_lines():
    audits = {"demo": _audit({"site=B": {"mean": 0.02}}),
              "demo-biased": _audit({"site=B": {"mean": 0.2}})}
    share = vm.charts(audits, "marker", str)["share"]
    assert share.series == ["demo", "demo-biased"] and len(share.entries[0][1]) == 2
    assert vm.status_line(audits).startswith("demo: 6 images, accuracy 50.0%")
    assert vm.finding(audits, "marker").startswith("demo-biased puts")
    cols, rows = vm.models_table(audits, "marker", str.upper)
    assert cols[2] == "share on marker (95% CI)"
    assert rows[0][1:] == ["GRADCAM · features.7", "2.0% (1.0%–3.0%)", "3.0×", "50.0%"]


def test_the_table_leads_with_the_case_and_sorts_numbers_as_numbers(tmp_path):
    csv_path = tmp_path / "audit.csv"
    csv_path.write_text("row,share_marker,case,digest,label\n0,0.25,case-001,ab,nodule\n")
    cols, rows = vm.read_table(csv_path)
    assert cols == ["case", "label", "share_marker"]
    assert rows == [["case-001", "nodule", 0.25]]


def test_a_row_opens_its_file_or_says_why_not(tmp_path):
    assert vm.row_image({"path": "/data/a.dcm", "case": ""}, {}) == ("/data/a.dcm", "")
    known = {"case-001": tmp_path / "a.png"}
    assert vm.row_image({"case": "case-001"}, known) == (str(tmp_path / "a.png"), "")
    path, why = vm.row_image({"case": "case-002"}, known)
    assert path == "" and why.startswith("case-002: this de-identified audit was not run here")


def test_the_mean_map_grid_puts_all_first_and_names_two_audits(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for g in ("site=B", "all"):
            (tmp_path / name / f"nodule__{g}.png").write_bytes(b"")
    (tmp_path / "a" / "normal__all.png").write_bytes(b"")
    groups, rows = vm.mean_map_grid([("a", tmp_path / "a"), ("b", tmp_path / "b")])
    assert groups == ["all", "site=B"]
    assert [label for label, _ in rows] == ["a\nnodule", "a\nnormal", "b\nnodule"]
    assert rows[1][1][1] is None and rows[0][1][0].tooltip == "a: mean map of nodule, all"


def test_the_view_model_needs_neither_qt_nor_torch():
    code = ("import sys, engine.audit.view_model; "
            "print(any(m.split('.')[0] in ('torch', 'PySide6') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
