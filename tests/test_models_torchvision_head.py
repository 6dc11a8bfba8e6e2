"""A bare ``torchvision:NAME@weights.safetensors`` takes its class count from the classifier's
weight, found by building the network, not from the file's key order (safetensors sorts it)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from models_fixtures import no_network, save_state  # noqa: F401 - a fixture
from safetensors.torch import load_file

from engine.models.loaded import load_model
from engine.models.sources import torchvision_head

CLASSES = 5


@pytest.mark.parametrize(("name", "head"), [
    ("convnext_tiny", "classifier.2"), ("swin_t", "head"), ("resnet18", "fc"),
    ("squeezenet1_0", "classifier.1"), ("vit_b_16", "heads.head"),
])
def test_the_head_is_the_layer_that_counts_the_classes(name, head):
    # The layer torchvision's own documentation replaces to fine-tune each model.
    assert torchvision_head(name) == head


def test_a_sorted_safetensors_file_gives_the_classifiers_class_count(no_network, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    net = torchvision.models.convnext_tiny(num_classes=CLASSES).eval()
    weights = save_state(net, tmp_path / "convnext.safetensors")
    state = load_file(str(weights))
    assert list(state) == sorted(state)  # safetensors writes its keys sorted
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    assert matrices[-1].shape[0] != CLASSES  # the last matrix is a block's MLP, not the head
    model = load_model(f"torchvision:convnext_tiny@{weights}")
    assert model.classes == [f"class_{i}" for i in range(CLASSES)]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x), net(x))
