"""Audit throughput, batched against a per-image loop, and peak memory against dataset size.

Both throughput runs use the same images, model (the demo architecture, narrow, random weights,
48-pixel phantoms) and explainer (Grad-CAM) in the same process. The per-image loop is the same
pipeline without batching: each image alone through decode, the engine's single-image capture,
the explainer, the map back to the image and the ROI shares. The batched run is the full
``run_audit``, streaming results to disk, with its decode processes (started once, before the
rounds, and timed on their own) and, for comparison, with decoding in its own process. Torch
uses one thread in the audit process, so that other load on the machine disturbs the
comparison as little as possible.

Peak memory is each run's peak resident set size, measured in a fresh process per size, for
the audit process and its decode process apart.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke import sized  # noqa: E402

LOOP_IMAGES = sized(512, 8)
BATCH_SIZE = sized(32, 4)
ROUNDS = sized(5, 1)
MEMORY_SIZES = sized((200, 2000), (8,))


def per_image_loop(dataset, model, method: str = "gradcam") -> float:
    """Audit ``dataset`` one image at a time; return images per second.

    Each image goes through the explain core as a batch of one: decode (read in one pass, as
    the batched audit reads it), capture, the explainer, the finish step and the ROI shares.
    This is faster per image than the batched code run on batches of one.
    """
    from engine.audit.manifest import BORDER_ROLE
    from engine.audit.measures import region_shares
    from engine.audit.runner import AuditSettings, plan
    from engine.explain import core
    from engine.studies.image import open_image

    the_plan = plan(model, AuditSettings(method=method))
    (key,) = [(e.name, the_plan.map_layers(e)[0]) for e in the_plan.explainers]
    start = time.perf_counter()
    for row in dataset.rows:
        image = open_image(row.path, decode=True)
        capture = core.capture(model, model.preprocess(image), "top", the_plan)
        raw = core.explain(capture, the_plan).maps[0][key]
        heat = core.finish_map(*key, raw, model, image.shape).heatmap
        region_shares(heat, row.boxes, border=BORDER_ROLE)
    return len(dataset.rows) / (time.perf_counter() - start)


def batched(dataset, model, out: Path, method: str = "gradcam",
            decode_processes: int | None = None) -> float:
    """Run the batched, streaming audit; return images per second."""
    from engine.audit.runner import AuditSettings, run_audit

    settings = AuditSettings(method=method, batch_size=BATCH_SIZE,
                             decode_processes=decode_processes)
    start = time.perf_counter()
    run_audit(dataset, model, settings, out)
    return len(dataset.rows) / (time.perf_counter() - start)


def stages(dataset, model, out: Path, method: str = "gradcam") -> dict[str, float]:
    """Milliseconds per image of each batched stage, run one after the other in this process."""
    from engine.audit.loading import InputRecipe, load_batch
    from engine.audit.runner import AuditSettings, explain_batch, plan, run_header
    from engine.audit.store import ResultStore

    settings = AuditSettings(method=method, batch_size=BATCH_SIZE)
    the_plan, recipe = plan(model, settings), InputRecipe.from_model(model)
    rows = dataset.rows
    batches = [rows[i : i + BATCH_SIZE] for i in range(0, len(rows), BATCH_SIZE)]
    t0 = time.perf_counter()
    loaded = [load_batch(b, recipe) for b in batches]
    t1 = time.perf_counter()
    done = [explain_batch(b, model, the_plan, dataset.roles) for b in loaded]
    t2 = time.perf_counter()
    store = ResultStore(out, run_header(dataset, model, the_plan, settings))
    for records, heatmaps in done:
        store.append_batch(records, heatmaps)
    t3 = time.perf_counter()
    per = 1e3 / len(rows)
    return {"decode": (t1 - t0) * per, "model and maps": (t2 - t1) * per,
            "store": (t3 - t2) * per}


def memory_child(n: int, folder: str) -> None:
    """Audit ``n`` generated images and print the peak RSS in MiB (runs in its own process)."""
    import torch
    from audit_fixtures import small_model, write_phantom_dataset

    from engine.audit import decode_pool
    from engine.audit.manifest import load_dataset
    from engine.audit.outputs import write_outputs
    from engine.audit.runner import AuditSettings, run_audit

    torch.set_num_threads(1)
    manifest = write_phantom_dataset(Path(folder) / "data", n)
    dataset, model = load_dataset(manifest), small_model()
    out = Path(folder) / "out"
    decode_pool.wait_ready(decode_pool.auto_processes())
    store = run_audit(dataset, model, AuditSettings(method="gradcam", batch_size=BATCH_SIZE), out)
    header = json.loads((out / "run.json").read_text())
    write_outputs(store, dataset, model, header, out, pdf=False)
    decode_pool.close()  # so that its peak is counted among the ended children
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main() -> None:
    """Print throughput and memory ratios measured in this run."""
    import torch
    from audit_fixtures import small_model, write_phantom_dataset

    from engine.audit import decode_pool
    from engine.audit.manifest import load_dataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = load_dataset(write_phantom_dataset(tmp / "data", LOOP_IMAGES))
        model = small_model()
        processes = decode_pool.auto_processes()
        start = time.perf_counter()
        ready = decode_pool.wait_ready(processes)
        print(f"audit decode processes: {processes}, start-up {time.perf_counter() - start:.1f} s "
              f"({'ready' if ready else 'NOT ready'}; once per Python process, and audits decode "
              "in-process until they are ready)", flush=True)
        # Warm-up of both: layer discovery, registry, allocator, lazy imports.
        per_image_loop(dataset, model)
        batched(dataset, model, tmp / "warm")
        batched(dataset, model, tmp / "warm0", decode_processes=0)
        # Alternating rounds, medians: load from other processes hits both sides alike.
        loops, fasts, heres = [], [], []
        for i in range(ROUNDS):
            loops.append(per_image_loop(dataset, model))
            fasts.append(batched(dataset, model, tmp / f"out{i}"))
            heres.append(batched(dataset, model, tmp / f"here{i}", decode_processes=0))
        loop, fast, here = (statistics.median(v) for v in (loops, fasts, heres))
        ratios = sorted(f / lo for f, lo in zip(fasts, loops, strict=True))
        print(f"audit throughput ({LOOP_IMAGES} images, 48 px, Grad-CAM, 1 torch thread, median "
              f"of {ROUNDS} rounds): per-image loop {loop:.0f} img/s, batched x{BATCH_SIZE} "
              f"{fast:.0f} img/s, ratio {fast / loop:.2f}x (rounds {ratios[0]:.2f}x to "
              f"{ratios[-1]:.2f}x; goal >= 3x); batched with decoding in-process {here:.0f} "
              f"img/s ({here / loop:.2f}x)", flush=True)
        parts = stages(dataset, model, tmp / "stages")
        print("audit stages, batched, one after the other (ms per image): "
              + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()), flush=True)
        peaks = {}
        for n in MEMORY_SIZES:
            folder = tmp / f"mem{n}"
            folder.mkdir()
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(n), str(folder)],
                capture_output=True, text=True, check=True,
            )
            peaks[n] = [float(v) for v in out.stdout.strip().splitlines()[-1].split()]
        small, large = MEMORY_SIZES[0], MEMORY_SIZES[-1]  # one size in smoke mode
        print(f"audit peak memory (audit process; decode process): {small} images "
              f"{peaks[small][0]:.0f} MiB; {peaks[small][1]:.0f} MiB, {large} images "
              f"{peaks[large][0]:.0f} MiB; {peaks[large][1]:.0f} MiB, ratio "
              f"{peaks[large][0] / peaks[small][0]:.2f}x (goal <= 1.2x)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        memory_child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
