"""Attention explanations on ViT-B/16 at 224 px, against one forward and backward pass, and LeGrad
against torch-cam's LeGrad, measured in the same run.

(a) Attention rollout, attention relevance (Chefer) and LeGrad, each through ``Session.explain``
    on a fresh cache (the product path: preprocessing, the capture pass with the model's own
    attention and its gradients, the map, finishing), as a multiple of one plain forward and
    backward pass of the same network on its fused attention path (goal: <= 1.5x). Switching to
    another attention method afterwards reuses the capture; that time is printed too.
(b) LeGrad against torch-cam 0.5's ``LeGrad`` over all 12 blocks, on the same network and input
    (goal: faster), with the largest difference between the two maps. Lucida runs it through the
    explain core as ``explain --method legrad`` does (its capture takes only what LeGrad reads:
    no backward pass of the target through the whole network); the window's capture, which also
    serves rollout and relevance, is (a)'s.

Times are the median of a few runs, in wall time and CPU time (the process's, all threads): on
a shared machine the wall-time ratio swings with other load, the CPU-time ratio much less. The
network is torchvision's ``vit_b_16``, randomly initialised (fixed seed; its zero-initialised
head is drawn at random so that gradients are not zero). ``LUCIDA_BENCH_SMOKE=1`` runs every
step on a two-block ViT at 32 px. Run: ``python bench/bench_transformers.py`` (or ``make
bench``).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from smoke import SMOKE, sized  # noqa: E402
from torchcam.methods import LeGrad as TorchCamLeGrad  # noqa: E402

from engine.explain.core import explain_one  # noqa: E402
from engine.explain.session import ExplainRequest, Session  # noqa: E402
from engine.models.loaded import LoadedModel  # noqa: E402
from engine.models.preprocess import InputSpec  # noqa: E402

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
SIZE = sized(224, 32)
REPEATS = sized(5, 2)
METHODS = ("rollout", "attnrelevance", "legrad")


class _Image:
    """A raster image held in memory (what ``engine.studies.image.Image`` offers the session)."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.path = Path("bench_transformers.png")
        self.shape = pixels.shape[:2]

    def model_input(self, frame=0, window="default"):
        return self.pixels


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    if SMOKE:
        net = torchvision.models.VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2,
                                                   num_heads=2, hidden_dim=16, mlp_dim=32,
                                                   num_classes=10)
    else:
        net = torchvision.models.vit_b_16(num_classes=1000)
    torch.nn.init.normal_(net.heads.head.weight, std=0.02)
    return net.eval()


def _median(fn) -> tuple[tuple[float, float], object]:
    """Run ``fn`` REPEATS times; return the median (wall, CPU) seconds and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (statistics.median(walls), statistics.median(cpus)), out


def _ratio(ours: tuple[float, float], base: tuple[float, float]) -> str:
    return f"{ours[0] / base[0]:.2f}x wall, {ours[1] / base[1]:.2f}x CPU"


def _forward_backward(net, x, target) -> torch.Tensor:
    """One plain pass: the logits on the fused path, and the target's gradient to the input."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x)[0, target], x)
    return grad


def _ours(model, image, method, target) -> np.ndarray:
    session = Session(device="cpu")  # a fresh cache: the capture pass is timed too
    result = session.explain(ExplainRequest(image, model, [method], target=target))
    return result.maps[(method, "input")].raw


def _switch(model, image, target) -> tuple[float, float]:
    """Seconds to show the other two methods once one has been shown (the capture reused)."""
    session = Session(device="cpu")
    session.explain(ExplainRequest(image, model, [METHODS[0]], target=target))
    wall, cpu = time.perf_counter(), time.process_time()
    for method in METHODS[1:]:
        session.explain(ExplainRequest(image, model, [method], target=target))
    assert session.forward_passes == 1
    return ((time.perf_counter() - wall) / 2, (time.process_time() - cpu) / 2)


def _theirs(net, x, target) -> np.ndarray:
    with TorchCamLeGrad(net, list(net.encoder.layers)) as extractor:
        scores = net(x)
        return extractor(target, scores, normalized=False)[0][0].numpy()


def main() -> int:
    warnings.filterwarnings("ignore")
    net = _network()
    spec = InputSpec(size=(SIZE, SIZE), channels=3, **IMAGENET)
    classes = [str(i) for i in range(net.heads.head.out_features)]
    model = LoadedModel.from_module(net, classes=classes, input=spec, name="vit_b_16")
    rng = np.random.default_rng(0)
    image = _Image(rng.random((SIZE, SIZE, 3)).astype(np.float32))
    x = model.preprocess(image)
    target = 3
    mode = "smoke" if SMOKE else "full"
    print(f"ViT-B/16 (torchvision) at {SIZE} px, random init, {torch.get_num_threads()} threads, "
          f"{mode} run, median of {REPEATS}", flush=True)
    # Warm up both paths (first-call allocations).
    _forward_backward(net, x, target)
    _ours(model, image, "legrad", target)

    base, _ = _median(lambda: _forward_backward(net, x, target))
    print(f"    one forward + backward pass (fused attention): {base[0] * 1000:.0f} ms wall, "
          f"{base[1] * 1000:.0f} ms CPU", flush=True)
    ours_maps = {}
    for method in METHODS:
        took, ours_maps[method] = _median(lambda m=method: _ours(model, image, m, target))
        print(f"(a) {method}: {_ratio(took, base)} one forward + backward pass (goal <= 1.5x)",
              flush=True)
    switch = _switch(model, image, target)
    print(f"    switching to another attention method: {switch[0] * 1000:.1f} ms wall, "
          f"{switch[1] * 1000:.1f} ms CPU ({switch[1] / base[1]:.3f}x the pass's CPU time)",
          flush=True)

    ours_s, ours = _median(lambda: explain_one(model, x, "legrad", "input", target))
    theirs_s, theirs = _median(lambda: _theirs(net, x, target))
    err = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))
    print(f"(b) legrad: {theirs_s[0] / ours_s[0]:.2f}x wall, {theirs_s[1] / ours_s[1]:.2f}x CPU "
          f"faster than torch-cam's LeGrad (goal > 1x); largest map difference {err:.1e} of "
          "the peak", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
