"""Annotated figures for papers and patient files: image, overlay, colour scale and caption.

Three layouts share one renderer:

* ``overlay``: the image with the heatmap drawn over it;
* ``side_by_side``: the original | the overlay;
* ``grid``: every map of a result, methods by layers (the compare grid).

Matplotlib draws on its Agg canvas (no pyplot, so no global figure state and safe off the GUI
thread). The overlay is blended in image geometry by :func:`engine.explain.colour.blend`, as the
viewer colours it, and only then enlarged pixel by pixel for print: every image pixel of a
figure has exactly the viewer's colour, whatever the threshold.
"""

from __future__ import annotations

import io
import textwrap
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import PngImagePlugin

from engine.core.errors import UsageError
from engine.core.versions import app_version
from engine.explain.colour import blend, colormap_lut, diverging_lut
from engine.export.deid import Scrubber
from engine.export.provenance import method_title
from engine.studies.annotations import corner_text
from engine.studies.orientation import edge_labels

KINDS = ("overlay", "side_by_side", "grid")
#: Single-column and double-column journal widths, in inches.
_WIDTHS = {"overlay": 3.5, "side_by_side": 7.0, "grid": 7.0}
DISCLAIMER = "Research use only. Not for diagnostic use."
_FONT = 8.0
_CAPTION_FONT = 7.0
# Matplotlib's rc settings are process-wide: one figure is drawn at a time (GUI preview and
# export threads may both draw).
DRAW_LOCK = threading.Lock()


@dataclass
class FigureOptions:
    """How a figure looks: layout, size, and the viewer state it reproduces.

    Parameters
    ----------
    kind : str
        ``"overlay"``, ``"side_by_side"`` or ``"grid"``.
    dpi : int
        Pixels per inch of the PNG; 300 for print.
    width_in : float, optional
        Figure width in inches; defaults to 3.5 (one journal column) for ``overlay``
        and 7.0 (two columns) otherwise.
    window : tuple of float, optional
        (center, width) display window; None for the image's default.
    invert : bool
        Show the image inverted.
    opacity, colormap, threshold
        Overlay settings, as in :func:`engine.explain.colour.blend`.
    method, layer : str, optional
        The map to show; None for the result's first map.
    caption : bool
        Draw the caption under the panels; reports print it as text instead.
    heat_offset, heat_gain : float
        How the viewer maps a heatmap value to colour: ``(heat - offset) * gain``, clipped to
        [0, 1] ([-1, 1] for signed maps). The defaults show the map as the engine scaled it
        (peak 1); the viewer's absolute scale makes a weak map faint.
    compare : tuple of (method, layer), optional
        The maps of the compare grid when it is shown; None when it is not.
    corners : bool
        Burn the viewer's corner annotations and orientation markers into every image panel;
        de-identified unless the figure is drawn with identifiers kept.
    """

    kind: str = "side_by_side"
    dpi: int = 300
    width_in: float | None = None
    window: tuple[float, float] | None = None
    invert: bool = False
    opacity: float = 0.5
    colormap: str = "jet"
    threshold: float = 0.0
    method: str | None = None
    layer: str | None = None
    caption: bool = True
    heat_offset: float = 0.0
    heat_gain: float = 1.0
    compare: tuple[tuple[str, str], ...] | None = None
    corners: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown figure kind {self.kind!r}", fix=f"use one of {KINDS}")
        if not 30 <= int(self.dpi) <= 1200:
            raise UsageError(f"figure resolution {self.dpi} dpi is out of range", fix="use 30-1200")

    @property
    def width(self) -> float:
        """The figure width in inches."""
        return float(self.width_in or _WIDTHS[self.kind])

    @classmethod
    def from_view_state(cls, view_state: dict | None, **overrides: Any) -> FigureOptions:
        """Build options from the GUI's view state.

        Parameters
        ----------
        view_state : dict, optional
            ``{"window", "invert", "opacity", "colormap", "threshold", "method", "layer",
            "heat_offset", "heat_gain", "compare", "corners"}``; missing keys keep their
            defaults.
            ``compare`` lists the (method, layer) pairs of the compare grid when it is shown.
        **overrides
            Any field, e.g. ``kind`` or ``dpi``.

        Returns
        -------
        FigureOptions
        """
        state = dict(view_state or {})
        known = {"window", "invert", "opacity", "colormap", "threshold", "method", "layer",
                 "heat_offset", "heat_gain", "compare", "corners"}
        kwargs = {k: v for k, v in state.items() if k in known and v is not None}
        if "window" in kwargs:
            kwargs["window"] = tuple(float(v) for v in kwargs["window"])
        if "compare" in kwargs:
            kwargs["compare"] = tuple((str(m), str(lay)) for m, lay in kwargs["compare"]) or None
        kwargs.update(overrides)
        return cls(**kwargs)


@dataclass
class RenderedFigure:
    """A drawn figure: its pixels, its caption, its resolution, and where its panels are.

    ``panels`` holds one ``(title, (x0, y0, x1, y1))`` per image panel, in figure pixels from
    the top left, ``x1``/``y1`` exclusive. ``burned_in`` lists the annotation text drawn into
    the panels' pixels (corners and orientation markers), which no scrubber can reach later.
    """

    rgb: np.ndarray  # (H, W, 3) uint8
    caption: str
    dpi: int
    title: str
    panels: list = field(default_factory=list)
    burned_in: list = field(default_factory=list)


def pick_map(result, method: str | None = None, layer: str | None = None):
    """Return the result's map for (method, layer), or its first map.

    Parameters
    ----------
    result : ExplainResult
        Holds ``maps: dict[(method, layer), MapResult]``.
    method, layer : str, optional
        Wanted map; None means "any".

    Returns
    -------
    MapResult

    Raises
    ------
    UsageError
        If the result has no maps, or none matches.
    """
    for (m, lay), item in result.maps.items():
        if (method is None or m == method) and (layer is None or lay == layer):
            return item
    have = ", ".join(f"{m}/{lay}" for m, lay in result.maps) or "none"
    raise UsageError(
        f"the result has no map for method {method!r}, layer {layer!r}",
        fix=f"choose one of: {have}",
    )


def probability_text(p: float) -> str:
    """Format a probability to 3 decimals; bounds instead of a rounded 0 or 1.

    Parameters
    ----------
    p : float

    Returns
    -------
    str
        ``"0.933"``, ``"> 0.999"`` or ``"< 0.001"``.
    """
    if p > 0.9995:
        return "> 0.999"
    if p < 0.0005:
        return "< 0.001"
    return f"{p:.3f}"


def prediction_line(result, versus: str | None = None) -> str:
    """The model's prediction in one line, for figures that have no caption beside them.

    Parameters
    ----------
    result : ExplainResult
    versus : str, optional
        The contrasted class (the result's own by default).

    Returns
    -------
    str
        E.g. ``"Prediction: nodule (p = 0.851); explained: nodule versus normal"``.
    """
    scores = [float(v) for v in result.scores]
    top = max(range(len(scores)), key=scores.__getitem__)
    p = probability_text(scores[top])
    versus = versus or getattr(result, "versus", None)
    explained = f"{result.target_name} versus {versus}" if versus else result.target_name
    return (f"Prediction: {result.classes[top]} ({'p ' if p[0] in '<>' else 'p = '}{p}); "
            f"explained: {explained}")


def _probability(result) -> str:
    p = probability_text(float(result.scores[result.target]))
    return f"p {p}" if p[0] in "<>" else f"p = {p}"


def _model_line(result) -> str:
    model = result.model or {}
    sha = str(model.get("sha256") or "")
    short = f" (SHA-256 {sha[:12]}…)" if sha else ""
    return f"model {model.get('name', 'unknown')}{short}"


def _display_line(options: FigureOptions, window_used: tuple[float, float] | None) -> str:
    parts = [f"{options.colormap} colour map", f"opacity {options.opacity:.2f}"]
    if options.threshold > 0:
        parts.append(f"shown above {options.threshold:.2f}")
    if window_used is not None:
        parts.append(f"window C {window_used[0]:g} / W {window_used[1]:g}")
    if options.invert:
        parts.append("inverted")
    return ", ".join(parts)


def caption_for(result, options: FigureOptions, window_used=None) -> str:
    """Compose the figure caption: method, layer, target and probability, model, display.

    Parameters
    ----------
    result : ExplainResult
    options : FigureOptions
    window_used : tuple of float, optional
        The (center, width) window the image was shown at.

    Returns
    -------
    str
        One paragraph; it never holds patient identifiers.
    """
    target = f"class '{result.target_name}' ({_probability(result)})"
    if options.kind == "grid":
        methods = dict.fromkeys(m for m, _ in result.maps)
        layers = dict.fromkeys(lay for _, lay in result.maps)
        what = ", ".join(method_title(m) for m in methods)
        where = (
            f"at layer {next(iter(layers))}"
            if len(layers) == 1
            else f"at layers {', '.join(layers)}"
        )
        if len(methods) > 1 and len(layers) > 1:
            where += " (rows: methods; columns: layers)"
        head = f"Explanation maps ({what}) for {target} {where}, {_model_line(result)}."
    else:
        item = pick_map(result, options.method, options.layer)
        head = (
            f"{method_title(item.method)} map for {target} at layer {item.layer}, "
            f"{_model_line(result)}."
        )
    overlay = _display_line(options, window_used)
    return f"{head} Overlay: {overlay}. {_scale_line(result, options)} {DISCLAIMER}"


def _scale_line(result, options: FigureOptions) -> str:
    if options.kind == "grid":
        return "Colour scale: each map scaled to its own peak (1)."
    item = pick_map(result, options.method, options.layer)
    top = display_value(item, options, 1.0)
    return f"Colour scale: the top of the bar stands for {top:.3g} ({item.units})."


def window_used(image, options: FigureOptions, frame: int = 0) -> tuple[float, float] | None:
    """Return the (center, width) window a figure shows the image at; None for colour images."""
    if options.window is not None:
        return options.window
    preset = image.default_window_for(frame)
    return None if preset is None else (float(preset.center), float(preset.width))


def display_heat(item, options: FigureOptions) -> np.ndarray:
    """The map's values as the viewer colours them: ``(heat - offset) * gain``, clipped."""
    heat = np.nan_to_num(np.asarray(item.heatmap, dtype=np.float32), nan=0.0, posinf=0.0,
                         neginf=0.0)
    heat = (heat - np.float32(options.heat_offset)) * np.float32(options.heat_gain)
    return np.clip(heat, -1.0 if item.signed else 0.0, 1.0)


def display_value(item, options: FigureOptions, shown: float) -> float:
    """The raw map value (in ``item.units``) that a displayed value stands for."""
    gain = options.heat_gain or 1.0
    return (shown / gain + options.heat_offset) * float(item.scale)


def enlarge(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every pixel ``factor`` times each way: bigger, with no colour that was not there."""
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def _panels(result, options: FigureOptions, base: np.ndarray, factor: int = 1):
    """Return rows of (title, rgb or None) and, for 2-D grids, the row labels."""

    def over(item) -> np.ndarray:
        rgb = blend(base, display_heat(item, options), cmap=options.colormap,
                    opacity=float(options.opacity), threshold=float(options.threshold),
                    signed=bool(item.signed))
        return enlarge(rgb, factor)

    original = enlarge(base, factor)
    if options.kind == "overlay":
        item = pick_map(result, options.method, options.layer)
        return [[(f"{method_title(item.method)}, {item.layer}", over(item))]], None
    if options.kind == "side_by_side":
        item = pick_map(result, options.method, options.layer)
        title = f"{method_title(item.method)}, {item.layer}"
        return [[("Original", original), (title, over(item))]], None
    methods = list(dict.fromkeys(m for m, _ in result.maps))
    layers = list(dict.fromkeys(lay for _, lay in result.maps))
    if len(methods) == 1 or len(layers) == 1:
        row = [("Original", original)]
        for (m, lay), item in result.maps.items():
            title = method_title(m) if len(layers) == 1 else lay
            row.append((title, over(item)))
        return [row], None
    # Methods by layers: layer names head the first row, method names label each row.
    rows = [
        [
            (lay if r == 0 else "", over(result.maps[m, lay]) if (m, lay) in result.maps else None)
            for lay in layers
        ]
        for r, m in enumerate(methods)
    ]
    return rows, [method_title(m) for m in methods]


def _columns(result, options: FigureOptions) -> tuple[int, bool]:
    """Return the number of panel columns and whether rows carry method labels."""
    if options.kind == "overlay":
        return 1, False
    if options.kind == "side_by_side":
        return 2, False
    methods = dict.fromkeys(m for m, _ in result.maps)
    layers = dict.fromkeys(lay for _, lay in result.maps)
    if len(methods) == 1 or len(layers) == 1:
        return 1 + len(result.maps), False
    return len(layers), True


def render_figure(result, image, options: FigureOptions | None = None, *,
                  keep_identifiers: bool = False) -> RenderedFigure:
    """Draw an annotated figure of a result.

    Parameters
    ----------
    result : ExplainResult
        The maps, prediction and model description.
    image : Image
        The image the result explains; rendered as the viewer shows it.
    options : FigureOptions, optional
        Layout, size and display settings; defaults to a 300-dpi side-by-side figure.
    keep_identifiers : bool
        With ``options.corners``, burn in the patient's name and ID too; by default the
        corners are de-identified (pixels cannot be scrubbed afterwards).

    Returns
    -------
    RenderedFigure
        Pixels (uint8 RGB), caption, resolution and a short title.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    options = options or FigureOptions()
    window = window_used(image, options, result.frame)
    base = image.render(result.frame, window=options.window, invert=options.invert)
    img_h, img_w = base.shape[:2]
    n_cols, has_row_labels = _columns(result, options)

    # Layout in inches, computed rather than left to a layout engine, so every figure has the
    # same margins and the caption never overlaps the panels.
    width = options.width
    pad, gap = 0.06, 0.05
    left = pad + (0.22 if has_row_labels else 0.0)
    # Tick labels of three significant digits and a label of up to two lines fit on the right.
    cbar_gap, cbar_w, cbar_labels = 0.08, 0.11, 0.80
    right = cbar_gap + cbar_w + cbar_labels
    title_h = 0.20
    panel_w = (width - left - right - gap * (n_cols - 1)) / n_cols
    panel_h = panel_w * img_h / img_w
    # A small image is enlarged by whole pixels towards its printed size, after blending, so
    # each of its pixels keeps the viewer's colour; matplotlib then draws it without mixing
    # neighbours (nearest), or averages them when the print is smaller than the image.
    scale = panel_w * options.dpi / img_w
    factor = int(min(scale, 8.0)) if scale >= 1.0 else 1
    rows, row_labels = _panels(result, options, base, factor)
    caption = caption_for(result, options, window)
    n_rows = len(rows)
    chars = int((width - 2 * pad) * 72 / (_CAPTION_FONT * 0.56))
    lines = textwrap.wrap(caption, chars) if options.caption else []
    caption_h = len(lines) * _CAPTION_FONT * 1.32 / 72 + 0.12 if lines else 0.0
    row_title_h = [title_h if any(t for t, _ in r) else 0.04 for r in rows]
    height = pad + sum(row_title_h) + n_rows * panel_h + gap * (n_rows - 1) + caption_h + pad

    rc = {
        "font.family": "DejaVu Sans",
        "font.size": _FONT,
        "axes.linewidth": 0.5,
        "xtick.major.width": 0.5,
        "ytick.major.width": 0.5,
        "ytick.labelsize": _FONT - 1,
    }
    with DRAW_LOCK, rc_context(rc):
        fig = Figure(figsize=(width, height), dpi=options.dpi, facecolor="white")
        FigureCanvasAgg(fig)
        interp = "nearest" if scale >= 1.0 else "antialiased"
        boxes = []
        burned: list[str] = []
        y = height - pad
        letters = iter("abcdefghijklmnopqrstuvwxyz")
        grid_top = y
        for r, row in enumerate(rows):
            y -= row_title_h[r]
            y -= panel_h
            for c, (title, rgb) in enumerate(row):
                x = left + c * (panel_w + gap)
                ax = fig.add_axes((x / width, y / height, panel_w / width, panel_h / height))
                ax.set_axis_off()
                if rgb is None:
                    ax.text(
                        0.5,
                        0.5,
                        "not computed",
                        ha="center",
                        va="center",
                        color="0.4",
                        transform=ax.transAxes,
                    )
                    continue
                ax.imshow(rgb, interpolation=interp, aspect="auto")
                if options.corners:
                    burned = burn_in_annotations(ax, image, result.frame, window,
                                                 keep_identifiers=keep_identifiers)
                boxes.append((title, pixel_box(x, y, panel_w, panel_h, height, options.dpi)))
                if title:
                    fig.text(
                        x / width,
                        (y + panel_h + 0.05) / height,
                        title,
                        ha="left",
                        va="bottom",
                        fontsize=_FONT,
                    )
                if n_rows * n_cols == 1:
                    continue
                # Panel letters, as journals ask for, in the corner of each panel.
                ax.text(
                    0.025,
                    0.975,
                    next(letters),
                    transform=ax.transAxes,
                    ha="left",
                    va="top",
                    fontsize=_FONT + 1,
                    fontweight="bold",
                    color="white",
                    bbox={
                        "boxstyle": "square,pad=0.15",
                        "fc": "black",
                        "ec": "none",
                        "alpha": 0.55,
                    },
                )
            if row_labels:
                fig.text(
                    (left - 0.06) / width,
                    (y + panel_h / 2) / height,
                    row_labels[r],
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize=_FONT,
                )
            y -= gap
        grid_bottom = y + gap
        cb_x = width - right + cbar_gap
        cb_h = min(grid_top - grid_bottom - row_title_h[0], 2.2)
        cb_y = grid_bottom + (grid_top - row_title_h[0] - grid_bottom - cb_h) / 2
        cax = fig.add_axes((cb_x / width, cb_y / height, cbar_w / width, cb_h / height))
        _colour_bar(fig, cax, result, options)
        if lines:
            fig.text(
                pad / width,
                (pad + caption_h - 0.06) / height,
                "\n".join(lines),
                ha="left",
                va="top",
                fontsize=_CAPTION_FONT,
                linespacing=1.25,
                color="0.15",
            )
        fig.canvas.draw()
        rgb_out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    title = "Lucida explanation figure"
    return RenderedFigure(rgb=rgb_out, caption=caption, dpi=int(options.dpi), title=title,
                          panels=boxes, burned_in=burned)


#: Size of burned-in annotations, in points: legible in print, small beside the anatomy.
_ANNOTATION_FONT = 4.5


def burn_in_annotations(ax, image, frame: int, window, *, keep_identifiers: bool) -> list[str]:
    """Draw the viewer's corner annotations and orientation markers into one image panel.

    Parameters
    ----------
    ax : matplotlib Axes
        The panel, showing the whole image.
    image : Image
    frame : int
    window : (center, width) or None
        The window the panel shows.
    keep_identifiers : bool
        Write the patient's name, ID and dates; otherwise only de-identified corners.

    Returns
    -------
    list of str
        Every text drawn.
    """
    from matplotlib import patheffects

    corners = corner_text(image, frame, window, deidentified=not keep_identifiers)
    halo = [patheffects.withStroke(linewidth=1.2, foreground="black")]
    style = {"transform": ax.transAxes, "color": "white", "fontsize": _ANNOTATION_FONT,
             "path_effects": halo, "linespacing": 1.15}
    pad = 0.02
    for lines, x, y, ha, va in ((corners.top_left, pad, 1 - pad, "left", "top"),
                                (corners.top_right, 1 - pad, 1 - pad, "right", "top"),
                                (corners.bottom_left, pad, pad, "left", "bottom"),
                                (corners.bottom_right, 1 - pad, pad, "right", "bottom")):
        if lines:
            ax.text(x, y, "\n".join(lines), ha=ha, va=va, **style)
    drawn = corners.lines()
    markers = edge_labels(image, frame)
    if markers is not None:
        marker_style = dict(style, color="#ffd65a", fontweight="bold",
                            fontsize=_ANNOTATION_FONT + 1)
        for text, x, y, ha, va in ((markers.left, pad, 0.5, "left", "center"),
                                   (markers.right, 1 - pad, 0.5, "right", "center"),
                                   (markers.top, 0.5, 1 - pad, "center", "top"),
                                   (markers.bottom, 0.5, pad, "center", "bottom")):
            ax.text(x, y, text, ha=ha, va=va, **marker_style)
        drawn += [markers.left, markers.right, markers.top, markers.bottom]
    return drawn


def pixel_box(x: float, y: float, w: float, h: float, height: float, dpi: int) -> tuple:
    """An axes rectangle in inches (origin bottom left) as figure pixels from the top left."""
    return (round(x * dpi), round((height - y - h) * dpi), round((x + w) * dpi),
            round((height - y) * dpi))


def _colour_bar(fig, cax, result, options: FigureOptions) -> None:
    """The colour bar: the viewer's colours, labelled in the map's units for a single map."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    item = None if options.kind == "grid" else pick_map(result, options.method, options.layer)
    signed = item.signed if item is not None else any(m.signed for m in result.maps.values())
    lut = (diverging_lut() if signed else colormap_lut(options.colormap)).astype(np.float32)
    low = -1.0 if signed else 0.0
    ticks = [low + (1.0 - low) * i / 4 for i in range(5)]
    mappable = ScalarMappable(norm=Normalize(low, 1.0), cmap=ListedColormap(lut / 255.0))
    cbar = fig.colorbar(mappable, cax=cax, ticks=ticks)
    if item is None:
        cbar.ax.set_yticklabels([f"{t:g}" for t in ticks])
        label = "Relative importance"
    else:
        cbar.ax.set_yticklabels([f"{display_value(item, options, t):.3g}" for t in ticks])
        label = f"Map value ({item.units})"
    cbar.outline.set_linewidth(0.5)
    # A long unit name ("logit gradient x activation") would run past the bar's ends and off
    # the figure: it is wrapped to the bar's height instead.
    height_pt = cax.get_position().height * fig.get_figheight() * 72
    per_line = max(12, int(height_pt / ((_FONT - 0.5) * 0.55)))
    cbar.set_label(textwrap.fill(label, per_line), fontsize=_FONT - 0.5, labelpad=3)
    if options.threshold > 0:
        for level in (options.threshold, -options.threshold) if signed else (options.threshold,):
            cax.axhline(level, color="white", lw=1.2)
            cax.axhline(level, color="black", lw=0.6, ls="--")


#: Report figures above this size as PNG go into the report as JPEG: a noisy 512 x 512 image
#: comes close to 1 MB per figure lossless, while enlarged small images stay far below it.
REPORT_PNG_BUDGET = 400_000
#: JPEG quality of those figures: no visible loss at print size.
REPORT_JPEG_QUALITY = 92


def report_image(figure: RenderedFigure, scrubber: Scrubber | None = None) -> bytes:
    """Encode a figure for a PDF or HTML report: PNG, or JPEG when the PNG is too big.

    The lossless figure is always ``figure.png``; a report only needs to stay small enough to
    mail (one map under 1 MB).
    """
    png = figure_png(figure, scrubber)
    if len(png) <= REPORT_PNG_BUDGET:
        return png
    buf = io.BytesIO()
    PILImage.fromarray(figure.rgb).save(buf, format="JPEG", quality=REPORT_JPEG_QUALITY,
                                        subsampling=0, dpi=(figure.dpi, figure.dpi))
    return buf.getvalue()


def figure_png(figure: RenderedFigure, scrubber: Scrubber | None = None) -> bytes:
    """Encode a figure as PNG with its resolution and scrubbed text chunks.

    Parameters
    ----------
    figure : RenderedFigure
    scrubber : Scrubber, optional
        Blanks identifiers from the text chunks (title, caption).

    Returns
    -------
    bytes
        The PNG file.
    """
    clean = scrubber.text if scrubber is not None else (lambda s: s)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", clean(figure.title))
    info.add_itxt("Description", clean(figure.caption))
    info.add_text("Software", f"Lucida {app_version()}")
    info.add_text("Disclaimer", DISCLAIMER)
    buf = io.BytesIO()
    PILImage.fromarray(figure.rgb).save(
        buf, format="PNG", dpi=(figure.dpi, figure.dpi), pnginfo=info, compress_level=6
    )
    return buf.getvalue()


def with_kind(options: FigureOptions | None, kind: str, **changes: Any) -> FigureOptions:
    """Return a copy of ``options`` with another layout (and any other field changed)."""
    return replace(options or FigureOptions(), kind=kind, **changes)
