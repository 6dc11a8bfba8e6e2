"""The demo vision transformers: shipped weights, held-out accuracy, determinism, pointing, audit.

Held-out phantoms come from seeds the training never drew (training and validation used 1000,
1001, 2000 and 2001), so the figures measure the shipped models, not their memory.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import tomllib
from pathlib import Path

import pytest
import torch
from models_fixtures import no_network  # noqa: F401

from engine.demo.files import stored_values, write_demo_set
from engine.demo.phantoms import phantom_set
from engine.models.loaded import DEMO_MODELS, load_model
from engine.models.preprocess import prepare_array

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("demo-vit", "demo-vit-biased")
#: Held-out seeds: accuracy sets (correlated, counterfactual), pointing set, audit set.
ACCURACY_SEEDS, POINTING_SEED, AUDIT_SEED = (301, 302), 7300, 7400
#: The attention methods, and the layer-based one on the card's default token layer.
ATTENTION_METHODS = ("rollout", "attnrelevance", "legrad")


@pytest.fixture(scope="module")
def script():
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module("tools.train_demo_vit")
    finally:
        sys.path.remove(str(ROOT))


def _accuracy(model, rate: float, seed: int, n: int = 160) -> float:
    phs = list(phantom_set(n, seed, marker_given_nodule=rate))
    x = torch.cat([prepare_array(stored_values(p.pixels) / 4095.0, model.input) for p in phs])
    with torch.inference_mode():
        pred = model.logits(x).argmax(1)
    truth = torch.tensor([model.classes.index(p.label) for p in phs])
    return float((pred == truth).float().mean())


def test_the_demo_vits_are_demo_models_in_small_timm_files(no_network):  # noqa: F811
    for name in NAMES:
        assert name in DEMO_MODELS
        folder = ROOT / "resources" / "models" / name
        card = tomllib.loads((folder / "card.toml").read_text(encoding="utf-8"))
        assert card["architecture"].startswith("timm:vit_")
        weights = folder / card["weights"]
        assert weights.suffix == ".safetensors" and weights.stat().st_size < 2_000_000
        model = load_model(name)  # offline: the network is blocked in this test
        assert model.classes == ["normal", "nodule"] and str(weights) in model.files
        assert model.default_layer == card["layers"]["default"]


def test_held_out_accuracy_and_the_shortcut(no_network):  # noqa: F811
    fair, biased = load_model("demo-vit"), load_model("demo-vit-biased")
    corr, cf = ACCURACY_SEEDS
    # The fair ViT reads the nodule whichever way the marker goes.
    assert _accuracy(fair, 0.95, corr) >= 0.9 and _accuracy(fair, 0.05, cf) >= 0.9
    # The biased twin is right where the marker agrees with the label and much worse where
    # it disagrees: it learned the marker.
    b_corr, b_cf = _accuracy(biased, 0.95, corr), _accuracy(biased, 0.05, cf)
    assert b_corr >= 0.9 and b_corr - b_cf >= 0.15


@pytest.mark.parametrize("name", NAMES)
def test_the_script_writes_the_shipped_card_byte_for_byte(name, script, tmp_path):
    shipped = ROOT / "resources" / "models" / name / "card.toml"
    data = tomllib.loads(shipped.read_text(encoding="utf-8"))
    training, stats = data["training"], data["intended_use"]["input_stats"]
    script.write_demo_card(tmp_path, name, {
        "input_stats": (stats["mean"], stats["std"]), "epoch": training["selected_epoch"],
        "epochs": training["epochs"], "val_accuracy": training["validation_accuracy"],
    }, argparse.Namespace(n_train=training["train_images"]))
    assert (tmp_path / "card.toml").read_bytes() == shipped.read_bytes()
    assert data["architecture_args"] == script.ARCHITECTURE_ARGS


def test_training_is_deterministic(script):
    from tools.demo_training import Recipe, train_classifier

    def run(seed: int) -> dict:
        recipe = Recipe(**{**script.MODELS["demo-vit"].__dict__, "seed": seed, "epochs": 1})
        return train_classifier("tiny", script.build_vit, recipe, n_train=32, n_val=8, batch=16)

    first, again, other = run(11), run(11), run(12)
    assert first["losses"] == again["losses"]
    assert all(torch.equal(first["state"][k], again["state"][k]) for k in first["state"])
    # Another seed draws other phantoms and other weights: the check can fail.
    assert first["losses"][0] != other["losses"][0]


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    """Pointing hits of each method on demo-vit over the held-out nodule phantoms."""
    from engine import api
    from engine.metrics.localisation import pointing_hit, roi_mask

    folder = tmp_path_factory.mktemp("vit_pointing")
    manifest = write_demo_set(folder, 48, POINTING_SEED, marker_given_nodule=0.5, fmt="png")
    with manifest.open(newline="") as fh:
        cases = [(folder / r["path"], tuple(int(v) for v in r["lesion_box"].split()))
                 for r in csv.DictReader(fh) if r["lesion_box"]]
    hits = {}
    model = load_model("demo-vit")
    for path, box in cases:
        result = api.explain(api.open_image(path), model, methods=["gradcam", *ATTENTION_METHODS],
                             target="nodule")
        for (method, _layer), heat in result.maps.items():
            hits.setdefault(method, []).append(pointing_hit(heat, roi_mask(heat.shape, box)))
    return hits


def test_the_methods_point_into_the_lesion_box(pointing):
    assert set(pointing) == {"gradcam", *ATTENTION_METHODS}
    n = len(pointing["gradcam"])
    assert n == 23  # the nodule phantoms among the 48 of the held-out seed
    # The share of held-out nodule phantoms whose map peaks inside the lesion box. Chance (the
    # box's share of the image) is about 2%. Measured on the shipped demo-vit: Grad-CAM on the
    # default layer 12 of 23, LeGrad 11, Chefer's relevance 4, rollout 1.
    shares = {method: sum(v) / n for method, v in pointing.items()}
    assert shares["gradcam"] >= 0.45, shares
    assert shares["legrad"] >= 0.4, shares
    assert shares["attnrelevance"] >= 0.15, shares
    # Rollout does not depend on the class: it shows where the class token reads from (the
    # same few tokens in every image), so it finds the nodule no better than chance and far
    # less often than the class-specific methods.
    assert shares["rollout"] <= 0.1 and shares["rollout"] < shares["gradcam"] / 4, shares


def test_the_audit_shows_the_marker_in_the_biased_twin_only(tmp_path):
    from engine import api
    from engine.audit.compare import compare
    from engine.demo.audit import build_demo_dataset

    manifest = build_demo_dataset(tmp_path / "data", 16, AUDIT_SEED)
    audits = {name: api.audit(manifest, load_model(name), out=tmp_path / name, pdf=False)
              for name in NAMES}
    comparison = compare(audits)
    fair = comparison["models"]["demo-vit"]
    biased = comparison["models"]["demo-vit-biased"]
    assert comparison["finding"].startswith("demo-vit-biased puts")
    assert biased["share"] > 3 * fair["share"] and not comparison["cis_overlap"]
    # Where the marker goes with normal, the shortcut costs the biased twin its accuracy.
    assert biased["accuracy_by_set"]["counterfactual"] + 0.15 <= \
        biased["accuracy_by_set"]["correlated"], comparison
    assert fair["accuracy_by_set"]["counterfactual"] >= \
        biased["accuracy_by_set"]["counterfactual"] + 0.3, comparison
