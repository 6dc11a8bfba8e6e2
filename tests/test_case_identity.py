"""One case identity: caches key on content, model hash and target, never on a path or id()."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import api
from engine.core.case import Target, content_of
from engine.explain.identity import model_hash
from engine.explain.session import ExplainRequest, Session
from engine.models.loaded import load_model
from engine.studies.image import open_image
from engine.studies.tree import open_paths
from engine.studies.volume import volume_from_images
from tests.explain_fixtures import gapnet_model, random_image
from tests.volume_fixtures import axial_positions, write_series


def _two_series_in_one_folder(folder):
    """Two same-shape CT series (two reconstructions of one scan) written into one folder."""
    rng = np.random.default_rng(7)
    grid = np.mgrid[0:12, 0:32, 0:32].astype(np.float32)
    first = -800 + 1400 * np.exp(-((grid[0] - 4) ** 2 + (grid[1] - 10) ** 2
                                   + (grid[2] - 10) ** 2) / 20)
    second = -800 + 1400 * np.exp(-((grid[0] - 8) ** 2 + (grid[1] - 24) ** 2
                                    + (grid[2] - 22) ** 2) / 20)
    second += rng.normal(0, 5, second.shape)
    write_series(folder, first, axial_positions(12), names=[f"a{k:02d}.dcm" for k in range(12)])
    write_series(folder, second, axial_positions(12), names=[f"b{k:02d}.dcm" for k in range(12)])
    tree = open_paths([folder])
    series = [s for p in tree.patients for st in p.studies for s in st.series]
    assert len(series) == 2
    # As the window does: each series becomes a volume named by the folder it came from.
    return [volume_from_images(s.images, path=folder) for s in series]


def test_two_series_in_one_folder_never_share_a_map(tmp_path):
    first, second = _two_series_in_one_folder(tmp_path / "study")
    assert first.path == second.path
    assert first.content_id() != second.content_id()
    model = load_model("demo-3d")
    session = Session(device="cpu")
    a = session.explain(ExplainRequest(image=first, model=model, methods=["gradcam"]))
    b = session.explain(ExplainRequest(image=second, model=model, methods=["gradcam"]))
    assert session.forward_passes == 2
    heat_a = a.maps["gradcam", model.default_layer].heatmap
    heat_b = b.maps["gradcam", model.default_layer].heatmap
    assert not np.array_equal(heat_a, heat_b)
    assert a.case.content == first.content_id() and b.case.content == second.content_id()


def test_two_series_through_the_api_are_two_cases(tmp_path):
    first, second = _two_series_in_one_folder(tmp_path / "study")
    model = api.load_model("demo-3d", device="cpu")
    a = api.explain(first, model, methods="gradcam")
    b = api.explain(second, model, methods="gradcam")
    key = next(iter(a.maps))
    assert not np.array_equal(a.maps[key], b.maps[key])
    assert a.provenance["case"]["content"]["uid"] == first.series_uid
    assert b.provenance["case"]["content"]["uid"] == second.series_uid


def test_in_memory_images_with_one_name_are_two_cases():
    model = gapnet_model()
    session = Session(device="cpu")
    one = random_image(48, seed=1, path="scan.png")
    two = random_image(48, seed=2, path="scan.png")
    a = session.explain(ExplainRequest(image=one, model=model, methods=["gradcam"],
                                       layers="all"))
    b = session.explain(ExplainRequest(image=two, model=model, methods=["gradcam"],
                                       layers="all"))
    assert session.forward_passes == 2
    key = next(iter(a.maps))
    assert not np.array_equal(a.maps[key].heatmap, b.maps[key].heatmap)


def test_a_file_changed_on_disk_since_it_was_opened_is_another_case(tmp_path):
    src = sorted(Path("resources/studies/demo").rglob("*.png"))[0]
    path = tmp_path / "case.png"
    shutil.copy(src, path)
    before = open_image(path)
    before_id = before.content_id()
    # Another image saved over the same name.
    other = next(p for p in sorted(src.parent.rglob("*.png")) if p.read_bytes() != src.read_bytes())
    shutil.copy(other, path)
    after = open_image(path)
    assert after.content_id() != before_id
    assert before.content_id() == before_id  # the opened image keeps what it was


def test_two_model_objects_are_named_by_their_weights_not_their_id():
    one, same = gapnet_model(), gapnet_model()
    one.sha256 = same.sha256 = ""
    same.module.load_state_dict(one.module.state_dict())
    assert model_hash(one) == model_hash(same)
    other = gapnet_model()
    other.sha256 = ""
    with_noise = {k: v + 0.01 for k, v in one.module.state_dict().items()}
    other.module.load_state_dict(with_noise)
    assert model_hash(other) != model_hash(one)
    # Weights changed in place: the name follows them.
    before = model_hash(one)
    with torch.no_grad():
        for p in one.module.parameters():
            p.add_(1.0)
    assert model_hash(one) != before


def test_the_request_is_one_frozen_value_with_one_target():
    image, model = random_image(32), gapnet_model()
    request = ExplainRequest(image=image, model=model, methods=["gradcam"], target=1, versus=2,
                             params={"gradcam": {}})
    assert request.target == Target(1, 2, None)
    with pytest.raises(AttributeError):
        request.target = Target(0)
    with pytest.raises(TypeError):
        request.params["gradcam"]["x"] = 1
    assert request.case.content == content_of(image)
    assert request.case.model == model_hash(model)
    # A classifier's drawn region does not change its maps, so it is not part of the key.
    boxed = ExplainRequest(image=image, model=model, methods=["gradcam"],
                           target=Target(1, 2, (0, 0, 8, 8)))
    assert boxed.case == request.case


def test_a_frame_the_image_does_not_have_owns_no_map():
    from gui.overlay_layer import owner_key

    image = open_image(sorted(Path("resources/studies/demo").rglob("*.png"))[0])
    assert owner_key(image, 0) == image.content_id(0)
    # The viewer still on frame 5 of the multi-frame image it showed before.
    assert owner_key(image, 5) is None
    assert owner_key(None, 0) is None
