"""On the shipped demo models: Grad-CAM passes the randomisation check, an edge detector fails."""

from __future__ import annotations

import pytest
from metrics_fixtures import (  # noqa: F401
    ROOT,
    edge_registry,
    fake_result,
    nodule_phantom,
    write_png,
)

from engine.metrics import case_metrics
from engine.metrics.case import map_function
from engine.studies.image import open_image

MODELS = ("demo", "demo-biased")


def _card(name: str):
    return ROOT / "resources" / "models" / name / "card.toml"


@pytest.fixture(params=MODELS)
def demo_case(request, tmp_path, edge_registry):  # noqa: F811
    from engine.models.loaded import load_model

    assert _card(request.param).is_file(), "demo model missing: run make demo-models"
    model = load_model(request.param)
    phantom = nodule_phantom(size=128)
    image = open_image(write_png(phantom.pixels, tmp_path / "case.png"))
    x = model.preprocess(image)
    layer = model.default_layer
    maps = {
        ("gradcam", layer): map_function(model, "gradcam", layer, x)(model.module, 1),
        ("edgecontrol", "input"): map_function(model, "edgecontrol", "input", x)(model.module, 1),
    }
    return model, image, fake_result(model, image, maps, target=1), layer


def test_gradcam_passes_and_edge_control_fails_randomisation(demo_case):
    model, image, result, layer = demo_case
    grad = case_metrics(None, result, image, model, "gradcam", layer, steps=4, cascade_steps=3)
    edge = case_metrics(None, result, image, model, "edgecontrol", "input", steps=4,
                        cascade_steps=3)
    assert grad["sanity_passed"] is True
    assert abs(grad["sanity_spearman"]) < 0.5
    # Randomising the classifier alone already changes the Grad-CAM map.
    assert grad["sanity_cascade"][0]["spearman"] < 0.5
    assert grad["random_label_spearman"] < 0.5
    assert edge["sanity_passed"] is False
    assert min(s["spearman"] for s in edge["sanity_cascade"]) > 0.99
    assert "sanity check failed" in edge["summary"]


def test_metrics_of_a_session_result_with_an_roi(tmp_path, edge_registry):  # noqa: F811
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model

    model = load_model("demo")
    phantom = nodule_phantom(size=128)
    image = open_image(write_png(phantom.pixels, tmp_path / "case.png"))
    session = Session(device="cpu")
    result = session.explain(ExplainRequest(image=image, model=model,
                                            methods=["gradcam", "edgecontrol"], target="nodule"))
    layer = next(lay for m, lay in result.maps if m == "gradcam")
    m = case_metrics(session, result, image, model, "gradcam", layer, roi=phantom.lesion_box,
                     steps=4, cascade_steps=2)
    assert m["target_name"] == "nodule" and m["score"] == pytest.approx(result.scores[1], abs=1e-3)
    assert isinstance(m["pointing_hit"], bool) and 0.0 <= m["energy_in_roi"] <= 1.0
    # The ROI holds a small share of the image; a map that points at it holds a larger share.
    area = (phantom.lesion_box[2] - phantom.lesion_box[0]) * (
        phantom.lesion_box[3] - phantom.lesion_box[1]) / (128 * 128)
    assert m["energy_in_roi"] > area
    assert m["sanity_passed"] is True


def _demo_nodule_cases():
    import csv

    folder = ROOT / "resources" / "studies" / "demo"
    with open(folder / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "nodule"]
    def box(text):
        return tuple(int(v) for v in text.split()) if text else None

    return [(folder / r["path"], box(r["lesion_box"]), box(r["marker_box"])) for r in rows]


def _p_nodule_without_lesion(model, path, box, baseline="background"):
    """P(nodule) on the image, and after the lesion box's pixels are removed and filled."""
    import torch
    import torch.nn.functional as F

    from engine.core.case import Target
    from engine.metrics.case import case_scorer
    from engine.metrics.faithfulness import impute
    from engine.metrics.localisation import roi_mask

    image = open_image(path)
    x = model.preprocess(image)
    cap, forward = case_scorer(model, x, Target(1), tuple(image.shape))
    pixels = cap.to_pixels(x).cpu()
    box_mask = torch.from_numpy(roi_mask(image.shape, box).astype("float32"))[None, None]
    # Every model-input pixel the box touches is removed.
    removed = F.adaptive_max_pool2d(box_mask, tuple(pixels.shape[-2:])) > 0
    filled = impute(pixels, removed, baseline, generator=torch.Generator().manual_seed(0))
    return float(forward(pixels)[0, 1]), float(forward(filled)[0, 1])


def test_deleting_the_lesion_removes_the_nodule_for_the_unbiased_model():
    # The fill must erase the lesion without drawing a new one. A fill interpolated from the
    # rim of the hole brightens the dark lung field and reads as a nodule (P stayed near 1.00
    # on phantom_0001), which made every deletion curve flat on this model.
    from engine.models.loaded import load_model

    model = load_model("demo")
    drops = []
    for path, box, _marker in _demo_nodule_cases():
        before, after = _p_nodule_without_lesion(model, path, box)
        assert after < 0.5 * before, (path.name, before, after)
        drops.append(before - after)
    assert sum(drops) / len(drops) > 0.5


def test_only_the_biased_model_reads_the_marker():
    # The marker box of a marked case, removed with the same fill: the biased model loses
    # nodule probability, the unbiased one does not care. (Both also need the lesion: on the
    # marked nodule case removing the lesion drops the biased model's score too.)
    from engine.models.loaded import load_model

    path, _lesion, marker_box = next(c for c in _demo_nodule_cases() if c[2])
    before, after = _p_nodule_without_lesion(load_model("demo-biased"), path, marker_box)
    assert after < before - 0.15
    before, after = _p_nodule_without_lesion(load_model("demo"), path, marker_box)
    assert abs(after - before) < 0.05
