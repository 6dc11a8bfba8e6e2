"""A multi-label demo model: the demo network with 14 sigmoid outputs named as ChestX-ray14's.

It shows how Lucida reads a chest model that gives every pathology its own probability, offline
and in a second. The trained demo network's features are kept; its head has 14 rows. The
``Nodule`` row is the demo's nodule-versus-normal direction, so its probability is the demo
model's nodule probability and its maps point where the demo's do. The other 13 rows are fixed
random mixtures of the features with spread biases, so the 14 probabilities differ. Only
``Nodule`` means anything: it is a demonstration of the window, not a chest model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.core.resources import MODELS

#: The 14 findings of the NIH ChestX-ray14 data set, in its usual order.
CHEST14 = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
           "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
           "Pleural_Thickening", "Hernia")
#: The seed of the 13 random rows.
SEED = 14

_CARD = """# A multi-label demonstration model: the demo network with 14 sigmoid outputs.
name = "{name}"
description = "Demo only: Nodule is the demo model's nodule probability; the rest are random."
architecture = "lucida:demo_cnn"
weights = "{weights}"
classes = [{classes}]
output = "sigmoid"
threshold = {threshold}

[architecture_args]
in_channels = 1
num_classes = {n}

[input]
size = [64, 64]
channels = 1
mean = [0.3]
std = [0.2]
window = "default"

[layers]
default = "features"
"""


def write_multilabel_demo(folder: str | Path, threshold: float = 0.5,
                          name: str = "demo-multilabel") -> Path:
    """Write the multi-label demo model (card and safetensors weights) into ``folder``.

    Parameters
    ----------
    folder : str or Path
        Created if missing; the card is ``card.toml`` (so the folder opens as a model).
    threshold : float
        The card's ``threshold``.
    name : str
        The card's ``name``.

    Returns
    -------
    Path
        The card.
    """
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = load_file(str(MODELS / "demo" / "demo.safetensors"))
    weight, bias = state["classifier.weight"], state["classifier.bias"]
    rng = np.random.default_rng(SEED)
    n, width = len(CHEST14), weight.shape[1]
    scale = float(weight.abs().mean())
    rows = torch.from_numpy(rng.normal(0.0, 0.6 * scale, (n, width))).float()
    biases = torch.from_numpy(rng.permutation(np.linspace(-3.5, 0.5, n))).float()
    nodule = CHEST14.index("Nodule")
    rows[nodule] = weight[1] - weight[0]
    biases[nodule] = bias[1] - bias[0]
    state["classifier.weight"], state["classifier.bias"] = rows.contiguous(), biases
    weights = folder / f"{name}.safetensors"
    save_file(state, str(weights))
    card = folder / "card.toml"
    card.write_text(_CARD.format(name=name, weights=weights.name, n=n, threshold=threshold,
                                 classes=", ".join(f'"{c}"' for c in CHEST14)),
                    encoding="utf-8")
    return card
