"""What the reviewer saw, as one value an export records: the map, its display, its measures.

The window hands :class:`ReviewedView` to :func:`engine.export.write_reports`, the CLI's
arguments become one (:func:`reviewed_view`), and a report records the same fields either way:
the trust metrics computed for the map shown, the colour scale, the ROI, the contrasted class
(``versus``), the display window, and the reviewer's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from engine.core.case import Verdict
from engine.explain.scale import SCALE_TEXT
from engine.export.figure import FigureOptions

__all__ = ["SCALE_TEXT", "ReviewedView", "review_record", "reviewed_view"]

#: The fields of :class:`ReviewedView` that :class:`FigureOptions` draws with.
_FIGURE_FIELDS = ("method", "layer", "window", "invert", "opacity", "colormap", "threshold",
                  "heat_offset", "heat_gain", "compare", "corners")


@dataclass(frozen=True)
class ReviewedView:
    """The state of the review window an export reproduces and records.

    Attributes
    ----------
    method, layer : str or None
        The map on screen (None: the result's first map).
    window : (float, float) or None
        Display window (center, width); None for the image's default.
    invert, opacity, colormap, threshold, heat_offset, heat_gain, compare, corners
        Display settings, as in :class:`engine.export.figure.FigureOptions`.
    scale : str
        The colour scale: a key of :data:`SCALE_TEXT`.
    roi : tuple of float or None
        ``(x0, y0, x1, y1)`` in image pixels.
    roi_shape : str
        ``box`` or ``ellipse``.
    versus : str or None
        The contrasted class, when the map explains one class against another.
    metrics : dict or None
        The trust metrics computed for the map on screen (and the ROI).
    verdict : Verdict or None
        The reviewer's verdict on the case.
    finding_threshold : float or None
        For a multi-label model, the probability at or above which a class was shown as a
        finding; None: the model card's.
    """

    method: str | None = None
    layer: str | None = None
    window: tuple[float, float] | None = None
    invert: bool = False
    opacity: float = 0.5
    colormap: str = "jet"
    threshold: float = 0.0
    heat_offset: float = 0.0
    heat_gain: float = 1.0
    compare: tuple[tuple[str, str], ...] | None = None
    corners: bool = False
    scale: str = "fixed"
    roi: tuple[float, ...] | None = None
    roi_shape: str = "box"
    versus: str | None = None
    metrics: dict | None = field(default=None, compare=False, hash=False)
    verdict: Verdict | None = None
    finding_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALE_TEXT:
            raise ValueError(f"scale must be one of {', '.join(SCALE_TEXT)}, not {self.scale!r}")
        if self.window is not None:
            object.__setattr__(self, "window", tuple(float(v) for v in self.window))
        if self.roi is not None:
            object.__setattr__(self, "roi", tuple(float(v) for v in self.roi))
        if self.compare is not None:
            object.__setattr__(self, "compare",
                               tuple((str(m), str(lay)) for m, lay in self.compare) or None)
        if self.metrics is not None:
            object.__setattr__(self, "metrics", dict(self.metrics))

    @classmethod
    def from_state(cls, state: dict | None, **extra: Any) -> ReviewedView:
        """Build the view from the window's view-state dict; unknown keys are ignored.

        Parameters
        ----------
        state : dict, optional
            ``{"method", "layer", "window", ...}`` (see the attributes); None values keep
            the defaults.
        **extra
            Any attribute, e.g. ``metrics`` or ``verdict``.
        """
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in dict(state or {}).items() if k in known and v is not None}
        kwargs.update(extra)
        return cls(**kwargs)

    def figure_options(self, **layout: Any) -> FigureOptions:
        """The figure options that draw this view, with ``layout`` (``kind``, ``dpi``...)."""
        state = {name: getattr(self, name) for name in _FIGURE_FIELDS}
        return FigureOptions.from_view_state(state, **layout)


def reviewed_view(result, view: ReviewedView | None = None,
                  figure_options: FigureOptions | dict | None = None,
                  metrics: dict | None = None) -> ReviewedView:
    """The view one export records, from whichever the caller has.

    Parameters
    ----------
    result : ExplainResult
        The explanation; its contrasted class is the view's when the view names none.
    view : ReviewedView, optional
        The window's state (the GUI).
    figure_options : FigureOptions or dict, optional
        Display settings, when there is no view (the CLI).
    metrics : dict, optional
        Trust metrics; they replace the view's, and their ``roi`` is the view's ROI when it
        has none.

    Returns
    -------
    ReviewedView
    """
    if view is None:
        if isinstance(figure_options, FigureOptions):
            state = {name: getattr(figure_options, name) for name in _FIGURE_FIELDS}
        else:
            state = dict(figure_options or {})
        view = ReviewedView.from_state(state)
    if metrics is not None:
        view = replace(view, metrics=metrics)
    if view.roi is None and isinstance((view.metrics or {}).get("roi"), list | tuple):
        view = replace(view, roi=tuple(view.metrics["roi"]))
    if view.versus is None and getattr(result, "versus", None) is not None:
        view = replace(view, versus=str(result.versus))
    return view


def review_record(view: ReviewedView, window: list[float] | None) -> dict:
    """What a report records of the view besides the figure settings (JSON-ready).

    Parameters
    ----------
    view : ReviewedView
    window : list of float or None
        The window the figures show the image at (the view's, or the image's default).
    """
    return {
        "scale": view.scale,
        "scale_text": SCALE_TEXT[view.scale],
        "roi": None if view.roi is None else list(view.roi),
        "roi_shape": view.roi_shape if view.roi is not None else None,
        "versus": view.versus,
        "window": window,
        "verdict": None if view.verdict is None else view.verdict.as_dict(),
    }
