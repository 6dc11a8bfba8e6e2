"""Two models, one case: a figure with each model's name, prediction and map side by side.

Both maps explain the same image with the same method and the same class (by name), each at
its model's own default layer. Raw map values of two models are in no common unit, so each map
is shown against its own peak, as the compare view shows them; the caption says so.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from engine.core.atomic import write_atomic
from engine.core.errors import UsageError
from engine.explain.colour import blend, colormap_lut, diverging_lut
from engine.export.figure import (
    DISCLAIMER,
    DRAW_LOCK,
    FigureOptions,
    RenderedFigure,
    burn_in_annotations,
    display_heat,
    enlarge,
    figure_png,
    pixel_box,
    probability_text,
    window_used,
)
from engine.export.identity import case_scrubber
from engine.export.provenance import method_title

_FONT = 8.0
_CAPTION_FONT = 7.0


def _only_map(result):
    if len(result.maps) != 1:
        have = ", ".join(f"{m}/{lay}" for m, lay in result.maps) or "none"
        raise UsageError(f"a model comparison needs one map per model, found {have}",
                         fix="explain each model with one method at its default layer")
    return next(iter(result.maps.values()))


def _prediction(result) -> str:
    p = probability_text(float(result.scores[result.target]))
    return f"'{result.target_name}' p {p}" if p[0] in "<>" else f"'{result.target_name}' p = {p}"


def comparison_caption(results, window=None) -> str:
    """The caption of a model comparison: method, class, each model with its prediction.

    Parameters
    ----------
    results : sequence of ExplainResult
        One per model, each holding one map.
    window : (center, width), optional
        The window the image is shown at.

    Returns
    -------
    str
        One paragraph; it never holds patient identifiers.
    """
    items = [_only_map(r) for r in results]
    models = "; ".join(
        f"({chr(97 + i)}) {r.model.get('name', 'unknown')}, layer {item.layer}, "
        f"{_prediction(r)}" for i, (r, item) in enumerate(zip(results, items, strict=True)))
    shown = f" Window C {window[0]:g} / W {window[1]:g}." if window is not None else ""
    return (f"{method_title(items[0].method)} maps of {len(results)} models for class "
            f"'{results[0].target_name}' on the same image: {models}. Each map is scaled to "
            f"its own peak (1): raw values of different models are not comparable.{shown} "
            f"{DISCLAIMER}")


def render_model_comparison(results, image, options: FigureOptions | None = None, *,
                            keep_identifiers: bool = False) -> RenderedFigure:
    """Draw model A | model B (or more) on one image, each titled with its name and prediction.

    Parameters
    ----------
    results : sequence of ExplainResult
        One result per model for the same image, frame, method and class; each holds one map.
    image : Image
        The image explained.
    options : FigureOptions, optional
        Display settings (window, invert, opacity, colour map, threshold, dpi, corners); the
        layout is always one panel per model.
    keep_identifiers : bool
        With ``options.corners``, burn in identifiers too (de-identified corners otherwise).

    Returns
    -------
    RenderedFigure

    Raises
    ------
    UsageError
        With fewer than two results, results for different images, frames, methods or
        classes, or a result with other than one map.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    results = list(results)
    if len(results) < 2:
        raise UsageError("a model comparison needs two results", fix="explain a second model")
    items = [_only_map(r) for r in results]
    first = results[0]
    for r, item in zip(results[1:], items[1:], strict=True):
        if (r.image_path, r.frame, r.target_name, item.method) != (
                first.image_path, first.frame, first.target_name, items[0].method):
            raise UsageError("the compared results differ in image, frame, class or method",
                             fix="explain both models on the same case with the same method")
    options = options or FigureOptions()
    window = window_used(image, options, first.frame)
    base = image.render(first.frame, window=options.window, invert=options.invert)
    img_h, img_w = base.shape[:2]
    n = len(results)
    width = float(options.width_in or 7.0)
    pad, gap, title_h = 0.06, 0.08, 0.36
    right = 0.08 + 0.11 + 0.42
    panel_w = (width - 2 * pad - right - gap * (n - 1)) / n
    panel_h = panel_w * img_h / img_w
    scale = panel_w * options.dpi / img_w
    factor = int(min(scale, 8.0)) if scale >= 1.0 else 1
    caption = comparison_caption(results, window)
    chars = int((width - 2 * pad) * 72 / (_CAPTION_FONT * 0.56))
    lines = textwrap.wrap(caption, chars) if options.caption else []
    caption_h = len(lines) * _CAPTION_FONT * 1.32 / 72 + 0.12 if lines else 0.0
    height = pad + title_h + panel_h + caption_h + pad
    signed = any(item.signed for item in items)
    rc = {"font.family": "DejaVu Sans", "font.size": _FONT, "axes.linewidth": 0.5,
          "ytick.labelsize": _FONT - 1}
    boxes, burned = [], []
    with DRAW_LOCK, rc_context(rc):
        fig = Figure(figsize=(width, height), dpi=options.dpi, facecolor="white")
        FigureCanvasAgg(fig)
        y = height - pad - title_h - panel_h
        for i, (result, item) in enumerate(zip(results, items, strict=True)):
            x = pad + i * (panel_w + gap)
            heat = display_heat(item, FigureOptions())  # its own peak, as the engine scaled it
            rgb = enlarge(blend(base, heat, cmap=options.colormap, opacity=float(options.opacity),
                                threshold=float(options.threshold), signed=bool(item.signed)),
                          factor)
            ax = fig.add_axes((x / width, y / height, panel_w / width, panel_h / height))
            ax.set_axis_off()
            ax.imshow(rgb, interpolation="nearest" if scale >= 1.0 else "antialiased",
                      aspect="auto")
            if options.corners:
                burned = burn_in_annotations(ax, image, first.frame, window,
                                             keep_identifiers=keep_identifiers)
            name = str(result.model.get("name", "unknown"))
            fig.text(x / width, (y + panel_h + 0.19) / height, f"{chr(97 + i)}  {name}",
                     ha="left", va="bottom", fontsize=_FONT + 0.5, fontweight="bold")
            fig.text(x / width, (y + panel_h + 0.04) / height,
                     f"{_prediction(result)} · {method_title(item.method)} at {item.layer}",
                     ha="left", va="bottom", fontsize=_FONT - 0.5, color="0.2")
            boxes.append((name, pixel_box(x, y, panel_w, panel_h, height, options.dpi)))
        cb_h = min(panel_h, 2.2)
        cax = fig.add_axes(((width - right + 0.08) / width, (y + (panel_h - cb_h) / 2) / height,
                            0.11 / width, cb_h / height))
        lut = (diverging_lut() if signed else colormap_lut(options.colormap)).astype(np.float32)
        low = -1.0 if signed else 0.0
        mappable = ScalarMappable(norm=Normalize(low, 1.0), cmap=ListedColormap(lut / 255.0))
        cbar = fig.colorbar(mappable, cax=cax, ticks=[low, (low + 1) / 2, 1.0])
        cbar.outline.set_linewidth(0.5)
        cbar.set_label("Share of each map's peak", fontsize=_FONT - 0.5, labelpad=3)
        if lines:
            fig.text(pad / width, (pad + caption_h - 0.06) / height, "\n".join(lines),
                     ha="left", va="top", fontsize=_CAPTION_FONT, linespacing=1.25,
                     color="0.15")
        fig.canvas.draw()
        rgb_out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    return RenderedFigure(rgb=rgb_out, caption=caption, dpi=int(options.dpi),
                          title="Lucida model comparison", panels=boxes, burned_in=burned)


def write_model_comparison(results, image, path: Path | str,
                           options: FigureOptions | None = None, *,
                           keep_identifiers: bool = False) -> Path:
    """Draw a model comparison and write it as PNG, all or nothing.

    The PNG's text chunks are scrubbed and its bytes checked for the patient's name and ID
    unless ``keep_identifiers``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    UsageError
        As :func:`render_model_comparison`.
    ExportError
        If the file cannot be written, or would still hold an identifier.
    """
    figure = render_model_comparison(results, image, options,
                                     keep_identifiers=keep_identifiers)
    scrubber = case_scrubber(image, keep_identifiers)
    data = figure_png(figure, scrubber)
    scrubber.check(data, str(path))
    return write_atomic(path, data)
