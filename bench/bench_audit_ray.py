"""The audit on Ray: throughput at 1 and 2 workers, start-up cost, and the driver's memory.

Every run uses the same phantom images, the demo architecture (narrow, random weights, 48 px)
and Grad-CAM, on a local Ray instance started by the run itself, as ``audit --engine ray`` does
(in smoke mode, one instance for every run). Throughput is measured on the steady part of a run
(after the first batch arrives), and the start-up cost is the time to the first stored batch
minus one batch's steady time. The driver's peak memory is measured in a fresh driver process
per manifest size; the manifests list the same few files many times, so that the 20,000-row run
measures the driver's bookkeeping, not disk.
"""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke import SMOKE, sized  # noqa: E402

IMAGES = sized(768, 16)
BATCH_SIZE = sized(32, 4)
MEMORY_SIZES = sized((2000, 20000), (16,))


def _repeat_manifest(source: Path, n: int, out: Path) -> Path:
    """A manifest of ``n`` rows cycling over the rows of ``source``."""
    with source.open() as fh:
        rows = list(csv.DictReader(fh))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["path"] = str((source.parent / row["path"]).resolve())
            writer.writerow(row)
    return out


def tiny_card(folder: Path) -> Path:
    """Write the benchmark's small model as a card that Ray workers load by path."""
    from audit_fixtures import small_model
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in small_model().module.state_dict().items()}
    save_file(state, str(folder / "tiny.safetensors"))
    (folder / "card.toml").write_text(
        'name = "tiny"\narchitecture = "lucida:demo_cnn"\nweights = "tiny.safetensors"\n'
        'classes = ["normal", "nodule"]\n[architecture_args]\nin_channels = 1\n'
        'num_classes = 2\nwidths = [8, 8, 16, 16]\n[input]\nsize = [48, 48]\nchannels = 1\n'
        'mean = [0.5]\nstd = [0.25]\nwindow = "minmax"\n'
    )
    return folder / "card.toml"


def timed_run(manifest: Path, out: Path, workers: int, card: Path) -> tuple[float, float]:
    """Return (steady images/s, seconds to the first stored batch) of one Ray audit."""
    from engine.audit.manifest import load_dataset
    from engine.audit.ray_engine import run_audit_ray
    from engine.audit.runner import AuditSettings
    from engine.models.loaded import load_model

    dataset, model = load_dataset(manifest), load_model(card)
    marks: list[tuple[float, float]] = []
    start = time.perf_counter()

    def progress(fraction, message):
        marks.append((time.perf_counter() - start, fraction))

    run_audit_ray(dataset, model, str(card), AuditSettings(method="gradcam",
                                                           batch_size=BATCH_SIZE),
                  out, workers=workers, progress=progress)
    first_t, first_f = marks[1]
    last_t, last_f = marks[-1]
    rate = (last_f - first_f) * len(dataset.rows) / max(last_t - first_t, 1e-9)
    return rate, first_t


def memory_child(n: int, folder: str, source: str, address: str | None = None) -> None:
    """Run one Ray audit over ``n`` rows and print the driver's peak RSS in MiB.

    With ``address``, on the Ray instance there instead of one of its own.
    """
    if address:
        import ray

        ray.init(address=address, log_to_driver=False)
    manifest = _repeat_manifest(Path(source), n, Path(folder) / f"m{n}.csv")
    timed_run(manifest, Path(folder) / f"out{n}", 2, Path(folder) / "card" / "card.toml")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    """Print Ray throughput at 1 and 2 workers, their ratio, start-up cost and memory ratio."""
    from audit_fixtures import write_phantom_dataset
    from bench_audit import batched

    from engine.audit import decode_pool
    from engine.audit.manifest import load_dataset
    from engine.models.loaded import load_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = write_phantom_dataset(tmp / "data", 64)
        manifest = _repeat_manifest(source, IMAGES, tmp / "manifest.csv")
        card = tiny_card(tmp / "card")
        model = load_model(card)
        shared_ray: list[str] = []  # the memory child's address argument
        if SMOKE:
            # One local Ray for every run, the memory child's too: a start takes seconds.
            import ray
            from audit_fixtures import start_local_ray

            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # as the engine's own start
            start_local_ray()
            shared_ray = [ray.get_runtime_context().gcs_address]
        # The local engine warm, as bench_audit measures it: imports, registry, decode process.
        decode_pool.wait_ready(decode_pool.auto_processes())
        batched(load_dataset(source), model, tmp / "warm")
        local = batched(load_dataset(manifest), model, tmp / "local")
        rates = {}
        for workers in (1, 2):
            rates[workers], startup = timed_run(manifest, tmp / f"ray{workers}", workers, card)
        print(f"ray audit ({IMAGES} images, 48 px, Grad-CAM): 1 worker {rates[1]:.0f} img/s, "
              f"2 workers {rates[2]:.0f} img/s, ratio {rates[2] / rates[1]:.2f}x; local "
              f"batched engine {local:.0f} img/s (ray 2 workers / local "
              f"{rates[2] / local:.2f}x)", flush=True)
        print(f"ray start-up cost (local instance, actors loading the model, first batch): "
              f"{startup:.1f} s, the time the local engine takes for {startup * local:.0f} "
              f"images", flush=True)
        peaks = {}
        for n in MEMORY_SIZES:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(n), str(tmp), str(source),
                 *shared_ray],
                capture_output=True, text=True, check=True,
            )
            peaks[n] = float(out.stdout.strip().splitlines()[-1])
        small, large = MEMORY_SIZES[0], MEMORY_SIZES[-1]  # one size in smoke mode
        print(f"ray driver peak memory: {small} rows {peaks[small]:.0f} MiB, {large} rows "
              f"{peaks[large]:.0f} MiB, ratio {peaks[large] / peaks[small]:.2f}x "
              f"(goal <= 1.2x)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--memory-child":
        memory_child(int(sys.argv[2]), *sys.argv[3:])
    else:
        main()
