"""Small vision transformers for tests: a timm ViT saved with its card, and as a LoadedModel."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.models.loaded import LoadedModel, load_model

#: The ViT's card: grey 1-channel input of 32 x 32 pixels, 8-pixel patches, two blocks.
CARD = """name = "tiny-vit"
architecture = "timm:vit_tiny_patch16_224"
weights = "tiny_vit.safetensors"
classes = ["normal", "nodule"]
output = "softmax"

[architecture_args]
img_size = {size}
patch_size = 8
in_chans = 1
depth = 2
num_heads = 2
embed_dim = 16
mlp_ratio = 2
num_classes = 2

[input]
size = [{size}, {size}]
channels = 1
mean = [0.5]
std = [0.25]
window = "minmax"
resize = "resize"
"""


def tiny_vit_card(folder: Path, size: int = 32, seed: int = 0) -> Path:
    """Write a randomly initialised two-block timm ViT and its card into ``folder``.

    Returns
    -------
    Path
        The card, loadable with ``load_model`` and ``--model``.
    """
    import timm

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=size,
                            patch_size=8, in_chans=1, depth=2, num_heads=2, embed_dim=16,
                            mlp_ratio=2, num_classes=2)
    with torch.no_grad():  # a head large enough that the classes differ on random inputs
        net.head.weight.normal_(std=1.0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(folder / "tiny_vit.safetensors"))
    card = folder / "card.toml"
    card.write_text(CARD.format(size=size))
    return card


def tiny_vit(folder: Path, size: int = 32, seed: int = 0) -> LoadedModel:
    """The same ViT loaded through its card, as the app loads it."""
    return load_model(tiny_vit_card(folder, size, seed))
