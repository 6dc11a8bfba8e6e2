"""From a timm model on disk to its first Grad-CAM map: Lucida against the same work by hand.

For timm ``convnext_tiny`` and a ViT-B/16 (random weights saved to safetensors in a temporary
folder; nothing is downloaded), two routes run in the same process, after every import:
- Lucida: ``load_model("timm:NAME@weights.safetensors")``, open the image file, one Grad-CAM on
  the model's default layer through the explain session (layer discovery included);
- by hand (peer): ``timm.create_model``, the safetensors state dict, timm's eval transform and
  pytorch-grad-cam's ``GradCAM`` on the layer the timm documentation and pytorch-grad-cam's
  examples use (the last stage; the last block's first norm with a token reshape for a ViT).
The ratio is Lucida / by hand (below 1: Lucida is faster).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke import sized  # noqa: E402

#: (name, the layer pytorch-grad-cam's users hook, token grid side or None, smoke stand-in).
MODELS = sized(
    [("convnext_tiny", "stages.3", None), ("vit_base_patch16_224", "blocks.11.norm1", 14)],
    [("test_convnext", "stages.3", None), ("test_vit", "blocks.0.norm1", 8)],
)
ROUNDS = sized(3, 1)
CLASSES = 14


def _save_model(name: str, folder: Path) -> Path:
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=CLASSES)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _lucida(name: str, weights: Path, image_path: Path) -> float:
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model
    from engine.studies.image import open_image

    start = time.perf_counter()
    model = load_model(f"timm:{name}@{weights}")
    image = open_image(image_path)
    result = Session().explain(ExplainRequest(image=image, model=model, methods=("gradcam",)))
    elapsed = time.perf_counter() - start
    assert result is not None
    return elapsed


def _by_hand(name: str, weights: Path, image_path: Path, layer: str, grid: int | None) -> float:
    import timm
    from PIL import Image as PILImage
    from pytorch_grad_cam import GradCAM
    from safetensors.torch import load_file

    def reshape(t):
        return t[:, -grid * grid:].reshape(t.shape[0], grid, grid, t.shape[2]).permute(0, 3, 1, 2)

    start = time.perf_counter()
    net = timm.create_model(name, pretrained=False, num_classes=CLASSES)
    net.load_state_dict(load_file(str(weights)))
    net.eval()
    config = timm.data.resolve_model_data_config(net)
    x = timm.data.create_transform(**config)(PILImage.open(image_path).convert("RGB"))[None]
    with GradCAM(net, [net.get_submodule(layer)],
                 reshape_transform=reshape if grid else None) as cam:
        heat = cam(x, None)[0]
    elapsed = time.perf_counter() - start
    assert heat.std() >= 0
    return elapsed


def main() -> None:
    """Print, per model, both routes' median time to the first map and their ratio."""
    import pytorch_grad_cam  # noqa: F401 - imports are not what is timed
    import timm  # noqa: F401
    from PIL import Image as PILImage

    import engine.explain.session  # noqa: F401
    import engine.models.loaded  # noqa: F401

    folder = Path(tempfile.mkdtemp())
    image_path = folder / "chest.png"
    rng = np.random.default_rng(0)
    PILImage.fromarray(rng.integers(0, 255, (300, 260), dtype=np.uint8)).save(image_path)
    for name, layer, grid in MODELS:
        weights = _save_model(name, folder)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            theirs.append(_by_hand(name, weights, image_path, layer, grid))
            ours.append(_lucida(name, weights, image_path))
        lucida, peer = statistics.median(ours), statistics.median(theirs)
        print(f"{name}: model on disk to first Grad-CAM map: Lucida {lucida * 1000:7.0f} ms, "
              f"timm + pytorch-grad-cam by hand (peer) {peer * 1000:7.0f} ms; "
              f"ratio {lucida / max(peer, 1e-9):.2f}", flush=True)


if __name__ == "__main__":
    main()
