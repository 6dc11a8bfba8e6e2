"""The demo makes the point: on phantoms it never saw, the biased model loses sensitivity where
the marker is absent, with intervals that do not overlap; the unbiased model does not."""

from __future__ import annotations

import tomllib

import pytest
import torch

from engine.audit.manifest import read_manifest
from engine.audit.performance import operating_point, performance, row_patients
from engine.demo.audit import build_demo_dataset
from engine.explain import core
from engine.models.loaded import load_model, model_dir
from engine.studies.image import open_image

#: Seed of the correlated set (the counterfactual one takes the next): the demo models trained
#: on seed 1000 or 2000 and were validated on the next one.
HELD_OUT = 7000


@pytest.fixture(scope="module")
def demo_tables(tmp_path_factory):
    """The performance table of each demo model on the demo's two sets, 150 phantoms each.

    Each image goes through the model's preprocessing and the explain core's forward pass, as
    in the audit; the table is the audit's function of those records.
    """
    manifest = build_demo_dataset(tmp_path_factory.mktemp("demo"), 150, HELD_OUT)
    dataset = read_manifest(manifest, labelled=True)
    patients = row_patients(dataset)
    tables = {}
    for name in ("demo", "demo-biased"):
        card = tomllib.loads((model_dir(name) / "card.toml").read_text())
        assert HELD_OUT not in (card["training"]["data_seed"], card["training"]["data_seed"] + 1)
        model = load_model(name)
        x = torch.cat([model.preprocess(open_image(row.path)) for row in dataset.rows])
        scores = core.predict(model, x).tolist()
        records = [{"key": str(row.index), "row": row.index, "label": row.label,
                    "label_index": model.classes.index(row.label), "scores": s,
                    "groups": row.groups} for row, s in zip(dataset.rows, scores, strict=True)]
        tables[name] = performance(records, model.classes, operating_point(model), patients)
    return tables


def _nodule_sensitivity(table: dict, subset: str) -> dict:
    entry = table["by_group"]["site=A"]
    return (entry if subset == "group" else entry["complement"])["by_class"]["nodule"][
        "sensitivity"]


def test_demo_biased_loses_sensitivity_where_the_marker_is_absent(demo_tables):
    # Site A carries no marker; its complement is site B, where every image has it.
    table = demo_tables["demo-biased"]
    assert table["bootstrap"]["unit"] == "patient"
    plain, marked = _nodule_sensitivity(table, "group"), _nodule_sensitivity(table, "complement")
    assert plain["value"] < marked["value"] - 0.2
    assert plain["ci95"][1] < marked["ci95"][0]  # the intervals do not overlap


def test_demo_keeps_its_sensitivity_with_or_without_the_marker(demo_tables):
    table = demo_tables["demo"]
    plain, marked = _nodule_sensitivity(table, "group"), _nodule_sensitivity(table, "complement")
    assert plain["ci95"][1] >= marked["ci95"][0] and marked["ci95"][1] >= plain["ci95"][0]
    assert min(plain["value"], marked["value"]) > 0.85
