"""Concept tests (TCAV): the scores equal Captum's, the marker drives the biased demo model, a
random concept comes out not significant, and the command writes tcav.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.audit.tcav import (
    cav_classifier,
    inputs_by_class,
    read_examples,
    run_tcav,
    significance,
    tcav_dataset,
)
from engine.cli import main as cli_main
from engine.demo.concepts import write_concepts
from engine.demo.files import write_demo_set
from engine.models.loaded import load_model

LAYER = "features.10"
#: Captum and Lucida take the same gradients and the same CAVs; a directional derivative within
#: float rounding of zero may still fall on either side, so scores may differ by one image.
ONE_IMAGE = 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Concept folders (marker, 11 random) of 20 phantoms and 32 held-out phantoms to score."""
    root = tmp_path_factory.mktemp("tcav")
    concepts = write_concepts(root / "concepts", n=20, n_random=11)
    manifest = write_demo_set(root / "data", 32, 7100, marker_given_nodule=0.5, fmt="png")
    model = load_model("demo-biased")
    x, labels = tcav_dataset(manifest, model)
    return {"root": root, "concepts": concepts, "manifest": manifest, "model": model,
            "inputs": inputs_by_class(model, x, labels),
            "randoms": [read_examples(concepts / f"random_{k:02d}", model)[0] for k in range(11)],
            "marker": read_examples(concepts / "marker", model)[0]}


@pytest.fixture(scope="module")
def marker_result(demo):
    return run_tcav(demo["model"], LAYER, demo["marker"], demo["randoms"][:10], demo["inputs"])


class SameClassifier:
    """Captum's classifier interface around Lucida's CAV classifier (same settings, same data)."""

    def __init__(self):
        self.clf = None

    def train_and_eval(self, dataloader, **kwargs):
        xs, ys = zip(*dataloader, strict=True)
        x, y = torch.cat(xs).double().numpy(), torch.cat(ys).numpy()
        self.clf = cav_classifier().fit(x, y)
        return {"accs": torch.tensor(self.clf.score(x, y))}

    def weights(self):
        w = torch.tensor(np.asarray(self.clf.coef_).reshape(1, -1)[0])
        return torch.stack([-w, w])  # rows in the order of classes(): towards each class

    def classes(self):
        return [int(c) for c in self.clf.classes_]


def test_scores_equal_captums_tcav(demo, marker_result, tmp_path):
    from captum.concept import TCAV, Concept
    from captum.concept._utils.classifier import Classifier

    class Wrapped(SameClassifier, Classifier):
        pass

    def concept(cid, name, x):
        return Concept(cid, name, torch.utils.data.DataLoader(x, batch_size=16))

    # The first K random folders: the marker against each, and each against the next.
    k = 4
    marker = concept(0, "marker", demo["marker"])
    randoms = [concept(j + 1, f"random_{j:02d}", r) for j, r in enumerate(demo["randoms"][:k + 1])]
    tcav = TCAV(demo["model"].module, [LAYER], classifier=Wrapped(), save_path=str(tmp_path))
    sets = [[marker, r] for r in randoms[:k]] + [[randoms[j], randoms[j + 1]] for j in range(k)]
    for c, x in demo["inputs"].items():
        got = marker_result["classes"][demo["model"].classes[c]]
        scores = tcav.interpret(x, sets, target=c)
        theirs = [float(scores[f"{a.id}-{b.id}"][LAYER]["sign_count"][0]) for a, b in sets]
        tolerance = ONE_IMAGE / len(x) + 1e-6
        np.testing.assert_allclose(got["scores"][:k], theirs[:k], atol=tolerance)
        np.testing.assert_allclose(got["random_scores"][:k], theirs[k:], atol=tolerance)


def test_the_marker_drives_the_biased_models_nodule_class(marker_result):
    nodule = marker_result["classes"]["nodule"]
    assert marker_result["random_concepts"] == 10 and marker_result["cav_accuracy"]["mean"] > 0.9
    assert nodule["significant"] and nodule["verdict"] == "significant"
    assert nodule["score"] > nodule["random_score"] + 0.2
    assert nodule["p_value"] < 0.05


def test_significance_is_scipys_two_sided_t_test():
    from scipy.stats import ttest_ind

    a, b = [0.9, 0.8, 0.85, 0.95], [0.5, 0.4, 0.6, 0.55]
    got = significance(a, b, 0.05)
    want = ttest_ind(a, b, alternative="two-sided")
    assert got["p_value"] == pytest.approx(want.pvalue)
    assert got["t"] == pytest.approx(want.statistic)
    assert significance(a, a, 0.05)["verdict"] == "not significant"


def test_a_random_concept_is_not_significant_from_the_command(demo, capsys):
    concepts: Path = demo["concepts"]
    out = demo["root"] / "out"
    randoms = [str(concepts / f"random_{k:02d}") for k in range(10)]
    code = cli_main(["tcav", str(demo["manifest"]), "--model", "demo-biased", "--layer", LAYER,
                     "--concept", str(concepts / "random_10"), "--random", *randoms,
                     "--out", str(out)])
    assert code == 0
    report = json.loads((out / "tcav.json").read_text())
    assert report["concept"]["name"] == "random_10" and report["random_concepts"] == 10
    printed = capsys.readouterr().out
    for name, entry in report["classes"].items():
        assert not entry["significant"], (name, entry["p_value"])
        assert f"{name}: TCAV" in printed and "not significant" in printed


def test_fewer_than_ten_random_concepts_is_a_usage_error(demo, capsys):
    concepts = demo["concepts"]
    code = cli_main(["tcav", str(demo["manifest"]), "--model", "demo-biased",
                     "--concept", str(concepts / "marker"),
                     "--random", str(concepts / "random_00"), str(concepts / "random_01")])
    assert code == 2
    err = capsys.readouterr().err
    assert "at least 10" in err and "Traceback" not in err
