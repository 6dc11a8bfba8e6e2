"""Synthetic audit results with planted heatmap clusters, for discovery's tests and bench.

Each planted cluster is a Gaussian blob at its own place, jittered and noisy per image, and
carries its own mix of a ``site`` group, so both the clustering and the enrichment have a known
answer. The results are written as an audit writes them (:class:`engine.audit.store.ResultStore`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.audit.store import ResultStore

#: Blob centres (row, column, as fractions of the side) of the planted clusters, in order.
CENTRES = ((0.15, 0.85), (0.5, 0.5), (0.8, 0.2), (0.2, 0.2), (0.8, 0.8), (0.5, 0.15))


def planted_maps(labels: np.ndarray, size: int, rng: np.random.Generator,
                 noise: float = 0.05) -> np.ndarray:
    """(n, size, size) float16 maps, peak 1: a blob at ``CENTRES[label]`` plus noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    n = len(labels)
    centres = np.asarray(CENTRES, np.float32)[labels]
    jitter = rng.normal(0.0, 0.03, (n, 2)).astype(np.float32)
    cy = (centres[:, 0] + jitter[:, 0])[:, None, None]
    cx = (centres[:, 1] + jitter[:, 1])[:, None, None]
    sigma = rng.uniform(0.06, 0.1, n).astype(np.float32)[:, None, None]
    maps = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    maps += noise * rng.random((n, size, size), dtype=np.float32)
    return (maps / maps.max(axis=(1, 2), keepdims=True)).astype(np.float16)


def planted_store(folder: str | Path, n: int, clusters: int = 3, *, size: int = 64,
                  site_b: tuple[float, ...] | None = None, seed: int = 0,
                  batch: int = 512) -> tuple[ResultStore, np.ndarray, np.ndarray]:
    """Write ``n`` results of one class (``nodule``) with ``clusters`` planted clusters.

    Parameters
    ----------
    folder : str or Path
        The audit folder.
    n, clusters : int
        Images, and planted clusters (at most ``len(CENTRES)``), drawn at random.
    size : int
        Side of the stored maps.
    site_b : tuple of float, optional
        Per cluster, the probability that an image is from site ``B`` (else ``A``); 0.5 each
        by default.
    seed : int
        Seed of every draw.
    batch : int
        Images per stored batch file.

    Returns
    -------
    store : ResultStore
    labels : np.ndarray
        The planted cluster of each image, in stored order.
    sites : np.ndarray
        Each image's site (``"A"`` or ``"B"``).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, n)
    p_b = np.asarray(site_b if site_b is not None else (0.5,) * clusters)[labels]
    sites = np.where(rng.random(n) < p_b, "B", "A")
    header = {"model": {"name": "synthetic"}, "method": "gradcam", "heat_size": size,
              "identifiers": "removed"}
    store = ResultStore(folder, header)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        records = [{"key": f"{i}:synthetic{i:06d}", "row": i, "digest": f"synthetic{i:06d}",
                    "label": "nodule", "label_index": 1, "groups": {"site": str(sites[i])},
                    "pred": 1, "pred_name": "nodule", "target": 1, "scores": [0.2, 0.8],
                    "shares": {}, "outside_body": float(labels[i] == 0),
                    "attributes": {}, "heat_index": i - start}
                   for i in range(start, stop)]
        store.append_batch(records, planted_maps(labels[start:stop], size, rng))
    return store, labels, sites
