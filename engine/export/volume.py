"""Exports of volume maps: the map as NIfTI, overlays of the three planes, and plane figures.

Planes are resampled in patient space (:mod:`engine.studies.planes`) with the map resampled on
the same pixels, then coloured by :func:`engine.explain.colour.blend`, as the viewer colours
2-D overlays. Nothing here writes patient identifiers: the NIfTI header carries the method and
layer only, and figures are labelled with the plane and the map.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from engine.core.atomic import StagedFiles
from engine.core.jsonsafe import json_bytes
from engine.core.pseudonym import Pseudonyms
from engine.core.versions import app_version
from engine.explain.colour import blend, colormap_lut, diverging_lut
from engine.export.identity import case_name, image_entry, model_identity
from engine.export.results import file_key
from engine.export.validation import validation_of
from engine.models.findings import findings
from engine.studies import display
from engine.studies.nifti import write_nifti
from engine.studies.orientation import EdgeLabels, direction_letters
from engine.studies.planes import PLANES, peak_point, plane_geometry, three_planes

DISCLAIMER = "Research use only. Not for diagnostic use."
#: Colour of the orientation letters and panel labels, as the viewer draws them.
_LETTER_COLOUR = (255, 220, 120)
#: Length of the colour bar, in figure pixels.
_BAR_LENGTH = 256
# The viewer's letters for the head and feet directions (superior, inferior).
_HEAD_FEET = str.maketrans("HF", "SI")


def write_map_nifti(heatmap: np.ndarray, volume, path: str | Path, method: str = "",
                    layer: str = "") -> Path:
    """Write a ``(slices, rows, columns)`` map as NIfTI with the volume's affine (RAS+ sform).

    Opened over the volume's own NIfTI (or its DICOM series converted by any standard tool),
    every map voxel lands on the voxel it explains.
    """
    what = " ".join(p for p in ("Lucida", method, layer) if p)
    return write_nifti(heatmap, volume, path, description=what)


def plane_overlays(volume, heatmap: np.ndarray, point=None, window=None, cmap: str = "jet",
                   opacity: float = 0.5, threshold: float = 0.0,
                   signed: bool = False) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal overlays through ``point`` (the map's peak by default).

    Parameters
    ----------
    volume : Volume
        The volume.
    heatmap : numpy.ndarray
        ``(slices, rows, columns)`` on the volume's grid, 0..1 (or -1..1 when ``signed``).
    point : array-like, optional
        LPS mm the three planes pass through.
    window : WindowPreset or (center, width), optional
        Display window in modality units (the volume's default).
    cmap, opacity, threshold, signed
        As in :func:`engine.explain.colour.blend`.

    Returns
    -------
    dict
        Plane name to (rows, columns, 3) uint8, on square pixels of the finest voxel spacing.
    """
    point = peak_point(volume, np.abs(heatmap)) if point is None else np.asarray(point)
    preset = volume.default_window if window is None else window
    center, width = (preset.center, preset.width) if hasattr(preset, "center") else window
    function = getattr(preset, "function", "LINEAR")
    out = {}
    for plane, view in three_planes(volume, point, heatmap).items():
        grey = (display.window_unit(view.image, center, width, function) * 255).round()
        rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
        out[plane] = blend(rgb, view.overlay, cmap=cmap, opacity=opacity, threshold=threshold,
                           signed=signed)
    return out


def plane_letters(volume, plane: str) -> EdgeLabels:
    """Which way the patient lies along each edge of a plane of ``volume``, as the viewer shows.

    The plane's pixel directions come from the volume's affine (:func:`plane_geometry`); the
    letters are R/L, A/P and S/I.
    """
    geometry = plane_geometry(volume.affine, volume.shape, plane, volume.affine[:3, 3])

    def letters(vector) -> str:
        return direction_letters(vector).translate(_HEAD_FEET)

    return EdgeLabels(left=letters(-geometry.right), right=letters(geometry.right),
                      top=letters(-geometry.down), bottom=letters(geometry.down))


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _label(rgb: np.ndarray, text: str, scale: int, letters: EdgeLabels | None = None
           ) -> np.ndarray:
    img = PILImage.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale),
                                         PILImage.NEAREST)
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), text, fill=(255, 255, 0), font=_font(11), stroke_width=1,
              stroke_fill=(0, 0, 0))
    if letters is not None:
        width, height = img.size
        font = _font(13)
        # The letter at the middle of each edge, outlined so it reads on bone and on heat.
        for anchor, xy, text in (("lm", (3, height / 2), letters.left),
                                 ("rm", (width - 3, height / 2), letters.right),
                                 ("mt", (width / 2, 16), letters.top),
                                 ("mb", (width / 2, height - 3), letters.bottom)):
            draw.text(xy, text, fill=_LETTER_COLOUR, font=font, anchor=anchor, stroke_width=2,
                      stroke_fill=(0, 0, 0))
    return np.asarray(img)


def colour_bar(width: int, cmap: str, signed: bool, units: str) -> np.ndarray:
    """A strip ``width`` pixels wide: the overlay's colours from low to high, labelled.

    Parameters
    ----------
    width : int
        Width of the strip (the figure's).
    cmap : str
        The colour map of unsigned maps; signed maps use the diverging one.
    signed : bool
        Whether the map runs from -1 to 1 (else 0 to 1).
    units : str
        The map's units, named under the bar.

    Returns
    -------
    numpy.ndarray
        (H, width, 3) uint8 on black.
    """
    lut = diverging_lut() if signed else colormap_lut(cmap)
    length = max(16, min(_BAR_LENGTH, width - 80))
    strip = PILImage.new("RGB", (width, 38))
    bar = lut[np.linspace(0, 255, length).round().astype(int)]
    strip.paste(PILImage.fromarray(np.repeat(bar[None], 12, axis=0)), (30, 4))
    draw = ImageDraw.Draw(strip)
    font = _font(11)
    draw.text((26, 10), "-1" if signed else "0", fill=(230, 230, 230), font=font, anchor="rm")
    draw.text((34 + length, 10), "1", fill=(230, 230, 230), font=font, anchor="lm")
    draw.text((30, 20), f"map value, 1 = the map's peak ({units})" if units
              else "map value, 1 = the map's peak", fill=(230, 230, 230), font=font)
    return np.asarray(strip)


def _text_strip(width: int, text: str, colour=(230, 230, 230)) -> np.ndarray:
    strip = PILImage.new("RGB", (width, 18))
    ImageDraw.Draw(strip).text((4, 3), text, fill=colour, font=_font(12))
    return np.asarray(strip)


def plane_figure(volume, maps: list[tuple[str, np.ndarray]], point=None, window=None,
                 cmap: str = "jet", opacity: float = 0.5, scale: int = 2,
                 threshold: float = 0.0, signed: bool = False, *, units: str | None = None,
                 prediction: str = "") -> np.ndarray:
    """A figure with one row of axial, coronal and sagittal overlays per map.

    Each plane carries its orientation letters (:func:`plane_letters`).

    Parameters
    ----------
    volume : Volume
        The volume.
    maps : list of (str, numpy.ndarray)
        Label and ``(slices, rows, columns)`` heatmap of each row.
    point : array-like, optional
        LPS mm every row's planes pass through (each map's own peak by default).
    window, cmap, opacity, threshold, signed
        As in :func:`plane_overlays`.
    scale : int
        Whole-pixel enlargement of each panel (pixels keep the viewer's colours).
    units : str, optional
        The maps' units: given, a colour bar naming them follows the rows.
    prediction : str, optional
        A line above the rows: the model's prediction (see
        :func:`engine.export.figure.prediction_line`).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8, ending in the research-use line.
    """
    letters = {p: plane_letters(volume, p) for p in PLANES}
    rows = []
    for label, heat in maps:
        panels = plane_overlays(volume, heat, point, window, cmap, opacity, threshold, signed)
        drawn = [_label(panels[p], f"{label} - {p}", scale, letters[p]) for p in PLANES]
        height = max(p.shape[0] for p in drawn)
        drawn = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0))) for p in drawn]
        rows.append(np.concatenate(drawn, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    head = [_text_strip(width, prediction, (255, 255, 255))] if prediction else []
    bar = [colour_bar(width, cmap, signed, units)] if units is not None else []
    footer = _text_strip(width, DISCLAIMER, (200, 200, 200))
    return np.concatenate([*head, *rows, *bar, footer], axis=0)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG file bytes of an RGB image."""
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=np.float32))
    return buffer.getvalue()


def volume_result_json(volume, maps: dict, *, model: dict, classes: list[str],
                       scores: list[float], target: int, params: dict, timings_ms: dict,
                       warnings: list[str], intended_use: dict | None = None,
                       versus: str | None = None, metrics: dict | None = None,
                       slices: dict | None = None, keep_identifiers: bool = False,
                       pseudonyms: Pseudonyms | None = None) -> dict:
    """The ``result.json`` of one explained volume: the 2-D keys, plus where each map peaks.

    As for an image (:func:`engine.export.results.result_json`), ``image`` is the volume's
    pseudonym in ``pseudonyms`` and the model's files are keyed by role, unless
    ``keep_identifiers``; ``content`` holds the pseudonym and the volume's content digest.
    """
    name = case_name(volume, pseudonyms, keep_identifiers)
    model = model_identity(model, keep_identifiers)
    methods = list(dict.fromkeys(m for m, _ in maps))
    layers = list(dict.fromkeys(layer for _, layer in maps))
    entries = []
    for m in maps.values():
        key = file_key(m.method, m.layer)
        peak = np.unravel_index(int(np.argmax(np.abs(m.heatmap))), m.heatmap.shape)
        entries.append({
            "method": m.method, "layer": m.layer, "heatmap": f"heatmap_{key}.npy",
            "overlays": {p: f"overlay_{p}_{key}.png" for p in PLANES},
            "warning": m.warning, "signed": bool(m.signed), "scale": float(m.scale),
            "units": m.units, "notes": dict(m.notes or {}),
            "peak_voxel": [int(v) for v in peak],
            "peak_lps_mm": [round(float(v), 3) for v in volume.index_to_patient(peak)],
        })
    content = {
        "version": app_version(),
        "image": str(volume.path) if keep_identifiers else name,
        "content": image_entry(volume, 0, name),
        "kind": "volume",
        "geometry": "volume_geometry.json",
        "model": {key: model.get(key) for key in ("name", "sha256", "files")},
        "prediction": dict(zip(classes, [float(s) for s in scores], strict=True)),
        # A multi-label model's classes at or above its card's threshold (None: single-label).
        "findings": findings(model, dict(zip(classes, [float(s) for s in scores],
                                              strict=True))),
        "target": classes[target],
        "target_index": int(target),
        "versus": versus,
        "method": ",".join(methods),
        "layer": ",".join(layers),
        "params": {m: params.get(m, {}) for m in methods},
        "maps": entries,
        "timings_ms": {k: round(float(timings_ms.get(k, 0.0)), 3)
                       for k in ("load", "forward", "backward", "maps")},
        "warnings": list(warnings),
        "intended_use": intended_use or {},
    }
    if slices is not None:
        content["slices"] = slices
    if metrics is not None:
        content["metrics"] = metrics
    # CLAIM 2024 item 31: the method, its parameters and how the map was validated.
    content["validation"] = validation_of(content)
    return content


def write_volume_outputs(volume, maps: dict, folder: Path, content: dict, cmap: str = "jet",
                         opacity: float = 0.5) -> list[Path]:
    """Write the maps, three plane overlays per map, ``volume_geometry.json`` and ``result.json``.

    Each ``heatmap_<method>_<layer>.npy`` is float32 (slices, rows, columns) on the volume's own
    grid, slices sorted along the normal; the overlays are the axial, coronal and sagittal
    planes through the map's peak. Files are staged and renamed into place together.

    Raises
    ------
    ExportError
        If the folder or a file cannot be written.
    """
    with StagedFiles(folder) as staged:
        for m in maps.values():
            key = file_key(m.method, m.layer)
            staged.add(f"heatmap_{key}.npy", _npy(m.heatmap))
            for plane, rgb in plane_overlays(volume, m.heatmap, cmap=cmap, opacity=opacity,
                                             signed=bool(m.signed)).items():
                staged.add(f"overlay_{plane}_{key}.png", png_bytes(rgb))
        staged.add("volume_geometry.json", json_bytes(volume.geometry()))
        staged.add("result.json", json_bytes(content))
        return staged.commit()
