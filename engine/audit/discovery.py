"""Shortcut discovery without regions: spectral clustering of an audit's heatmaps (SpRAy).

Lapuschkin et al. (2019, "Unmasking Clever Hans predictors") cluster the heatmaps of one class
and look at what each cluster's members have in common. Here, per class (an image's label,
else the model's prediction), the stored maps are streamed from the audit's store,
downsampled, scaled to unit mass and reduced by incremental PCA; a symmetric k-nearest-neighbour
graph of the reduced maps is the sparse affinity. The eigengap of its normalised Laplacian
suggests the number of clusters (the user may set it), and scikit-learn's
``SpectralClustering(affinity="precomputed")`` assigns the clusters. A second pass over the
store sums each cluster's maps at the stored resolution. Memory stays bounded: one batch file
of maps is open at a time, and what is kept per image is a short vector.

``clusters.json`` (contract; the audit view reads it)
---------------------------------------------------------
::

    {
      "version": 1,
      "method": "spectral clustering of heatmaps (SpRAy)",
      "map_size": 16,            # side of the maps as clustered
      "mean_map_size": 64,       # side of every "mean_map" below (the stored maps' side)
      "neighbours": 10,          # k of the nearest-neighbour affinity
      "components": 32,          # PCA dimensions the neighbours are found in
      "correction": "benjamini-hochberg",   # of the p-values, within each class
      "alpha": 0.05,             # adjusted p below which an enrichment is "significant"
      "identifiers": "removed",  # or "kept": then exemplars carry "path" too
      "figure": "clusters.png",
      "outside_body": {          # share of saliency outside the body (ROI-free), per image
        "overall": SUMMARY,
        "by_group": {"site=B": SUMMARY, ...},
        "by_class": {"nodule": SUMMARY, ...}
      },
      "classes": [
        {
          "class": "nodule",
          "n": 200,                      # images of the class with a map
          "k": 3,                        # clusters made
          "k_suggested": 3,              # what the eigengap suggests
          "k_source": "eigengap",        # or "user"
          "eigenvalues": [0.0, ...],     # smallest eigenvalues of the normalised Laplacian
          "mean_map": [[...], ...],      # the class's typical map, peak 1
          "note": "...",                 # only when the class was not clustered (too few)
          "clusters": [
            {
              "id": 0,                   # 0 is the largest cluster of the class
              "size": 120,
              "share": 0.6,              # of the class
              "mean_map": [[...], ...],  # mean_map_size × mean_map_size, peak 1
              "difference": {            # against the class's mean map, both at unit mass
                "correlation": 0.42,     # Pearson r of the two maps
                "moved": 0.31,           # total variation: share of mass that sits elsewhere
                "excess_peak": [0.08, 0.91],  # (row, column) as fractions of the side, where
                                              # the cluster has most more mass than the class
                "excess_box": [0.8, 0.0, 1.0, 0.2]  # x0 y0 x1 y1 fractions: where the excess
                                                    # is above half its peak
              },
              "outside_body": SUMMARY,
              "exemplars": {
                "central":  [{"case": "case-012", "distance": 0.01}, ...],
                "atypical": [{"case": "case-140", "distance": 0.20}, ...]
              },
              "members": ["case-001", ...],   # every member, in manifest order
              "enriched": [               # over-represented metadata, smallest p first
                {
                  "attribute": "site",    # a manifest column or a DICOM keyword
                  "source": "manifest",   # or "dicom"
                  "value": "B",
                  "in_cluster": 110,      # members with the value
                  "cluster_size": 120,
                  "in_class": 130,        # images of the class with the value
                  "class_size": 200,
                  "enrichment": 1.41,     # (110/120) / (130/200)
                  "odds_ratio": 12.5,     # scipy.stats.fisher_exact's
                  "p": 1.2e-12,           # Fisher's exact test, one-sided (over-represented)
                  "p_adjusted": 3.4e-11,
                  "significant": true
                }
              ]
            }
          ]
        }
      ]
    }

``SUMMARY`` is ``{"n": int, "mean": float, "ci95": [lo, hi]}`` (bootstrap, as in
``audit.json``). Images are named by their ``case`` pseudonym, as in ``audit.json``; a path is
listed only when the audit kept identifiers. Every test of one class (each cluster against
the rest of the class, for each value of each attribute) is one family for the
Benjamini–Hochberg correction.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.audit.aggregate import group_keys, image_entry
from engine.audit.measures import summarise
from engine.audit.store import ResultStore

CLUSTERS_JSON = "clusters.json"
CLUSTERS_PNG = "clusters.png"
#: Side of the maps as clustered: the stored maps are area-averaged down to it.
MAP_SIZE = 16
#: Neighbours per map in the affinity graph (SpRAy uses a sparse k-nearest-neighbour graph).
NEIGHBOURS = 10
#: Dimensions the maps are reduced to (incremental PCA) before the neighbours are found.
COMPONENTS = 32
#: Largest number of clusters the eigengap chooses from.
MAX_CLUSTERS = 8
#: A class with fewer maps than this is described (mean map, outside-body share), not clustered.
MIN_CLASS = 20
#: Members listed as exemplars: closest to the centre, and farthest from it.
EXEMPLARS = 5
#: Adjusted p below which an enrichment is called significant.
ALPHA = 0.05
CORRECTION = "benjamini-hochberg"
#: An attribute with more values than this in a class (an identifier, say) is not tested.
MAX_VALUES = 20
#: Maps read and reduced at a time.
CHUNK = 1024


@dataclass(frozen=True)
class Discovery:
    """What discovery found: ``clusters.json``'s content and the cluster figure (PNG bytes)."""

    clusters: dict
    figure: bytes | None


class _Codes:
    """Per attribute, each image's value as a small integer code (-1: the image has none).

    Metadata are held as one list of codes per attribute, not a dict per image, so that 20,000
    images cost a few hundred kilobytes.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[str, int]] = {}
        self.codes: dict[tuple[str, str], list[int]] = {}
        self.n = 0

    def add(self, meta: Mapping[tuple[str, str], str]) -> None:
        for key, value in meta.items():
            if key not in self.codes:
                self.values[key] = {}
                self.codes[key] = [-1] * self.n
            self.codes[key].append(self.values[key].setdefault(value, len(self.values[key])))
        self.n += 1
        for codes in self.codes.values():
            if len(codes) < self.n:
                codes.append(-1)

    def arrays(self) -> dict[tuple[str, str], tuple[np.ndarray, list[str]]]:
        """Per (source, attribute): the codes as an array and the values by code."""
        return {key: (np.asarray(self.codes[key], np.int32), list(self.values[key]))
                for key in sorted(self.codes)}


def _metadata(rec: dict) -> dict[tuple[str, str], str]:
    """An image's manifest columns and DICOM acquisition attributes, by (source, name).

    A DICOM attribute that is also a manifest column (a DICOM folder's groups) counts once.
    """
    meta = {("manifest", k): str(v) for k, v in rec.get("groups", {}).items()}
    groups = set(rec.get("groups", {}))
    meta.update({("dicom", k): str(v) for k, v in rec.get("attributes", {}).items()
                 if k not in groups})
    return meta


def _reduce(maps: list[np.ndarray], size: int) -> np.ndarray:
    """Stored maps (each S × S) area-averaged to ``size`` × ``size``, flattened, unit mass."""
    import torch

    from engine.audit.batchmaps import small_maps

    stack = torch.from_numpy(np.stack(maps).astype(np.float32)).clamp(min=0.0)
    small = small_maps(stack, size).flatten(1).numpy()
    mass = small.sum(axis=1, keepdims=True)
    return np.where(mass > 0, small / np.where(mass > 0, mass, 1.0), 0.0).astype(np.float32)


def _chunks(store: ResultStore, size: int):
    """Yield ``(records, reduced maps)`` chunks of the stored maps, in stored order."""
    recs, maps = [], []
    for rec, heat in store.heatmaps():
        recs.append(rec)
        maps.append(heat)
        if len(maps) == CHUNK:
            yield recs, _reduce(maps, size)
            recs, maps = [], []
    if maps:
        yield recs, _reduce(maps, size)


def affinity(features: np.ndarray, neighbours: int = NEIGHBOURS):
    """The symmetric k-nearest-neighbour connectivity graph of ``features`` (sparse CSR).

    Two maps are linked when either is among the other's ``neighbours`` nearest (Euclidean).
    """
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(neighbours, len(features) - 1))
    # A k-d tree, not all pairs: the search grows as n log n while the maps' own dimension
    # is low (a brute-force search is quadratic in the number of maps).
    search = NearestNeighbors(n_neighbors=k, algorithm="kd_tree").fit(features)
    graph = search.kneighbors_graph(mode="connectivity")
    return graph.maximum(graph.T).tocsr()


def laplacian_spectrum(graph, count: int) -> np.ndarray:
    """The ``count`` smallest eigenvalues of the graph's normalised Laplacian, ascending.

    The spectrum of a graph in pieces is the union of its pieces' spectra, so each connected
    piece is solved on its own: ARPACK misses copies of a repeated eigenvalue (the zeros of a
    graph in pieces). A large piece's smallest eigenvalues are one minus the largest of
    ``D^-1/2 W D^-1/2``, which ARPACK finds quickly on the sparse matrix.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components, laplacian
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    graph = sp.csr_matrix(graph, dtype=np.float64)
    _, piece = connected_components(graph, directed=False)
    values = []
    for p in np.unique(piece):
        idx = np.flatnonzero(piece == p)
        lap = laplacian(graph[idx][:, idx], normed=True)
        m = len(idx)
        want = min(count, m)
        if m <= max(200, 2 * count + 1):  # small: solved densely (ARPACK needs want < m)
            values.append(np.linalg.eigvalsh(lap.toarray())[:want])
            continue
        v0 = np.random.default_rng(0).uniform(0.5, 1.0, m)
        try:
            top = eigsh(sp.identity(m, format="csr") - lap, k=want, which="LA", v0=v0,
                        return_eigenvectors=False, tol=1e-6)
        except ArpackNoConvergence as exc:
            top = exc.eigenvalues  # the ones that converged: the eigengap works with fewer
        values.append(1.0 - np.asarray(top, dtype=np.float64))
    return np.clip(np.sort(np.concatenate(values))[:count], 0.0, 2.0)


def eigengap(values: np.ndarray, lowest: int = 2) -> int:
    """The number of clusters the largest gap between consecutive eigenvalues suggests.

    With eigenvalues ``λ_0 <= λ_1 <= ...``, it is the ``k >= lowest`` for which
    ``λ_k - λ_{k-1}`` is largest: ``k`` small eigenvalues, then a jump.
    """
    gaps = np.diff(values)
    if gaps.size < lowest:
        return max(1, min(lowest, values.size))
    return int(np.argmax(gaps[lowest - 1:]) + lowest)


def spectral_labels(graph, k: int) -> np.ndarray:
    """Cluster labels from scikit-learn's spectral clustering of the precomputed affinity."""
    import warnings

    from sklearn.cluster import SpectralClustering

    if k <= 1:
        return np.zeros(graph.shape[0], np.int64)
    with warnings.catch_warnings():
        # A graph in several pieces is what clusters look like; sklearn warns about it.
        warnings.simplefilter("ignore", UserWarning)
        return SpectralClustering(n_clusters=k, affinity="precomputed", random_state=0,
                                  assign_labels="kmeans", n_init=10).fit_predict(graph)


def fisher_enrichment(in_cluster: int, cluster_size: int, in_class: int,
                      class_size: int) -> tuple[float, float, float]:
    """Enrichment, odds ratio and one-sided Fisher p of a value among a cluster's members.

    The 2 × 2 table is (cluster, rest of the class) × (with the value, without); the test
    asks whether the value is over-represented in the cluster
    (``scipy.stats.fisher_exact(..., alternative="greater")``).
    """
    from scipy.stats import fisher_exact

    a = in_cluster
    b = cluster_size - in_cluster
    c = in_class - in_cluster
    d = (class_size - cluster_size) - c
    res = fisher_exact([[a, b], [c, d]], alternative="greater")
    enrichment = (a / cluster_size) / (in_class / class_size) if in_class and cluster_size \
        else float("nan")
    return float(enrichment), float(res.statistic), float(res.pvalue)


def adjust(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(pvalues, dtype=np.float64)
    return false_discovery_control(p, method="bh") if p.size else p


def enrichments(labels: np.ndarray, metadata: dict[tuple[str, str], tuple[np.ndarray, list[str]]],
                alpha: float = ALPHA) -> dict[int, list[dict]]:
    """Test every value of every attribute in every cluster of one class; BH over them all.

    Parameters
    ----------
    labels : np.ndarray
        Cluster of each image of the class.
    metadata : dict
        Per (source, attribute), each image's value code (-1: none) and the values by code.
    alpha : float
        Adjusted p below which an entry is ``significant``.

    Returns
    -------
    dict
        Per cluster, its over-represented values (enrichment above 1), smallest p first.
    """
    n = len(labels)
    clusters = np.unique(labels)
    tests = []
    for (source, name), (codes, values) in metadata.items():
        present = np.unique(codes[codes >= 0])
        # One value in the class (beside images that lack the attribute, PNGs lacking DICOM
        # tags, say) tells nothing about the cluster; too many values is an identifier.
        if not 2 <= len(present) <= MAX_VALUES or len(clusters) < 2:
            continue
        for code in present:
            has = codes == code
            in_class = int(has.sum())
            for cl in clusters:
                member = labels == cl
                size = int(member.sum())
                a = int((has & member).sum())
                enrichment, odds, p = fisher_enrichment(a, size, in_class, n)
                tests.append({"cluster": int(cl), "attribute": name, "source": source,
                              "value": values[code], "in_cluster": a, "cluster_size": size,
                              "in_class": in_class, "class_size": n, "enrichment": enrichment,
                              "odds_ratio": odds, "p": p})
    adjusted = adjust([t["p"] for t in tests])
    out: dict[int, list[dict]] = defaultdict(list)
    for t, q in zip(tests, adjusted, strict=True):
        if not t["enrichment"] > 1.0:
            continue
        out[t.pop("cluster")].append({**t, "p_adjusted": float(q), "significant": bool(q < alpha)})
    return {cl: sorted(entries, key=lambda e: (e["p"], -e["enrichment"]))
            for cl, entries in out.items()}


def map_difference(cluster_map: np.ndarray, class_map: np.ndarray) -> dict:
    """How a cluster's mean map differs from its class's: correlation, mass moved, excess.

    Both maps are first scaled to unit mass. ``moved`` is half the L1 distance (the share of
    the cluster's mass that lies elsewhere than the class's); ``excess_peak`` is where the
    cluster has most more mass (row, column, as fractions of the side) and ``excess_box`` the
    box (x0, y0, x1, y1 fractions) where that excess is above half its peak.
    """
    p = cluster_map / cluster_map.sum() if cluster_map.sum() > 0 else cluster_map
    q = class_map / class_map.sum() if class_map.sum() > 0 else class_map
    h, w = p.shape
    corr = float(np.corrcoef(p.ravel(), q.ravel())[0, 1]) if p.std() > 0 and q.std() > 0 \
        else float("nan")
    excess = p - q
    out = {"correlation": corr, "moved": float(0.5 * np.abs(p - q).sum()),
           "excess_peak": None, "excess_box": None}
    top = float(excess.max())
    if top > 0:
        r, c = np.unravel_index(int(np.argmax(excess)), excess.shape)
        out["excess_peak"] = [(r + 0.5) / h, (c + 0.5) / w]
        rows, cols = np.nonzero(excess >= 0.5 * top)
        out["excess_box"] = [cols.min() / w, rows.min() / h, (cols.max() + 1) / w,
                             (rows.max() + 1) / h]
    return out


@dataclass
class _Pass:
    """What the first passes over the store keep: a few numbers per image, nothing per pixel."""

    features: dict[int, list[np.ndarray]]  # per class index: chunks of reduced maps
    class_of: list[int]  # per stored map, in stored order
    keys: dict[int, list[str]]  # per class: record keys (names come from them)
    rows: dict[int, list[int]]  # per class: manifest rows
    paths: dict[int, list[str | None]]  # per class: paths, when the audit kept them
    outside: dict[int, list[float]]  # per class: outside-body shares (NaN when none)
    by_group: dict[str, list[float]]  # per group: outside-body shares
    codes: dict[int, _Codes]  # per class: metadata codes
    components: int = 0  # PCA dimensions used


def _first_passes(store: ResultStore, classes: Sequence[str], size: int) -> _Pass:
    """Fit incremental PCA on the reduced maps, then keep each map's PCA coordinates."""
    from sklearn.decomposition import IncrementalPCA

    n_maps = sum(1 for rec in store.records() if rec.get("heat"))
    components = max(1, min(COMPONENTS, n_maps, size * size))
    pca = IncrementalPCA(n_components=components)
    from threadpoolctl import threadpool_limits

    # The SVDs are small (a chunk by MAP_SIZE² values): BLAS threads only wait for each
    # other, and on a busy machine they spin for tens of seconds.
    with threadpool_limits(limits=1, user_api="blas"):
        for _, reduced in _chunks(store, size):
            if len(reduced) >= components:  # a short last chunk is transformed, not fitted
                pca.partial_fit(reduced)
    got = _Pass(defaultdict(list), [], defaultdict(list), defaultdict(list), defaultdict(list),
                defaultdict(list), defaultdict(list), defaultdict(_Codes), components)
    for recs, reduced in _chunks(store, size):
        coords = pca.transform(reduced).astype(np.float32)
        cls = np.array([int(rec["target"]) for rec in recs])
        for c in np.unique(cls):
            got.features[int(c)].append(coords[cls == c])
        for rec, c in zip(recs, cls.tolist(), strict=True):
            got.class_of.append(c)
            got.keys[c].append(rec["key"])
            got.rows[c].append(int(rec["row"]))
            got.paths[c].append(rec.get("path"))
            share = rec.get("outside_body")
            share = float("nan") if share is None else float(share)
            got.outside[c].append(share)
            for g in group_keys(rec):
                got.by_group[g].append(share)
            got.codes[c].add(_metadata(rec))
    return got


def _exemplars(coords: np.ndarray, member: np.ndarray, entries: list[dict]) -> dict:
    """The members closest to the cluster's centre and farthest from it, with distances."""
    idx = np.flatnonzero(member)
    dist = np.linalg.norm(coords[idx] - coords[idx].mean(axis=0), axis=1)
    order = np.argsort(dist, kind="stable")
    central = order[:EXEMPLARS]
    atypical = [i for i in order[::-1][:EXEMPLARS] if i not in set(central.tolist())]
    pick = lambda sel: [{**entries[idx[i]], "distance": float(dist[i])} for i in sel]  # noqa: E731
    return {"central": pick(central), "atypical": pick(atypical)}


def _mean_maps(store: ResultStore, class_of: list[int], labels: dict[int, np.ndarray],
               ) -> tuple[dict[int, np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """Sum the stored maps per class and per (class, cluster), one batch file at a time."""
    class_sums: dict[int, np.ndarray] = {}
    cluster_sums: dict[tuple[int, int], np.ndarray] = {}
    seen: dict[int, int] = defaultdict(int)
    for i, (_, heat) in enumerate(store.heatmaps()):
        c = class_of[i]
        cl = int(labels[c][seen[c]])
        seen[c] += 1
        heat = np.clip(np.nan_to_num(heat.astype(np.float64)), 0.0, None)
        class_sums[c] = class_sums.get(c, 0.0) + heat
        cluster_sums[(c, cl)] = cluster_sums.get((c, cl), 0.0) + heat
    return class_sums, cluster_sums


def _peak_one(heat: np.ndarray) -> np.ndarray:
    top = float(heat.max()) if heat.size else 0.0
    return heat / top if top > 0 else heat


def _rounded(heat: np.ndarray) -> list:
    return np.round(heat.astype(np.float64), 4).tolist()


def discover(store: ResultStore, classes: Sequence[str], names: Mapping[str, str] | None = None,
             *, keep_identifiers: bool = False, k: int | None = None,
             neighbours: int = NEIGHBOURS, map_size: int = MAP_SIZE, title: str = "",
             ) -> Discovery:
    """Cluster each class's heatmaps and say what each cluster's members have in common.

    Parameters
    ----------
    store : ResultStore
        The audit's stored records and maps (streamed; never all in memory).
    classes : sequence of str
        The model's classes; an image counts under the class its map explains.
    names : mapping, optional
        Record key to the image's pseudonym (``case-001``); the key itself without it.
    keep_identifiers : bool
        List the exemplars' paths too (only when the audit kept them).
    k : int, optional
        Clusters per class; by default the eigengap of each class's affinity graph decides.
    neighbours : int
        Nearest neighbours per map in the affinity graph.
    map_size : int
        Side the maps are reduced to before clustering.
    title : str
        Title of the cluster figure.

    Returns
    -------
    Discovery
        ``clusters.json``'s content (see this module's docstring) and the figure.
    """
    if k is not None and int(k) < 1:
        from engine.core.errors import UsageError

        raise UsageError(f"cannot make {k} clusters", fix="ask for --clusters 1 or more")
    got = _first_passes(store, classes, map_size)
    labels: dict[int, np.ndarray] = {}
    entries: list[dict] = []
    for c in sorted(got.features):
        coords = np.concatenate(got.features[c])
        n = len(coords)
        entry: dict = {"class": classes[c], "n": n}
        if n < MIN_CLASS:
            labels[c] = np.zeros(n, np.int64)
            entry.update(k=1, k_suggested=None, k_source="too few", eigenvalues=[],
                         note=f"{n} maps: too few to cluster (it takes {MIN_CLASS})")
        else:
            graph = affinity(coords, neighbours)
            values = laplacian_spectrum(graph, MAX_CLUSTERS + 1)
            suggested = eigengap(values)
            chosen = suggested if k is None else min(int(k), n - 1)
            raw = spectral_labels(graph, chosen)
            # Cluster 0 is the largest: the order does not depend on k-means' labels.
            sizes = np.bincount(raw, minlength=chosen)
            rank = np.empty(chosen, np.int64)
            rank[np.argsort(-sizes, kind="stable")] = np.arange(chosen)
            labels[c] = rank[raw]
            entry.update(k=int(len(np.unique(raw))), k_suggested=suggested,
                         k_source="eigengap" if k is None else "user",
                         eigenvalues=[round(float(v), 6) for v in values])
        entry["_coords"] = coords
        entries.append(entry)
    class_sums, cluster_sums = _mean_maps(store, got.class_of, labels)
    out_classes = []
    for entry in entries:
        c = list(classes).index(entry["class"])
        coords = entry.pop("_coords")
        lab = labels[c]
        names_of = [image_entry({"key": key, **({"path": p} if keep_identifiers and p else {})},
                                names) for key, p in zip(got.keys[c], got.paths[c], strict=True)]
        class_map = class_sums[c] / max(1, len(lab))
        found = enrichments(lab, got.codes[c].arrays())
        outside = np.asarray(got.outside[c])
        rows = np.asarray(got.rows[c])
        clusters = []
        for cl in range(int(lab.max()) + 1 if len(lab) else 0):
            member = lab == cl
            if not member.any():
                continue
            mean = cluster_sums[(c, cl)] / int(member.sum())
            order = np.flatnonzero(member)[np.argsort(rows[member], kind="stable")]
            clusters.append({
                "id": cl,
                "size": int(member.sum()),
                "share": float(member.mean()),
                "mean_map": _rounded(_peak_one(mean)),
                "difference": map_difference(mean, class_map),
                "outside_body": summarise(outside[member]),
                "exemplars": _exemplars(coords, member, names_of),
                "members": [names_of[i]["case"] for i in order],
                "enriched": found.get(cl, []),
            })
        out_classes.append({**entry, "mean_map": _rounded(_peak_one(class_map)),
                            "clusters": clusters})
    every = [v for c in sorted(got.outside) for v in got.outside[c]]
    result = {
        "version": 1,
        "method": "spectral clustering of heatmaps (SpRAy)",
        "map_size": map_size,
        "mean_map_size": int(next(iter(class_sums.values())).shape[0]) if class_sums else None,
        "neighbours": neighbours,
        "components": got.components,
        "correction": CORRECTION,
        "alpha": ALPHA,
        "identifiers": "kept" if keep_identifiers else "removed",
        "figure": CLUSTERS_PNG,
        "outside_body": {
            "overall": summarise(every),
            "by_group": {g: summarise(v) for g, v in sorted(got.by_group.items())},
            "by_class": {classes[c]: summarise(v) for c, v in sorted(got.outside.items())},
        },
        "classes": out_classes,
    }
    from engine.core.jsonsafe import jsonable

    result = jsonable(result)
    return Discovery(result, cluster_figure(result, title) if out_classes else None)


def _headline(cluster: dict, count: int = 2) -> str:
    """The cluster's most over-represented values (significant ones), as ``site=B ×1.9``."""
    top = [e for e in cluster["enriched"] if e["significant"]][:count]
    # Long DICOM values (an institution's name) are cut so that cells do not overlap.
    cut = lambda text: text if len(text) <= 20 else text[:19] + "…"  # noqa: E731
    return "\n".join(f"{cut(e['attribute'] + '=' + e['value'])} ×{e['enrichment']:.1f}"
                     for e in top)


def finding_lines(result: dict) -> list[str]:
    """One line per cluster with a significant enrichment, for the command line's summary.

    E.g. ``cluster nodule #4 (20 images, 55% of saliency outside the body): site=B ×1.53
    (p adj 0.0016)``.
    """
    lines = []
    for entry in result["classes"]:
        for cl in entry["clusters"]:
            found = [e for e in cl["enriched"] if e["significant"]][:2]
            if not found:
                continue
            what = ", ".join(f"{e['attribute']}={e['value']} ×{e['enrichment']:.2f} "
                             f"(p adj {e['p_adjusted']:.2g})" for e in found)
            lines.append(f"cluster {entry['class']} #{cl['id']} ({cl['size']} images, "
                         f"{_pct(cl['outside_body'])} of saliency outside the body): {what}")
    return lines


def cluster_figure(result: dict, title: str = "") -> bytes:
    """PNG of the mean maps: one row per class, its typical map first, then its clusters."""
    from matplotlib.figure import Figure

    from engine.audit.outputs import heat_rgb

    rows = result["classes"]
    cols = 1 + max(len(entry["clusters"]) for entry in rows)
    fig = Figure(figsize=(1.6 * cols + 0.4, 1.9 * len(rows) + 0.5), dpi=110)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, entry in enumerate(rows):
        cells = [(f"all (n={entry['n']})", entry["mean_map"], "")]
        cells += [(f"#{cl['id']} (n={cl['size']})", cl["mean_map"], _headline(cl))
                  for cl in entry["clusters"]]
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(cells):
                ax.axis("off")
                continue
            label, heat, note = cells[j]
            ax.imshow(heat_rgb(np.asarray(heat, dtype=np.float32)))
            ax.set_title(label, fontsize=7)
            if note:
                ax.set_xlabel(note, fontsize=6, color="#b00020")
            if j == 0:
                ax.set_ylabel(entry["class"], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _pct(summary: dict) -> str:
    mean = summary.get("mean")
    return "–" if mean is None else f"{mean:.0%}"


def report_section(result: dict, figure: bytes | None) -> list:
    """The report's "Discovered clusters" section, as reportlab flowables."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, TableStyle

    from engine.audit.outputs import _table

    styles = getSampleStyleSheet()
    story = [
        Paragraph("Discovered clusters (no regions given)", styles["Heading2"]),
        Paragraph(escape(
            "Per class, the heatmaps were clustered (spectral clustering of a "
            f"{result['neighbours']}-nearest-neighbour graph; the eigengap chose the number of "
            "clusters unless it was set). Enrichment: Fisher's exact test, one-sided, "
            f"p adjusted by Benjamini–Hochberg within each class; significant below "
            f"{result['alpha']}. Outside body: share of saliency outside the body found in "
            f"each image. Overall {_pct(result['outside_body']['overall'])}."),
            styles["Normal"]),
    ]
    rows = [["class", "cluster", "n", "outside body", "moved", "most over-represented"]]
    for entry in result["classes"]:
        for cl in entry["clusters"]:
            top = cl["enriched"][0] if cl["enriched"] else None
            text = (f"{top['attribute']}={top['value']} ×{top['enrichment']:.2f} "
                    f"(p adj {top['p_adjusted']:.2g})") if top else "–"
            rows.append([entry["class"], f"#{cl['id']}", str(cl["size"]),
                         _pct(cl["outside_body"]), f"{cl['difference']['moved']:.0%}", text])
    by_group = result["outside_body"]["by_group"]
    if by_group:
        rows.append(["", "", "", "", "", ""])
        rows += [["outside body", g, str(s["n"]), _pct(s), "", ""] for g, s in by_group.items()]
    story.append(_table(rows, colors, TableStyle))
    if figure is not None:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(figure)) as im:
            w, h = im.size
        scale = min(17 * cm / w, 20 * cm / h)
        story.append(Image(io.BytesIO(figure), width=w * scale, height=h * scale))
    return story
