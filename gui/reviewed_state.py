"""The window's state an export reproduces and records, read as one value."""

from __future__ import annotations

from engine.export import ReviewedView


def reviewed_view(window) -> ReviewedView:
    """The window's state an export reproduces and records, as one value.

    The display (:meth:`view_state`), the colour scale, the ROI, the contrasted class, the
    trust metrics of the map and ROI on screen (none while the trust panel has not measured
    them), the reviewer's verdict and a multi-label model's finding threshold.

    Parameters
    ----------
    window : QtMainWindow
        The window.

    Returns
    -------
    ReviewedView
    """
    classes = list(getattr(window.model, "classes", []) or [])
    versus = window.versus
    return ReviewedView.from_state(
        window.view_state(),
        scale=window.layer_model.scale,
        roi=window.roi,
        roi_shape=window.roi_shape,
        versus=None if versus is None or versus >= len(classes) else classes[versus],
        metrics=window.metrics.shown_metrics(),
        # The window's verdict control sets ``verdict``; a window without one records none.
        verdict=getattr(window, "verdict", None),
        # A multi-label model's findings are those at or above the threshold shown.
        finding_threshold=window.panel.finding_threshold(),
    )
