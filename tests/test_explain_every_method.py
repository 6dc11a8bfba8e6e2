"""Every registered explainer runs through every path: ``explain``, the audit and the metrics.

The registry is read at test time, so a method added later is covered without editing this file;
a plugin in the user folder and a really installed entry-point package are covered too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from audit_fixtures import small_model, write_phantom_dataset
from transformer_fixtures import tiny_vit, tiny_vit_card

from engine.audit.manifest import load_dataset
from engine.audit.runner import AuditSettings, run_audit
from engine.cli import main as cli_main
from engine.core.resources import DEMO_STUDY
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from engine.metrics.case import case_metrics
from engine.models.loaded import load_model
from engine.studies.image import open_image

#: Parameters that keep the perturbation methods quick on 64-pixel demo inputs; every other
#: method runs with its defaults.
QUICK = {
    "scorecam": {"mode": "fast", "k": 4},
    "occlusion": {"patch": 16, "stride": 16},
    "rise": {"n_masks": 64},
    "lime": {"samples": 64, "segments": 16},
    "kernelshap": {"samples": 64, "segments": 16},
}

PLUGIN = textwrap.dedent(
    '''
    from engine.explain.api import Explainer

    class {cls}(Explainer):
        name = "{name}"
        title = "{cls}"
        description = "Positive part of the channel-summed gradient times activation."
        citation = "-"
        needs = frozenset({{"activations", "gradients"}})

        def explain(self, capture, target, layers, params, progress, cancel):
            return {{l: (capture.activations[l] * capture.gradients[l]).sum(1).clamp(min=0)
                    for l in layers}}
    '''
)


def _names() -> list[str]:
    return registry().names()


def _quick(name: str) -> dict:
    return dict(QUICK.get(name, {}))


def _reads_the_demo(name: str) -> bool:
    """Whether a method runs on the demo CNN; attention methods run on a small ViT instead."""
    return registry().get(name).unavailable_reason(load_model("demo")) is None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("every")
    return load_dataset(write_phantom_dataset(folder / "data", 6, size=40))


@pytest.mark.parametrize("name", _names())
def test_method_runs_through_explain(name, tmp_path):
    image = DEMO_STUDY / "phantom_0001.dcm"
    params = [f"--param={k}={v}" for k, v in _quick(name).items()]
    model = "demo" if _reads_the_demo(name) else str(tiny_vit_card(tmp_path / "vit"))
    code = cli_main(["explain", str(image), "--model", model, "--method", name,
                     "--out", str(tmp_path), *params])
    assert code == 0
    result = json.loads((tmp_path / "case-001" / "result.json").read_text())
    assert result["method"] in (name, [name])
    maps = sorted((tmp_path / "case-001").glob(f"heatmap_{name}_*.npy"))
    assert maps, f"{name} wrote no heatmap"
    heat = np.load(maps[0])
    assert heat.shape == open_image(image).shape and np.isfinite(heat).all()


@pytest.mark.parametrize("name", _names())
def test_method_runs_through_the_audit(name, dataset, tmp_path):
    model = small_model(40) if _reads_the_demo(name) else tiny_vit(tmp_path / "vit", 40)
    store = run_audit(dataset, model, AuditSettings(method=name, params=_quick(name),
                                                              batch_size=4, heat_size=16),
                      tmp_path)
    records = list(store.records())
    assert len(records) == len(dataset.rows)
    failed = [r for r in records if "error" in r]
    assert not failed, failed[0]["error"]
    assert all(r["shares"]["border"] is None or 0.0 <= r["shares"]["border"] <= 1.0
               for r in records)


@pytest.mark.parametrize("name", _names())
def test_method_runs_through_the_trust_metrics(name, tmp_path):
    model = load_model("demo") if _reads_the_demo(name) else tiny_vit(tmp_path / "vit")
    image = open_image(DEMO_STUDY / "phantom_0001.dcm")
    session = Session(device="cpu")
    result = session.explain(ExplainRequest(image, model, [name], params={name: _quick(name)}))
    (method, layer), = result.maps
    metrics = case_metrics(session, result, image, model, method, layer, roi=(10, 10, 60, 60),
                           cascade_steps=1)
    for key in ("deletion_auc", "insertion_auc", "average_drop", "sanity_spearman",
                "energy_in_roi"):
        assert np.isfinite(metrics[key]), (name, key)
    assert 0.0 <= metrics["deletion_auc"] <= 1.0


def test_user_folder_plugin_runs_through_every_path(tmp_path, monkeypatch, dataset):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "folder_plugin.py").write_text(PLUGIN.format(cls="FolderGxA", name="foldergxa"))
    monkeypatch.setenv("LUCIDA_USER_PLUGINS", str(folder))
    try:
        assert "foldergxa" in registry(reload=True).names()
        test_method_runs_through_explain("foldergxa", tmp_path / "explain")
        test_method_runs_through_the_audit("foldergxa", dataset, tmp_path / "audit")
        test_method_runs_through_the_trust_metrics("foldergxa", tmp_path / "trust")
    finally:
        monkeypatch.setenv("LUCIDA_USER_PLUGINS", "")
        registry(reload=True)


def test_installed_entry_point_package_runs_end_to_end(tmp_path, monkeypatch):
    """A real package, installed by pip, registers through the ``lucida.explainers`` group."""
    src = tmp_path / "src"
    (src / "lucida_gxa").mkdir(parents=True)
    (src / "lucida_gxa" / "__init__.py").write_text(PLUGIN.format(cls="PackagedGxA",
                                                                  name="packagedgxa"))
    (src / "pyproject.toml").write_text(textwrap.dedent(
        """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "lucida-gxa"
        version = "1.0"

        [project.entry-points."lucida.explainers"]
        packagedgxa = "lucida_gxa:PackagedGxA"

        [tool.setuptools]
        packages = ["lucida_gxa"]
        """
    ))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        check=True, capture_output=True,
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        reg = registry(reload=True)
        assert "packagedgxa" in reg.names(), reg.errors
        assert "entry point packagedgxa" in reg.origin("packagedgxa")
        test_method_runs_through_explain("packagedgxa", tmp_path / "explain")
        test_method_runs_through_the_trust_metrics("packagedgxa", tmp_path / "trust")
    finally:
        monkeypatch.undo()
        registry(reload=True)
