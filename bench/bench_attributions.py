"""Attribution speed against Captum, measured in the same run, on ResNet-18 at 224 px.

(a) Integrated Gradients, 50 steps, against Captum's ``IntegratedGradients`` at its best
    ``internal_batch_size``, with the largest difference between the two maps.
(b) SmoothGrad over saliency, 25 samples, against Captum's ``NoiseTunnel(Saliency)`` at its best
    ``nt_samples_batch_size``.
(c) LIME and KernelSHAP, 1000 samples over the same SLIC superpixels and black baseline, against
    Captum's ``Lime`` and ``KernelShap`` at their best ``perturbations_per_eval`` (picked on a
    short run of each setting, then timed at full length), and against the floor: the same
    number of bare batched forward passes through Lucida's scorer.
(d) ``torch.compile`` of the scorer's folded network: speed per pass once compiled, against the
    time compiling takes.

Lines (a) and (c) also print a **ceiling**: Captum's time over the floor (the bare passes of
the same number of inputs through Lucida's scorer, nothing else). No method that evaluates the
same inputs in the same precision can be faster than its floor, so when the ceiling is below a
goal, the goal cannot be reached by work around the passes.

Lucida runs through ``Session.explain``, the product path (its capture pass included); the
ratios are Captum's time over Lucida's, so above 1 means Lucida is faster. Each is given for wall
time and for CPU time (the process's, all threads): on a shared machine the wall-time ratio
swings with other load, the CPU-time ratio much less; best settings are picked by CPU time.
The network is randomly initialised (fixed seed). ``--quick`` uses 250 samples for (c) and
fewer settings; ``LUCIDA_BENCH_SMOKE=1`` runs every step at tiny sizes, (d) left out. Run:
``python bench/bench_attributions.py [--quick]`` (or ``make bench``).
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
from smoke import SMOKE, sized  # noqa: E402

from engine.explain.capture import run_capture  # noqa: E402
from engine.explain.scorer import fast_module  # noqa: E402
from engine.explain.session import ExplainRequest, Session  # noqa: E402
from engine.models.loaded import LoadedModel  # noqa: E402
from engine.models.preprocess import InputSpec  # noqa: E402
from plugins.superpixels import superpixels  # noqa: E402

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
SIZE = sized(224, 32)
QUICK = "--quick" in sys.argv[1:]
STEPS = sized(50, 4)
NOISY = sized(25, 2)
SAMPLES = sized(250 if QUICK else 1000, 16)
SWEEP_SAMPLES = sized(64 if QUICK else 128, 8)
IG_BATCHES = sized((25, 50) if QUICK else (10, 25, 50), (2, 4))
NT_BATCHES = sized((25,) if QUICK else (5, 25), (2,))
PER_EVAL = sized((32, 64) if QUICK else (16, 32, 64), (8, 16))


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
    mode = "smoke" if SMOKE else "quick" if QUICK else "full"
    print(f"ResNet-18 at {SIZE} px, random init, {torch.get_num_threads()} threads, {mode} run",
          flush=True)
    # Warm both libraries up (first-call allocations, Captum's lazy scikit-learn import).
    _ours(model, image, "saliency", {})
    Lime(net).attribute(x, target=0, n_samples=2, perturbations_per_eval=2,
                        feature_mask=torch.zeros(1, 1, SIZE, SIZE, dtype=torch.long))

    # (a) Integrated Gradients.
    ours_s, ours_map = _ours(model, image, "intgrad",
                             {"steps": STEPS, "method": "gausslegendre"})
    runs = {b: _seconds(lambda b=b: IntegratedGradients(net).attribute(
        x, baselines=black, target=0, n_steps=STEPS, method="gausslegendre",
        internal_batch_size=b)) for b in IG_BATCHES}
    best, (theirs_s, theirs) = _best("IntegratedGradients internal_batch_size", runs)
    # Captum attributes in normalised space; IG is invariant to the card's affine map.
    theirs_map = theirs[0].sum(0).numpy()
    err = np.abs(ours_map - theirs_map).max() / np.abs(theirs_map).max()
    path = x.expand(STEPS, -1, -1, -1).contiguous(memory_format=torch.channels_last)
    floor_s, _ = _seconds(lambda: capture.input_gradients(path, 0, batch_size=STEPS))
    print(f"(a) intgrad {STEPS} steps: {_ratio(theirs_s, ours_s)} faster than Captum "
          f"(internal_batch_size={best}; goal >= 1.5x); largest map difference "
          f"{err:.1e} of the peak; ceiling: Captum's CPU time is {theirs_s[1] / floor_s[1]:.2f}x "
          f"that of Lucida's {STEPS} bare gradient passes", flush=True)

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
              f"CPU time of {SAMPLES} bare forward passes of Lucida's scorer; ceiling: Captum's "
              f"is {theirs_s[1] / floor_s[1]:.2f}x it", flush=True)
    _compiled(model, x)
    return 0


def _compiled(model, x) -> None:
    """(d) ``torch.compile`` of the scorer's folded copy: what it saves per pass and costs once."""
    if SMOKE:  # compiling takes tens of seconds whatever the size
        print("(d) torch.compile: not timed in smoke mode", flush=True)
        return
    batch = x.expand(16, -1, -1, -1).contiguous(memory_format=torch.channels_last)
    folded = fast_module(model.module, x)
    try:
        with torch.inference_mode():
            compile_s, _ = _seconds(lambda: torch.compile(folded)(batch))
            compiled = torch.compile(folded)
            compiled(batch)
            eager_s, _ = _seconds(lambda: [folded(batch) for _ in range(4)])
            fast_s, _ = _seconds(lambda: [compiled(batch) for _ in range(4)])
            equal = torch.allclose(compiled(batch), folded(batch), rtol=1e-5, atol=1e-6)
    except Exception as exc:  # noqa: BLE001 - no compiler on this machine is a result too
        print(f"(d) torch.compile: not available here ({type(exc).__name__})", flush=True)
        return
    # Compiling runs in worker processes too, so the break-even is reckoned in wall time.
    saved = (eager_s[0] - fast_s[0]) / (4 * len(batch))
    even = f"{compile_s[0] / saved:.0f} images" if saved > 0 else "never"
    print(f"(d) torch.compile of the folded scorer: {eager_s[1] / fast_s[1]:.2f}x faster per "
          f"pass (CPU time) once compiled, scores equal: {equal}; compiling took "
          f"{compile_s[0]:.0f} s wall, so it pays for itself after {even} (not used)",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
