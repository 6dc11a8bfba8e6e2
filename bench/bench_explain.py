"""Explanation speed and memory against pytorch-grad-cam, measured in the same run.

(a) Grad-CAM for all 16 bottleneck blocks of ResNet-50 in one request, against pytorch-grad-cam
    looping over the blocks, against torch-cam given all 16 layers at once, and against one plain
    forward pass (the floor).
(b) Switching to another layer or gradient method from the cache, for a 512x512 image.
(c) Exact Score-CAM on ResNet-18 ``layer4`` against pytorch-grad-cam's ScoreCAM.
(d) Score-CAM ``fast`` against pytorch-grad-cam's ScoreCAM, with its Pearson correlation to
    exact mode on ResNet-18 and on the demo models.
(e) Resident memory growth across 200 consecutive explanations.

Networks are randomly initialised (fixed seed); the demo models use their shipped weights.
Run: ``python bench/bench_explain.py`` (or ``make bench``). Sizes are moderate so the whole
benchmark takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import gc
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from pytorch_grad_cam import GradCAM, ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from smoke import sized  # noqa: E402
from torchcam.methods import GradCAM as TorchCamGradCAM  # noqa: E402

from engine.explain.capture import run_capture  # noqa: E402
from engine.explain.session import ExplainRequest, Session  # noqa: E402
from engine.models.loaded import LoadedModel, load_model  # noqa: E402
from engine.models.preprocess import InputSpec  # noqa: E402
from plugins.scorecam import _minmax  # noqa: E402

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
#: The image of (a) and (b), the demo images of (d), the explanations of (e).
IMAGE = sized(512, 64)
DEMO_IMAGES = sized(5, 1)
EXPLANATIONS = sized(200, 4)


class _Image:
    """A raster image held in memory (what ``engine.studies.image.Image`` offers the session)."""

    def __init__(self, pixels: np.ndarray, path: str) -> None:
        self.pixels = pixels
        self.path = Path(path)
        self.shape = pixels.shape[:2]

    def model_input(self, frame=0, window="default"):
        return self.pixels


def _image(size: int, seed: int = 0, channels: int = 3, path: str | None = None) -> _Image:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, channels, 8, 8)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    pixels = smooth[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return _Image(pixels if channels == 3 else pixels[..., 0], path or f"bench{seed}.png")


def _torchvision(name: str, size: int) -> LoadedModel:
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=10)
    spec = InputSpec(size=(size, size), channels=3, **IMAGENET)
    return LoadedModel.from_module(net, classes=[str(i) for i in range(10)], input=spec,
                                   name=name)


def _ms(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _quiet():
    return contextlib.redirect_stderr(io.StringIO())  # pytorch-grad-cam's tqdm bars


def bench_blocks(size: int = sized(160, 32)) -> Session:
    model = _torchvision("resnet50", size)
    blocks = [f"layer{i}.{j}" for i, n in zip(range(1, 5), (3, 4, 6, 3), strict=True)
              for j in range(n)]
    image = _image(IMAGE)
    x = model.preprocess(image)
    net = model.module
    target = [ClassifierOutputTarget(0)]
    model.layers()  # the model's one-off layer discovery is not part of an explanation

    def floor():
        with torch.inference_mode():
            net(x)

    def ours():
        Session(device="cpu").explain(ExplainRequest(image, model, ["gradcam"], blocks, 0))

    def loop():
        for block in blocks:
            with GradCAM(net, [net.get_submodule(block)]) as cam:
                cam(x, target)

    def torchcam_all():
        with TorchCamGradCAM(net, target_layer=blocks, input_shape=tuple(x.shape[1:])) as cam:
            cam(0, net(x))

    floor()
    t_floor = _ms(floor, 3)
    t_ours = _ms(ours, 2)
    t_loop = _ms(loop, 1)
    t_torchcam = _ms(torchcam_all, 2)
    print(f"(a) Grad-CAM, 16 ResNet-50 blocks, {size}px input, 2 cores: Lucida {t_ours:.0f} ms "
          f"(one request), pytorch-grad-cam loop {t_loop:.0f} ms -> {t_loop / t_ours:.1f}x faster; "
          f"torch-cam with all 16 layers {t_torchcam:.0f} ms -> Lucida takes "
          f"{t_ours / t_torchcam:.2f}x its time; one forward pass {t_floor:.0f} ms -> Lucida = "
          f"{t_ours / t_floor:.1f}x the floor", flush=True)
    session = Session(device="cpu")
    session.explain(ExplainRequest(image, model, ["gradcam"], blocks, 0))
    return session, model, image, blocks


def bench_switch(session, model, image, blocks) -> None:
    threads = torch.get_num_threads()
    for n, methods in ((threads, ("gradcampp", "xgradcam")), (1, ("layercam", "hirescam"))):
        # Small reductions are where intra-op threads cost more than they give on a busy
        # machine, so the switch is timed with the default threads and with one.
        torch.set_num_threads(n)
        times = []
        for method in methods:
            for block in blocks:
                start = time.perf_counter()
                session.explain(ExplainRequest(image, model, [method], [block], 0))
                times.append((time.perf_counter() - start) * 1000.0)
        print(f"(b) switch layer/method from the cache, {IMAGE}x{IMAGE} image, {n} thread(s): "
              f"median {statistics.median(times):.1f} ms, worst {max(times):.1f} ms over "
              f"{len(times)} switches (goal < 20 ms); model passes so far: "
              f"{session.forward_passes}",
              flush=True)
    torch.set_num_threads(threads)


def _scorecam_peer(net, layer, x, target) -> np.ndarray:
    wrapped = torch.nn.Sequential(net, torch.nn.LogSoftmax(dim=1)).eval()
    with _quiet(), ScoreCAM(wrapped, [net.get_submodule(layer)]) as cam:
        return cam(x, [ClassifierOutputTarget(target)])[0]


def bench_scorecam(size: int = sized(96, 48)) -> None:
    model = _torchvision("resnet18", size)
    image = _image(size, seed=1)
    x = model.preprocess(image)
    model.layers()
    net = model.module

    def ours(mode, k=32):
        session = Session(device="cpu")
        params = {"scorecam": {"mode": mode, "k": k}}
        result = session.explain(ExplainRequest(image, model, ["scorecam"], ["layer4"], 0,
                                                params=params))
        return result.maps[("scorecam", "layer4")].heatmap

    ours("fast")  # warm-up
    maps = {}
    # Best of three each (one in smoke mode), alternating, so that a burst of other load does
    # not pick the winner.
    t_exact = t_peer = float("inf")
    for _ in range(sized(3, 1)):
        t_exact = min(t_exact, _ms(lambda: maps.setdefault("exact", ours("exact"))))
        t_peer = min(t_peer, _ms(lambda: _scorecam_peer(net, "layer4", x, 0)))
    t_fast = _ms(lambda: maps.setdefault("fast", ours("fast")), 2)
    exact, fast = maps["exact"], maps["fast"]
    capture = run_capture(model, x, 0, ["layer4"], gradients=False)
    acts = capture.activations["layer4"][0]
    scored = len(torch.unique(_minmax(acts[acts.flatten(1).amax(1) > acts.flatten(1).amin(1)])
                              .flatten(1), dim=0))
    print(f"(c) exact Score-CAM, ResNet-18 layer4 (512 channels), {size}px: Lucida "
          f"{t_exact:.0f} ms, pytorch-grad-cam {t_peer:.0f} ms -> {t_exact / t_peer:.2f}x its time "
          f"(goal <= 0.8x); {scored} distinct masks scored against its {acts.shape[0]}",
          flush=True)
    print(f"(d) Score-CAM fast (k=32): {t_fast:.0f} ms -> {t_peer / t_fast:.1f}x faster than "
          f"pytorch-grad-cam (goal >= 10x); Pearson to exact: ResNet-18 "
          f"{_pearson(fast, exact):.3f}", end="", flush=True)
    for name in ("demo", "demo-biased"):
        demo = load_model(name)
        rs = []
        for seed in range(DEMO_IMAGES):
            img = _image(96, seed=seed, channels=1, path=f"{name}{seed}.png")
            maps = []
            for mode in ("exact", "fast"):
                result = Session(device="cpu").explain(ExplainRequest(
                    img, demo, ["scorecam"], params={"scorecam": {"mode": mode}}))
                maps.append(next(iter(result.maps.values())).heatmap)
            rs.append(_pearson(*maps))
        print(f", {name} {min(rs):.3f} (worst of {DEMO_IMAGES} images)", end="", flush=True)
    print(" (goal >= 0.9)", flush=True)


def bench_memory(n: int = EXPLANATIONS) -> None:
    model = load_model("demo")
    session = Session(device="cpu")
    process = psutil.Process()
    rss = {}
    first = min(20, n // 2)
    for i in range(n):
        image = _image(128, seed=i % 20, channels=1, path=f"memory{i}.png")
        session.explain(ExplainRequest(image, model, ["gradcam", "gradcampp", "layercam"]))
        if i + 1 in (first, n):
            gc.collect()
            rss[i + 1] = process.memory_info().rss / 2**20
    print(f"(e) resident memory over {n} explanations (demo model, 3 methods, new image each): "
          f"{rss[first]:.0f} MB after {first}, {rss[n]:.0f} MB after {n} -> growth "
          f"{rss[n] - rss[first]:+.1f} MB (goal < 50 MB)", flush=True)


def main() -> None:
    """Run every measurement and print one line each."""
    torch.manual_seed(0)
    load = ", ".join(f"{v:.1f}" for v in psutil.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {psutil.cpu_count()} "
          f"CPUs, load average {load} (a busy machine inflates every time)", flush=True)
    state = bench_blocks()
    bench_switch(*state)
    del state
    gc.collect()
    bench_scorecam()
    bench_memory()


if __name__ == "__main__":
    main()
