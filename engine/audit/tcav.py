"""Concept tests: TCAV (Kim et al. 2018, "Interpretability beyond feature attribution").

The user gives a concept as a folder of example images (a ruler, a marker, a text label) and at
least :data:`MIN_RANDOM` folders of random images. At one layer:

1. the concept activation vector (CAV) is the normal of a linear classifier (scikit-learn's
   ridge classifier, :func:`cav_classifier`) that separates the layer's activations of the
   concept's examples from those of one random folder, pointing towards the concept;
2. the TCAV score of a class is the share of that class's images whose class logit grows along
   the CAV: the directional derivative ``grad_layer(logit_k) . CAV`` is positive;
3. one CAV per random folder gives one score each; CAVs between two random folders (each
   random folder against the next) give the scores a concept with no meaning gets. A two-sided
   t-test (``scipy.stats.ttest_ind``) of the two sets says whether the concept's score is
   significant at ``alpha``; when it is not, the result says "not significant".

Activations and gradients come from the explain core's one capture pass
(:func:`engine.explain.capture.run_capture`): the gradient is that of the class logit, as in
the paper and in Captum's ``TCAV``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.audit.tcav_settings import MIN_RANDOM, TcavSettings
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import LucidaError, UsageError

#: Images per forward (and backward) pass.
BATCH = 32


def cav_classifier(seed: int = 0):
    """The linear classifier every CAV is the normal of: a ridge (L2) classifier.

    Its solution is exact (no iterations to converge on separable activations, where a
    logistic regression's weights keep growing) and does not depend on the order of the
    examples, so the same activations always give the same CAV, in seconds for a deep layer's
    tens of thousands of features. ``seed`` is kept for solvers that draw.
    """
    from sklearn.linear_model import RidgeClassifier

    return RidgeClassifier(alpha=1.0, random_state=seed)


def fit_cav(concept: np.ndarray, other: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """The CAV separating ``concept`` activations from ``other`` ones, and its training accuracy.

    Parameters
    ----------
    concept, other : ndarray
        (n, F) flattened activations of the concept's examples and of the counterexamples.
    seed : int
        Seed of :func:`cav_classifier`.

    Returns
    -------
    cav : ndarray
        (F,) the classifier's weights, pointing towards the concept.
    accuracy : float
        Share of the examples the classifier puts on the right side.
    """
    x = np.concatenate([concept, other]).astype(np.float64)
    y = np.r_[np.ones(len(concept), dtype=int), np.zeros(len(other), dtype=int)]
    clf = cav_classifier(seed).fit(x, y)
    # Two classes: one weight vector, towards classes_[1] (the concept).
    return np.asarray(clf.coef_, dtype=np.float64).reshape(-1, x.shape[1])[0].copy(), \
        float(clf.score(x, y))


def read_examples(folder: str | Path, model) -> tuple[torch.Tensor, list[str]]:
    """Every image of ``folder`` as the model's input, and the files that could not be read.

    Raises
    ------
    UsageError
        The folder does not exist or holds no image the model can read.
    """
    from engine.studies.image import open_image

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError("concept folder not found", path=folder,
                         fix="pass a folder of example images")
    inputs, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            inputs.append(model.preprocess(open_image(path)))
        except (LucidaError, OSError, ValueError):
            skipped.append(path.name)
    if not inputs:
        raise UsageError("the folder holds no image the model can read", path=folder,
                         fix="put the concept's example images (PNG, JPEG or DICOM) in it")
    return torch.cat(inputs), skipped


def random_folders(folders: Sequence[str | Path]) -> list[Path]:
    """The random concept folders: each folder given, or the subfolders of a folder of folders."""
    out = []
    for folder in map(Path, folders):
        subs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        has_files = folder.is_dir() and any(p.is_file() for p in folder.iterdir())
        out += subs if subs and not has_files else [folder]
    return out


def _flat(tensors: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
    return tensors[layer].detach().float().flatten(1).cpu()


def layer_activations(model, x: torch.Tensor, layer: str) -> np.ndarray:
    """(N, F) activations of ``layer`` for a batch of model inputs, flattened."""
    from engine.explain.capture import run_capture

    parts = [_flat(run_capture(model, x[i:i + BATCH].to(model.device), "top", [layer],
                               gradients=False).activations, layer)
             for i in range(0, len(x), BATCH)]
    return torch.cat(parts).numpy()


def layer_gradients(model, x: torch.Tensor, layer: str, target: int) -> np.ndarray:
    """(N, F) gradients of class ``target``'s logit with respect to ``layer``, flattened."""
    from engine.explain.capture import run_capture

    parts = [_flat(run_capture(model, x[i:i + BATCH].to(model.device), target, [layer],
                               gradients=True).gradients, layer)
             for i in range(0, len(x), BATCH)]
    return torch.cat(parts).numpy()


def tcav_score(gradients: np.ndarray, cav: np.ndarray) -> float:
    """Share of inputs whose directional derivative along ``cav`` is positive."""
    return float(np.mean(gradients.astype(np.float64) @ cav > 0.0))


def significance(concept_scores: Sequence[float], random_scores: Sequence[float],
                 alpha: float) -> dict:
    """The paper's two-sided t-test of the concept's scores against random CAVs' scores.

    Returns
    -------
    dict
        ``t``, ``p_value``, ``significant`` and ``verdict`` (``"significant"`` or ``"not
        significant"``); a test that cannot be made (no spread in either set) is not
        significant.
    """
    from scipy.stats import ttest_ind

    t, p = ttest_ind(concept_scores, random_scores)
    significant = bool(np.isfinite(p) and p < alpha)
    return {"t": float(t), "p_value": float(p), "significant": significant,
            "verdict": "significant" if significant else "not significant"}


def inputs_by_class(model, x: torch.Tensor, labels: Sequence[list[int] | None],
                    ) -> dict[int, torch.Tensor]:
    """The inputs of each class: labelled ones under their label(s), the rest under the model's
    prediction (its argmax, or every class at the threshold for a sigmoid model)."""
    from engine.explain import core

    scores = core.predict(model, x) if any(lab is None for lab in labels) else None
    members: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        if lab is None:
            if getattr(model, "output", "softmax") == "sigmoid":
                lab = [int(c) for c in torch.nonzero(scores[i] >= model.threshold).flatten()]
            else:
                lab = [int(scores[i].argmax())]
        for c in lab:
            members.setdefault(c, []).append(i)
    return {c: x[idx] for c, idx in sorted(members.items())}


def run_tcav(model, layer: str, concept: torch.Tensor, randoms: Sequence[torch.Tensor],
             inputs: dict[int, torch.Tensor], settings: TcavSettings | None = None,
             progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> dict:
    """TCAV scores per class and their significance, for one concept at one layer.

    Parameters
    ----------
    model : LoadedModel
        The classifier.
    layer : str
        The layer the CAVs live in.
    concept : torch.Tensor
        (n, C, H, W) model inputs of the concept's examples.
    randoms : sequence of torch.Tensor
        Model inputs of each random concept (at least :data:`MIN_RANDOM`).
    inputs : dict
        Class index to the (m, C, H, W) inputs scored for it.
    settings : TcavSettings, optional
        Significance level and classifier seed.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    dict
        ``layer``, ``random_concepts``, ``cav_accuracy`` (mean, per random folder) and
        ``classes``: per class name, ``n``, ``score`` (mean over the random folders),
        ``scores``, ``random_scores``, ``random_score`` and the t-test (:func:`significance`).

    Raises
    ------
    UsageError
        Fewer than :data:`MIN_RANDOM` random concepts.
    """
    settings = settings or TcavSettings()
    progress = progress or (lambda f, m="": None)
    cancel = cancel or CancelToken()
    if len(randoms) < MIN_RANDOM:
        raise UsageError(f"{len(randoms)} random concepts given; the significance test needs at "
                         f"least {MIN_RANDOM}", fix=f"pass {MIN_RANDOM} or more --random folders")
    from engine.explain.core import resolve_layers

    resolve_layers(model, [layer])
    progress(0.0, "activations of the concept and random examples…")
    concept_acts = layer_activations(model, concept, layer)
    random_acts = []
    for r in randoms:
        cancel.check()
        random_acts.append(layer_activations(model, r, layer))
    k = len(random_acts)
    cavs, random_cavs, accuracy = [], [], []
    for i in range(k):
        cancel.check()
        progress(0.2 + 0.6 * i / k, f"CAVs {i + 1}/{k}")
        cav, acc = fit_cav(concept_acts, random_acts[i], settings.seed)
        cavs.append(cav)
        accuracy.append(acc)
        random_cavs.append(fit_cav(random_acts[i], random_acts[(i + 1) % k], settings.seed)[0])
    classes = {}
    for c, x in inputs.items():
        cancel.check()
        grads = layer_gradients(model, x, layer, c)
        scores = [tcav_score(grads, cav) for cav in cavs]
        random_scores = [tcav_score(grads, cav) for cav in random_cavs]
        classes[model.classes[c]] = {
            "n": len(x), "score": float(np.mean(scores)), "scores": scores,
            "random_score": float(np.mean(random_scores)), "random_scores": random_scores,
            **significance(scores, random_scores, settings.alpha),
        }
    progress(1.0, "TCAV done")
    return {"layer": layer, "random_concepts": k, "alpha": settings.alpha,
            "cav_accuracy": {"mean": float(np.mean(accuracy)), "per_random": accuracy},
            "classes": classes}


def tcav_dataset(source: str | Path, model) -> tuple[torch.Tensor, list[list[int] | None]]:
    """The images a TCAV run scores: a manifest CSV's or a DICOM folder's, with their labels."""
    from engine.audit.loading import label_set
    from engine.audit.manifest import load_dataset
    from engine.studies.image import open_image

    dataset = load_dataset(source)
    xs, labels = [], []
    for row in dataset.rows:
        try:
            xs.append(model.preprocess(open_image(row.path)))
        except (LucidaError, OSError, ValueError):
            continue
        labels.append(label_set(row.label, model.classes) or None)
    if not xs:
        raise UsageError("no image of the dataset could be read", path=source,
                         fix="check the manifest's paths")
    return torch.cat(xs), labels


def tcav_report(model, layer: str, concept_folder: str | Path,
                random: Sequence[str | Path], dataset: str | Path,
                settings: TcavSettings | None = None, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> dict:
    """Read the concept, random folders and dataset, run :func:`run_tcav`, say what was read.

    Returns
    -------
    dict
        ``tcav.json``: the model, the concept's name and example count, the random concepts'
        names, and :func:`run_tcav`'s result.
    """
    concept_folder = Path(concept_folder)
    folders = random_folders(random)
    if len(folders) < MIN_RANDOM:
        raise UsageError(f"{len(folders)} random concepts given; the significance test needs "
                         f"at least {MIN_RANDOM}", fix=f"pass {MIN_RANDOM} or more --random "
                         "folders")
    concept, skipped = read_examples(concept_folder, model)
    randoms = [read_examples(f, model)[0] for f in folders]
    x, labels = tcav_dataset(dataset, model)
    result = run_tcav(model, layer, concept, randoms, inputs_by_class(model, x, labels),
                      settings, progress, cancel)
    return {"model": {"name": model.name, "sha256": model.sha256},
            "concept": {"name": concept_folder.name, "examples": len(concept),
                        "skipped": skipped},
            "random": [f.name for f in folders],
            "classifier": "ridge classifier (scikit-learn, alpha=1)",
            "test": "two-sided t-test (scipy.stats.ttest_ind), concept vs random CAVs",
            **result}
