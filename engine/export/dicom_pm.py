"""The heatmap as a DICOM Parametric Map (float32), built and checked by highdicom.

Viewers that overlay parametric maps (OHIF, Weasis, 3D Slicer) show it over the source image.
The Real World Value Mapping names the method and the layer, and says what 1 stands for in the
explainer's own units.
"""

from __future__ import annotations

import copy
import warnings

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from engine.core.errors import ExportError
from engine.core.versions import app_version
from engine.studies.calibration import dataset_spacing, valid_spacing

#: Parametric Map Storage.
PM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.30"
#: Series Number of the maps Lucida writes (the Secondary Capture uses 9001, the SR 9003).
PM_SERIES_NUMBER = 9002
#: Series Description of the maps, as a PACS lists the series.
PM_SERIES_DESCRIPTION = "Lucida explanation maps"
_GEOMETRY = ("FrameOfReferenceUID", "ImageOrientationPatient", "ImagePositionPatient",
             "PixelSpacing")
#: The sizes a map's Pixel Measures may state, each written only where the source states it.
_MEASURES = ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices")
_SINGLE_FRAME_CLASS = "1.2.840.10008.5.1.4.1.1.7"
_MULTIFRAME = ("NumberOfFrames", "PerFrameFunctionalGroupsSequence",
               "SharedFunctionalGroupsSequence", "FrameIncrementPointer")


def _geometry_source(source: Dataset, frame: int) -> tuple[Dataset, bool]:
    """Return a header highdicom can place the map with, and whether it is the source's own.

    A single-frame image in patient coordinates, with a valid Pixel Spacing, keeps its geometry.
    Other images (projection X-rays, secondary captures, one frame of a multi-frame image, an
    image whose Pixel Spacing is no size, such as ``0\\0``) carry no usable plane geometry for
    a single frame, so the map gets a frame of reference of its own, pixel-aligned with the
    source: identity orientation, origin at the first pixel.

    highdicom copies Pixel Spacing and Slice Thickness into the map and needs both, so the copy
    carries 1 mm where the source states no size; :func:`_state_measures` then writes only
    the sizes the source states.
    """
    spacing = dataset_spacing(source, frame)
    multiframe = int(source.get("NumberOfFrames", 1) or 1) > 1
    as_is = not multiframe and spacing.source == "PixelSpacing" and \
        all(k in source for k in _GEOMETRY)
    geometry = copy.deepcopy(source)
    if not as_is:
        for keyword in _MULTIFRAME + _GEOMETRY + _MEASURES + ("ImagerPixelSpacing",):
            if keyword in geometry:
                delattr(geometry, keyword)
        geometry.FrameOfReferenceUID = generate_uid()
        geometry.PositionReferenceIndicator = ""
        geometry.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        geometry.ImagePositionPatient = [0.0, 0.0, 0.0]
        # highdicom reads a multi-frame class as needing functional groups; the copy is one
        # frame, and the references are pointed back at the real class afterwards.
        geometry.SOPClassUID = _SINGLE_FRAME_CLASS
    geometry.PixelSpacing = [spacing.row_mm, spacing.col_mm]
    geometry.SliceThickness = 1.0
    return geometry, as_is


def _state_measures(pm: Dataset, source: Dataset, frame: int) -> None:
    """Write into the map's Pixel Measures only the sizes the source states validly.

    Pixel Spacing and Slice Thickness are type 1C in the Pixel Measures macro, required only
    with a Volumetric Properties the Parametric Map does not carry, so a size the source does
    not state (or states as ``0\\0``) is left out rather than invented.
    """
    spacing = dataset_spacing(source, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stated = {
            "PixelSpacing": (spacing.row_mm, spacing.col_mm) if spacing.known else None,
            "SliceThickness": valid_spacing(source.get("SliceThickness"), 1),
            "SpacingBetweenSlices": valid_spacing(source.get("SpacingBetweenSlices"), 1),
        }
    measures = pm.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    for keyword, value in stated.items():
        if value is not None:
            setattr(measures, keyword, list(value) if len(value) > 1 else value[0])
        elif keyword in measures:
            delattr(measures, keyword)


def parametric_map(
    heatmap: np.ndarray,
    source: Dataset,
    *,
    method: str,
    layer: str,
    signed: bool,
    scale: float,
    units: str,
    series_uid: str,
    instance_number: int = 1,
    frame: int = 0,
    series_number: int = PM_SERIES_NUMBER,
) -> Dataset:
    """Build a Parametric Map of one heatmap over its source image.

    Parameters
    ----------
    heatmap : numpy.ndarray
        (rows, cols) float32 map in the source's pixel grid: 0..1, or -1..1 when signed.
    source : pydicom.Dataset
        The explained image's header (pixels are not needed). Patient, study and the reference
        to it are copied from here, so pass a de-identified copy for a research export.
    method, layer : str
        The explainer and the layer the map belongs to; named in the Real World Value Mapping.
    signed : bool
        Whether the map keeps its sign.
    scale : float
        The explainer's raw value that maps to 1, in ``units``.
    units : str
        What the explainer's raw values measure.
    series_uid : str
        Series Instance UID of the new series.
    instance_number : int
        Instance Number inside that series.
    frame : int
        Frame of a multi-frame source that was explained (0-based).
    series_number : int
        Series Number.

    Returns
    -------
    highdicom.pm.ParametricMap
        The map (a pydicom Dataset), Explicit VR Little Endian, FloatPixelData.

    Raises
    ------
    ExportError
        If the map does not fit the source, or highdicom refuses the object.
    """
    heat = np.ascontiguousarray(heatmap, dtype=np.float32)
    rows, cols = int(source.get("Rows", 0)), int(source.get("Columns", 0))
    if heat.ndim != 2 or heat.shape != (rows, cols):
        raise ExportError(
            f"the {method} map is {heat.shape}, but the source image is {(rows, cols)}",
            fix="export maps in the image's geometry (the heatmap, not the raw map)",
        )
    geometry, as_is = _geometry_source(source, frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = hd.pm.ParametricMap(
                source_images=[geometry],
                pixel_array=heat,
                **_map_arguments(method, layer, signed, scale, units, series_uid,
                                 instance_number, series_number),
            )
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise ExportError(f"cannot build the Parametric Map of {method} / {layer} ({exc})",
                          fix="report this with the source image") from exc
    if not as_is:
        _reference_source(pm, source, frame)
    _state_measures(pm, source, frame)
    # General Series: Laterality is type 2C, present (empty when unknown) for paired organs.
    pm.Laterality = source.get("Laterality", "")
    return pm


def _map_arguments(method: str, layer: str, signed: bool, scale: float, units: str,
                   series_uid: str, instance_number: int, series_number: int) -> dict:
    """The ParametricMap arguments one map's values decide: the value mapping and the series."""
    low = -1.0 if signed else 0.0
    explanation = (f"{method} at layer {layer}; 1 = {scale:.6g} {units}"
                   + ("; signed" if signed else ""))
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=method[:16],
        lut_explanation=explanation[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(low, 1.0),
        slope=1.0,
        intercept=0.0,
    )
    return {
        "series_instance_uid": series_uid,
        "series_number": series_number,
        "series_description": PM_SERIES_DESCRIPTION,
        "sop_instance_uid": generate_uid(),
        "instance_number": instance_number,
        "manufacturer": "Lucida",
        "manufacturer_model_name": "Lucida",
        "software_versions": app_version(),
        "device_serial_number": "0",
        "contains_recognizable_visual_features": False,
        "real_world_value_mappings": [mapping],
        "voi_lut_transformations": [
            hd.VOILUTTransformation(window_center=(low + 1.0) / 2, window_width=1.0 - low)],
        "content_label": "HEATMAP",
        "content_description": f"{method} {layer}"[:64],
    }


def _reference_source(pm: Dataset, source: Dataset, frame: int) -> None:
    """Point the references made from a geometry copy at the real source class and frame."""
    frames = int(source.get("NumberOfFrames", 1) or 1)
    groups = list(pm.SharedFunctionalGroupsSequence) + list(pm.PerFrameFunctionalGroupsSequence)
    items = [ref for group in groups
             for derivation in group.get("DerivationImageSequence", [])
             for ref in derivation.get("SourceImageSequence", [])]
    items += [ref for series in pm.get("ReferencedSeriesSequence", [])
              for ref in series.get("ReferencedInstanceSequence", [])]
    for ref in items:
        ref.ReferencedSOPClassUID = source.SOPClassUID
        if frames > 1 and "PurposeOfReferenceCodeSequence" in ref:
            ref.ReferencedFrameNumber = frame + 1


def volume_parametric_map(
    heatmap: np.ndarray,
    sources: list[Dataset],
    affine: np.ndarray,
    *,
    method: str,
    layer: str,
    signed: bool,
    scale: float,
    units: str,
    series_uid: str,
    instance_number: int = 1,
    series_number: int = PM_SERIES_NUMBER,
) -> Dataset:
    """Build a multi-frame Parametric Map of a volume's heatmap, in the volume's geometry.

    One frame per slice: each frame's Plane Position is its slice's origin from the affine,
    and the Plane Orientation and Pixel Measures are shared, so a viewer lays every frame on
    the slice it explains.

    Parameters
    ----------
    heatmap : numpy.ndarray
        (slices, rows, columns) float32 map on the volume's grid: 0..1, or -1..1 when signed.
    sources : list of pydicom.Dataset
        The headers of the volume's slices, in volume order (pixels are not needed); pass
        de-identified stand-ins for a research export.
    affine : numpy.ndarray
        (4, 4) voxel ``(column, row, slice, 1)`` to patient LPS mm
        (:attr:`engine.studies.volume.Volume.affine`).
    method, layer, signed, scale, units, series_uid, instance_number, series_number
        As in :func:`parametric_map`.

    Returns
    -------
    highdicom.pm.ParametricMap

    Raises
    ------
    ExportError
        If the map does not fit the slices, or highdicom refuses the object.
    """
    heat = np.ascontiguousarray(heatmap, dtype=np.float32)
    first = sources[0] if sources else Dataset()
    expected = (len(sources), int(first.get("Rows", 0)), int(first.get("Columns", 0)))
    if heat.ndim != 3 or heat.shape != expected:
        raise ExportError(
            f"the {method} map is {heat.shape}, but the volume's slices are {expected}",
            fix="export maps on the volume's own grid (heatmap_*.npy of the volume)",
        )
    affine = np.asarray(affine, dtype=np.float64)
    col_step, row_step, slice_step = (np.linalg.norm(affine[:3, a]) for a in range(3))
    orientation = [*(affine[:3, 0] / col_step), *(affine[:3, 1] / row_step)]
    positions = [
        hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                 [float(v) for v in affine[:3, :3] @ (0.0, 0.0, k) +
                                  affine[:3, 3]])
        for k in range(heat.shape[0])
    ]
    measures = hd.PixelMeasuresSequence(pixel_spacing=[float(row_step), float(col_step)],
                                        slice_thickness=float(slice_step),
                                        spacing_between_slices=float(slice_step))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = hd.pm.ParametricMap(
                source_images=list(sources),
                pixel_array=heat,
                plane_positions=positions,
                plane_orientation=hd.PlaneOrientationSequence(
                    hd.CoordinateSystemNames.PATIENT, [round(float(v), 8) for v in orientation]),
                pixel_measures=measures,
                **_map_arguments(method, layer, signed, scale, units, series_uid,
                                 instance_number, series_number),
            )
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise ExportError(f"cannot build the volume Parametric Map of {method} / {layer} "
                          f"({exc})", fix="report this with the source series") from exc
    pm.Laterality = first.get("Laterality", "")
    return pm
