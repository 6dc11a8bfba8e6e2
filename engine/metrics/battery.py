"""The trust battery of one map: :func:`engine.metrics.case.case_metrics` and the prediction's
uncertainty (:mod:`engine.metrics.uncertainty`), as the trust panel, ``explain --metrics``,
``engine.api`` and the reports show them.
"""

from __future__ import annotations

from typing import Any

from engine.core.cancel import CancelToken, ProgressFn, no_progress

#: Share of the progress bar the metrics take before the uncertainty runs.
METRICS_SHARE = 0.8


def trust_battery(session: Any, result: Any, image: Any, model: Any, method: str, layer: str,
                  roi: Any = None, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None, *, uncertainty: bool = True,
                  seed: int = 0, augmentations: int = 20, **kwargs: Any) -> dict:
    """Measure one map: the keys of :func:`engine.metrics.case.case_metrics` plus
    ``uncertainty`` (:func:`engine.metrics.uncertainty.prediction_uncertainty`).

    Parameters
    ----------
    session, result, image, model, method, layer, roi
        As for :func:`engine.metrics.case.case_metrics`.
    progress, cancel
        Progress callback over the whole battery, and cancel token.
    uncertainty : bool
        Whether to run the test-time augmentation and MC dropout.
    seed : int
        Seed of the augmentations and dropout draws, recorded in the result.
    augmentations : int
        How many test-time augmentations.
    **kwargs
        Passed on to :func:`engine.metrics.case.case_metrics` (``roi_shape``, ``sanity``...).
    """
    from engine.metrics.case import case_metrics
    from engine.metrics.uncertainty import case_uncertainty

    report = progress or no_progress
    share = METRICS_SHARE if uncertainty else 1.0
    out = case_metrics(session, result, image, model, method, layer, roi=roi,
                       progress=lambda f, m="": report(share * f, m), cancel=cancel, **kwargs)
    if uncertainty:
        out["uncertainty"] = case_uncertainty(
            result, image, model, method, layer, seed=seed, n=augmentations, cancel=cancel,
            progress=lambda f, m="": report(share + (1 - share) * f, m))
        report(1.0, "uncertainty done")
    return out
