"""Trust metrics: is this heatmap faithful to the model, and does it point at the lesion?

- :mod:`engine.metrics.faithfulness`: deletion/insertion curves and AUC, Average Drop, Increase
  in Confidence.
- :mod:`engine.metrics.sanity`: cascading model randomisation and class sensitivity.
- :mod:`engine.metrics.localisation`: pointing game, energy in ROI, IoU.
- :func:`case_metrics`: all of them for one map of one case (CLI ``--metrics`` and the GUI).
"""

__all__ = ["case_metrics"]


def __getattr__(name: str):
    # Imported on first use: case_metrics needs torch, and the GUI thread measures ROIs with
    # engine.metrics.roi_stats without importing torch.
    if name == "case_metrics":
        from engine.metrics.case import case_metrics

        return case_metrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
