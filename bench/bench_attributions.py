"""Attribution speed against Captum, measured in the same run, on ResNet-18 at 224 px.

(a) Integrated Gradients, 50 steps, against Captum's ``IntegratedGradients`` at its best
    ``internal_batch_size``, with the largest difference between the two maps.
(b) SmoothGrad over saliency, 25 samples, against Captum's ``NoiseTunnel(Saliency)`` at its best
    ``nt_samples_batch_size``.
(c) LIME and KernelSHAP, 1000 samples over the same SLIC superpixels and black baseline, against
    Captum's ``Lime`` and ``KernelShap`` at their best ``perturbations_per_eval`` (picked on a
    short run of each setting, then timed at full length), and against the floor: the same
    number of plain batched forward passes.

Lucida runs through ``Session.explain``, the product path (its capture pass included); the
ratios are Captum's time over Lucida's, so above 1 means Lucida is faster. Each is given for wall
time and for CPU time (the process's, all threads): on a shared machine the wall-time ratio
swings with other load, the CPU-time ratio much less; best settings are picked by CPU time.
The network is randomly initialised (fixed seed). ``--quick`` uses 250 samples for (c) and
fewer settings. Run: ``python bench/bench_attributions.py [--quick]`` (or ``make bench``).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import (  # noqa: E402
    IntegratedGradients,
    KernelShap,
    Lime,
    NoiseTunnel,
    Saliency,
)

from engine.explain.capture import run_capture  # noqa: E402
from engine.explain.session import ExplainRequest, Session  # noqa: E402
from engine.models.loaded import LoadedModel  # noqa: E402
from engine.models.preprocess import InputSpec  # noqa: E402
from plugins.superpixels import superpixels  # noqa: E402

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
SIZE = 224
QUICK = "--quick" in sys.argv[1:]
STEPS = 50
NOISY = 25
SAMPLES = 250 if QUICK else 1000
SWEEP_SAMPLES = 64 if QUICK else 128
IG_BATCHES = (25, 50) if QUICK else (10, 25, 50)
NT_BATCHES = (25,) if QUICK else (5, 25)
PER_EVAL = (32, 64) if QUICK else (16, 32, 64)


class _Image:
    """A raster image held in memory (what ``engine.studies.image.Image`` offers the session)."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.path = Path("bench_attributions.png")
        self.shape = pixels.shape[:2]

    def model_input(self, frame=0, window="default"):
        return self.pixels


def _image(seed: int = 0) -> _Image:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, 8, 8)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic")
    return _Image(smooth[0].clamp(0, 1).permute(1, 2, 0).numpy())


def _seconds(fn) -> tuple[tuple[float, float], object]:
    """Run ``fn``; return ((wall seconds, CPU seconds), its result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def _ratio(theirs: tuple[float, float], ours: tuple[float, float]) -> str:
    return f"{theirs[0] / ours[0]:.2f}x wall, {theirs[1] / ours[1]:.2f}x CPU"


def _ours(model, image, method, params) -> tuple[tuple[float, float], np.ndarray]:
    session = Session(device="cpu")  # a fresh cache: the capture pass is timed too
    took, result = _seconds(lambda: session.explain(
        ExplainRequest(image, model, [method], target=0, params={method: params})))
    return took, next(iter(result.maps.values())).raw


def _best(label: str, runs: dict) -> tuple[float, object]:
    best = min(runs, key=lambda k: runs[k][0][1])
    shown = ", ".join(f"{k}: {runs[k][0][1] / runs[best][0][1]:.2f}x" for k in runs)
    print(f"   Captum {label} (CPU time relative to the best): {shown}", flush=True)
    return best, runs[best]


def main() -> int:
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    spec = InputSpec(size=(SIZE, SIZE), channels=3, **IMAGENET)
    model = LoadedModel.from_module(net, classes=[str(i) for i in range(10)], input=spec,
                                    name="resnet18")
    image = _image()
    x = model.preprocess(image)
    capture = run_capture(model, x, 0, [], gradients=False)
    black = capture.from_pixels(0.0).expand_as(x).contiguous()
    mode = "quick" if QUICK else "full"
    print(f"ResNet-18 at {SIZE} px, random init, {torch.get_num_threads()} threads, {mode} run",
          flush=True)
    # Warm both libraries up (first-call allocations, Captum's lazy scikit-learn import).
    _ours(model, image, "saliency", {})
    Lime(net).attribute(x, target=0, n_samples=2, perturbations_per_eval=2,
                        feature_mask=torch.zeros(1, 1, SIZE, SIZE, dtype=torch.long))

    # (a) Integrated Gradients.
    ours_s, ours_map = _ours(model, image, "intgrad", {"steps": STEPS})
    runs = {b: _seconds(lambda b=b: IntegratedGradients(net).attribute(
        x, baselines=black, target=0, n_steps=STEPS, method="gausslegendre",
        internal_batch_size=b)) for b in IG_BATCHES}
    best, (theirs_s, theirs) = _best("IntegratedGradients internal_batch_size", runs)
    # Captum attributes in normalised space; IG is invariant to the card's affine map.
    theirs_map = theirs[0].sum(0).numpy()
    err = np.abs(ours_map - theirs_map).max() / np.abs(theirs_map).max()
    print(f"(a) intgrad {STEPS} steps: {_ratio(theirs_s, ours_s)} faster than Captum "
          f"(internal_batch_size={best}; goal >= 1.5x); largest map difference "
          f"{err:.1e} of the peak", flush=True)

    # (b) SmoothGrad.
    ours_s, _ = _ours(model, image, "smoothgrad", {"samples": NOISY})
    stdev = 0.15 * float(capture.to_pixels(x).max() - capture.to_pixels(x).min())
    runs = {b: _seconds(lambda b=b: NoiseTunnel(Saliency(net)).attribute(
        x, nt_type="smoothgrad", nt_samples=NOISY, nt_samples_batch_size=b, stdevs=stdev,
        target=0, abs=True)) for b in NT_BATCHES}
    best, (theirs_s, _) = _best("NoiseTunnel nt_samples_batch_size", runs)
    print(f"(b) smoothgrad {NOISY} samples: {_ratio(theirs_s, ours_s)} faster than Captum "
          f"(nt_samples_batch_size={best})", flush=True)

    # (c) LIME and KernelSHAP on the same superpixels.
    labels = torch.from_numpy(superpixels(capture, 50, 0.3))[None, None]

    def probabilities(batch):
        return torch.softmax(net(batch), dim=1)

    floor_s, _ = _seconds(lambda: capture.forward_scores(x.expand(SAMPLES, -1, -1, -1)))
    for name, peer in (("lime", Lime), ("kernelshap", KernelShap)):
        ours_s, _ = _ours(model, image, name, {"samples": SAMPLES})
        short = {p: _seconds(lambda p=p, peer=peer: peer(probabilities).attribute(
            x, baselines=black, target=0, feature_mask=labels, n_samples=SWEEP_SAMPLES,
            perturbations_per_eval=p)) for p in PER_EVAL}
        best, _ = _best(f"{peer.__name__} perturbations_per_eval ({SWEEP_SAMPLES} samples)",
                        short)
        theirs_s, _ = _seconds(lambda best=best, peer=peer: peer(probabilities).attribute(
            x, baselines=black, target=0, feature_mask=labels, n_samples=SAMPLES,
            perturbations_per_eval=best))
        print(f"(c) {name} {SAMPLES} samples: {_ratio(theirs_s, ours_s)} faster than Captum "
              f"(perturbations_per_eval={best}; goal >= 2x); {ours_s[1] / floor_s[1]:.2f}x the "
              f"CPU time of {SAMPLES} plain forward passes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
