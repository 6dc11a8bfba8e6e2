"""The DICOM objects of one explanation, for either kind of export, never confused.

* **Research export** (:data:`RESEARCH`): de-identified after PS3.15 Annex E with new UIDs; the
  objects point at a de-identified stand-in of the source, never at the patient's instances.
* **File to the patient's study** (:data:`PATIENT_STUDY`): the patient and study identifiers
  and the StudyInstanceUID are kept, each object gets a new series, and the objects reference
  the source instance (Source Image Sequence, Referenced Series), ready to send to a PACS.

Objects: the annotated figure as a Secondary Capture, every heatmap as a Parametric Map, and a
Comprehensive SR that references the source image and the maps.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, replace

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from engine.core.case import Verdict
from engine.core.errors import UsageError
from engine.export.deid import deidentify_dataset
from engine.export.dicom_pm import parametric_map, volume_parametric_map
from engine.export.dicom_sc import secondary_capture
from engine.export.dicom_sr import explanation_sr
from engine.export.results import file_key

#: The research export: de-identified, new UIDs.
RESEARCH = "research"
#: Filing into the patient's study: identifiers and StudyInstanceUID kept, new series.
PATIENT_STUDY = "patient-study"
KINDS = (RESEARCH, PATIENT_STUDY)
_NEW_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                        "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                        "ReferringPhysicianName")
#: File names of the research objects :func:`research_files` writes beside the reports.
RESEARCH_PREFIX = "explanation_"


@dataclass
class DicomObject:
    """One object to write or send."""

    name: str
    dataset: Dataset

    def to_bytes(self) -> bytes:
        """The object as a DICOM Part 10 file."""
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, self.dataset, enforce_file_format=True)
        return buffer.getvalue()


def source_header(image) -> Dataset:
    """The explained image's DICOM header without its pixels.

    Raises
    ------
    UsageError
        For a raster image, which has no DICOM header to refer to.
    """
    dataset = getattr(image, "dataset", None)
    if dataset is None or "SOPInstanceUID" not in dataset:
        raise UsageError(
            "the Parametric Map and SR need a DICOM source image, and this image is not DICOM",
            path=getattr(image, "path", None),
            fix="explain a DICOM file, or export the figure (png, pdf, dicom) only")
    header = Dataset()
    for elem in dataset:
        if elem.tag.group != 0x7FE0:
            header.add(elem)
    if getattr(dataset, "file_meta", None) is not None:
        header.file_meta = dataset.file_meta
    return header


def research_source(image, keep_identifiers: bool = False) -> Dataset:
    """A stand-in of the source header with new UIDs: de-identified, with a dummy patient.

    With ``keep_identifiers`` (a research export that keeps names on purpose) the patient and
    study attributes stay and only the instance UIDs are new, as in the Secondary Capture.
    """
    if keep_identifiers:
        header = source_header(image)
        for keyword in _NEW_UIDS:
            if keyword in header:
                setattr(header, keyword, generate_uid())
        return header
    header = deidentify_dataset(source_header(image))
    # Annex E allows a dummy value; a random token links to nothing.
    header.PatientName = "Anonymous"
    header.PatientID = f"ANON-{secrets.token_hex(6).upper()}"
    return header


def explanation_objects(
    result,
    image,
    *,
    kind: str,
    metrics: dict | None = None,
    figure_rgb=None,
    derivation: str = "",
    source: Dataset | None = None,
    verdict: Verdict | None = None,
) -> list[DicomObject]:
    """Build the Parametric Maps and the SR (and the Secondary Capture, given a figure).

    Parameters
    ----------
    result : ExplainResult
        The explanation.
    image : Image
        The explained DICOM image.
    kind : str
        :data:`RESEARCH` or :data:`PATIENT_STUDY`.
    metrics : dict, optional
        Trust metrics, recorded in the SR.
    figure_rgb : numpy.ndarray, optional
        The annotated figure; when given, a Secondary Capture comes first.
    derivation : str
        The Secondary Capture's Derivation Description.
    source : pydicom.Dataset, optional
        The header the objects refer to; by default the image's own (filing) or a
        de-identified stand-in (research).
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.

    Returns
    -------
    list of DicomObject
        ``sc.dcm`` (with a figure), ``pm_<method>_<layer>.dcm`` per map, then ``sr.dcm``.

    Raises
    ------
    UsageError
        For an unknown kind or a raster image.
    ExportError
        If an object cannot be built.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown export kind {kind!r}", fix=f"use {' or '.join(KINDS)}")
    if source is None:
        source = source_header(image) if kind == PATIENT_STUDY else research_source(image)
    objects: list[DicomObject] = []
    if figure_rgb is not None:
        objects.append(DicomObject("sc.dcm", _filed_sc(figure_rgb, image, source, kind,
                                                       derivation)))
    pm_series = generate_uid()
    maps = []
    for number, item in enumerate(result.maps.values(), 1):
        pm = parametric_map(item.heatmap, source, method=item.method, layer=item.layer,
                            signed=item.signed, scale=item.scale, units=item.units,
                            series_uid=pm_series, instance_number=number, frame=result.frame)
        maps.append(pm)
        objects.append(DicomObject(f"pm_{file_key(item.method, item.layer)}.dcm", pm))
    sr = explanation_sr(result, source, maps, series_uid=generate_uid(), metrics=metrics,
                        frame=result.frame, verdict=verdict)
    objects.append(DicomObject("sr.dcm", sr))
    return objects


def _filed_sc(rgb, image, source: Dataset, kind: str, derivation: str) -> Dataset:
    keep = kind == PATIENT_STUDY
    data = secondary_capture(rgb, image.dataset if keep else source, keep_identifiers=keep,
                             derivation=derivation)
    ds = pydicom.dcmread(io.BytesIO(data))
    # The Secondary Capture builder starts a new study; filed and research objects belong
    # to the study of the source they describe (the real one, or its stand-in).
    ds.StudyInstanceUID = source.StudyInstanceUID
    if not keep:
        ds.PatientName, ds.PatientID = source.PatientName, source.PatientID
    return ds


def research_files(result, image, formats, *, keep_identifiers: bool = False,
                   metrics: dict | None = None,
                   verdict: Verdict | None = None) -> list[tuple[str, bytes]]:
    """The research export's Parametric Maps (``pm``) and SR (``sr``), as named files.

    Parameters
    ----------
    result : ExplainResult
        The maps to export (the reviewed ones).
    image : Image
        The explained DICOM image.
    formats : set of str
        Which of ``pm`` and ``sr`` to return (the SR references the maps either way).
    keep_identifiers : bool
        Keep the patient and study attributes (new UIDs all the same).
    metrics : dict, optional
        Trust metrics, recorded in the SR.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR (its comment already scrubbed when
        de-identified).

    Returns
    -------
    list of (str, bytes)
        ``explanation_pm_<method>_<layer>.dcm`` per map and ``explanation_sr.dcm``.
    """
    source = research_source(image, keep_identifiers)
    objects = explanation_objects(result, image, kind=RESEARCH, metrics=metrics, source=source,
                                  verdict=verdict)
    wanted = [o for o in objects if o.name.split("_")[0].removesuffix(".dcm") in formats]
    return [(RESEARCH_PREFIX + o.name, o.to_bytes()) for o in wanted]


def _slice_headers(volume) -> list[Dataset]:
    images = list(getattr(volume, "images", None) or [])
    if not images or any(getattr(i, "dataset", None) is None for i in images):
        raise UsageError(
            "a volume's Parametric Map lies on the slices of its DICOM series, and this "
            "volume is not a DICOM series", path=getattr(volume, "path", None),
            fix="explain the series folder (a NIfTI map is written as heatmap_*.npy; "
            "use write_map_nifti for NIfTI)")
    headers = []
    for image in images:
        header = Dataset()
        for elem in image.dataset:
            if elem.tag.group != 0x7FE0:
                header.add(elem)
        # Type 2 patient and study attributes a series may lack; the map must carry them.
        for keyword in _TYPE2_PATIENT_STUDY:
            if keyword not in header:
                setattr(header, keyword, "")
        headers.append(header)
    return headers


def volume_map_objects(maps: dict, volume, *, kind: str, keep_identifiers: bool = False,
                       result=None, verdict: Verdict | None = None) -> list[DicomObject]:
    """One multi-frame Parametric Map per volume map, in the volume's geometry, then an SR.

    Parameters
    ----------
    maps : dict
        ``(method, layer) -> MapResult`` with ``(slices, rows, columns)`` heatmaps.
    volume : Volume
        The explained DICOM series (:class:`engine.studies.volume.Volume`).
    kind : str
        :data:`RESEARCH`: the maps refer to de-identified stand-ins of the slices, with new
        UIDs kept consistent across the series. :data:`PATIENT_STUDY`: to the slices
        themselves, in the patient's study.
    keep_identifiers : bool
        For a research export: keep the patient and study attributes (the UIDs are new all
        the same), as :func:`research_source` does.
    result : ExplainResult, optional
        The explanation the maps come from: given, a Comprehensive SR of its prediction
        follows the maps, referring to them and to the first slice.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.

    Returns
    -------
    list of DicomObject
        ``pm_<method>_<layer>.dcm`` per map, one frame per slice, then ``sr.dcm`` with a
        result.

    Raises
    ------
    UsageError
        For an unknown kind, or a volume that is not a DICOM series.
    ExportError
        If a map cannot be built.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown export kind {kind!r}", fix=f"use {' or '.join(KINDS)}")
    headers = _slice_headers(volume)
    if kind == RESEARCH and keep_identifiers:
        uid_map: dict[str, str] = {}
        for header in headers:
            for keyword in _NEW_UIDS:
                if keyword in header:
                    old = str(header.data_element(keyword).value)
                    setattr(header, keyword, uid_map.setdefault(old, generate_uid()))
    elif kind == RESEARCH:
        uid_map = {}
        headers = [deidentify_dataset(h, uid_map) for h in headers]
        # One dummy patient for the whole series; a random token links to nothing.
        patient = f"ANON-{secrets.token_hex(6).upper()}"
        for header in headers:
            header.PatientName, header.PatientID = "Anonymous", patient
    series = generate_uid()
    objects = [
        DicomObject(f"pm_{file_key(item.method, item.layer)}.dcm",
                    volume_parametric_map(item.heatmap, headers, volume.affine,
                                          method=item.method, layer=item.layer,
                                          signed=item.signed, scale=item.scale,
                                          units=item.units, series_uid=series,
                                          instance_number=number))
        for number, item in enumerate(maps.values(), 1)
    ]
    if result is not None:
        sr = explanation_sr(replace(result, maps=dict(maps)), headers[0],
                            [o.dataset for o in objects], series_uid=generate_uid(),
                            verdict=verdict)
        objects.append(DicomObject("sr.dcm", sr))
    return objects


def research_volume_files(maps: dict, volume, *,
                          keep_identifiers: bool = False) -> list[tuple[str, bytes]]:
    """The research export of a volume's maps: ``explanation_pm_<method>_<layer>.dcm`` each.

    See :func:`volume_map_objects` (kind :data:`RESEARCH`).
    """
    objects = volume_map_objects(maps, volume, kind=RESEARCH, keep_identifiers=keep_identifiers)
    return [(RESEARCH_PREFIX + o.name, o.to_bytes()) for o in objects]
