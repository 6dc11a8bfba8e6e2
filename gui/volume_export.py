"""Exporting an explained volume from the three-plane view, in the same dialog as an image.

The export dialog (:class:`gui.export_dialog.QtExportDialog`) offers a volume's outputs: the
PDF and HTML reports, the planes figure, the maps as NIfTI and as multi-frame Parametric Maps;
de-identified by default; the map on screen or every map; or filing into the patient's study
(Parametric Maps and an SR of the prediction and verdict). The export holds what is on screen:
the map shown, the shared window, the overlay's colours and opacity, and planes through the
crosshair. Files are written on a worker thread by
:func:`engine.export.volume_report.write_volume_exports`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtWidgets import QFormLayout

from gui.export_dialog import QtExportDialog
from gui.export_folder import export_root, remember
from gui.reviewed_state import reviewed_view

#: (label, write_volume_exports format, checked by default)
VOLUME_OUTPUTS = (
    ("Report (PDF)", "pdf", True),
    ("Report (HTML)", "html", False),
    ("Planes figure (PNG)", "png", True),
    ("Maps as NIfTI", "nifti", False),
    ("DICOM Parametric Map, multi-frame (DICOM series only)", "pm", False),
)


@dataclass
class PlanesPreview:
    """The planes figure as the dialog's preview shows it."""

    rgb: object
    caption: str
    burned_in: list = field(default_factory=list)


def _draw_planes(result, volume, options, all_maps: bool, point) -> PlanesPreview:
    """The planes figure of the reviewed maps, drawn for the preview."""
    from engine.export import reviewed_maps
    from engine.export.figure import prediction_line
    from engine.export.provenance import method_title
    from engine.export.volume import plane_figure

    keys = reviewed_maps(result, options, all_maps)
    items = [result.maps[key] for key in keys]
    rgb = plane_figure(volume, [(f"{method_title(m)} {lay}", item.heatmap)
                                for (m, lay), item in zip(keys, items, strict=True)],
                       point, options.window, options.colormap, options.opacity,
                       threshold=options.threshold, signed=any(i.signed for i in items),
                       units=", ".join(dict.fromkeys(i.units for i in items)),
                       prediction=prediction_line(result))
    return PlanesPreview(rgb, f"{len(keys)} map(s): axial, coronal and sagittal planes")


class QtVolumeExportDialog(QtExportDialog):
    """The export dialog for a volume: its outputs, its planes figure, its series' study.

    Parameters
    ----------
    parent : QWidget or None
    result : ExplainResult
        A 3-D model's explanation of ``volume``.
    volume : Volume
        The explained volume (a DICOM series can be filed into its study).
    view_state : ReviewedView
        What the window shows, the shared window included.
    point : numpy.ndarray or None
        LPS mm the planes pass through (the crosshair); each map's peak when None.
    """

    outputs = VOLUME_OUTPUTS

    def __init__(self, parent, result, volume, view_state, point=None) -> None:
        self._point = point
        super().__init__(parent, result, volume, view_state)
        self.setWindowTitle("Export the volume")
        self.all_maps.setText(f"All maps: every computed map ({len(result.maps)})")
        # The planes figure has one layout and is drawn at screen resolution.
        form = self.findChild(QFormLayout)
        for box in (self.layout_box, self.resolution_box):
            form.setRowVisible(box, False)
        self.kinds.filing_what.setText(
            "Sends a multi-frame Parametric Map per map and a Comprehensive SR of the "
            "prediction and the verdict, with the patient's identifiers, as new series of "
            "the series' study. A copy is kept in the folder.")

    def study_image(self):
        """The series' first slice (its study is the volume's); None for a NIfTI volume."""
        images = getattr(self._image, "images", None) or []
        return images[0] if images else None

    def preview_call(self, options) -> tuple:
        """The planes figure of the reviewed maps (see :func:`_draw_planes`)."""
        return _draw_planes, (self._result, self._image, options, self.all_maps.isChecked(),
                              self._point)

    def write_call(self, folder: Path) -> tuple:
        """:func:`engine.export.volume_report.write_volume_exports` of the chosen formats."""
        from engine.export.volume_report import write_volume_exports

        return write_volume_exports, (self._result, self._image, folder, self.formats()), {
            "keep_identifiers": not self.deidentify.isChecked(),
            "figure_options": self.options(), "view": self.view, "point": self._point,
            "all_maps": self.all_maps.isChecked()}

    def filing_call(self, folder: Path) -> tuple:
        """:func:`engine.pacs.filing.file_reviewed_volume` of the reviewed maps."""
        from engine.export import reviewed_maps
        from engine.pacs.filing import file_reviewed_volume

        options = self.options()
        reviewed_maps(self._result, options, self.all_maps.isChecked())  # says what is missing
        return file_reviewed_volume, (self._result, self._image, folder), {
            "options": options, "all_maps": self.all_maps.isChecked(),
            "verdict": self.view.verdict}


def export_volume(window) -> QtVolumeExportDialog | None:
    """Open the export dialog for the shown volume's map (File ▸ Export)."""
    result, volume = window.current_result(), window.volumes.volume
    if result is None or volume is None or window.volumes.heat is None:
        window.show_error("nothing to export yet. Fix: open a volume and wait for its map")
        return None
    dialog = QtVolumeExportDialog(window, result, volume, _view(window), _point(window))
    case = Path(dialog.folder.text()).name
    dialog.folder.setText(str(export_root(window.settings) / case))
    dialog.sig_exported.connect(lambda _paths: remember(window.settings, dialog.folder.text(),
                                                        case))
    dialog.sig_exported.connect(lambda paths: window.message.setText(
        f"Exported {len(paths)} file(s) to {dialog.folder.text()}"))
    dialog.show()
    window._export_dialog = dialog
    return dialog


def _view(window):
    """The window's reviewed view, with the window the three planes share."""
    view = reviewed_view(window)
    shared = window.volumes.window
    return view if shared is None else replace(view, window=tuple(float(v) for v in shared))


def _point(window):
    return None if window.volumes.point is None else window.volumes.point.copy()


def export_volume_to(window, folder: Path, formats=("pdf", "html", "png", "nifti"),
                     all_maps: bool = False) -> int | None:
    """Export the shown volume's map(s) into ``folder`` on the worker, de-identified, without
    the dialog (the window's scripted export); return the job id."""
    from engine.export.volume_report import write_volume_exports

    result, volume = window.current_result(), window.volumes.volume
    if result is None or volume is None:
        window.show_error("nothing to export yet. Fix: open a volume and wait for its map")
        return None
    view, point = _view(window), _point(window)

    def run(progress, cancel, _partial):
        return write_volume_exports(result, volume, folder, formats, view=view, point=point,
                                    all_maps=all_maps, progress=progress, cancel=cancel)

    def done(paths, _context) -> None:
        remember(window.settings, str(folder), folder.name)
        window.message.setText(f"Exported {len(paths)} file(s) to {folder}")

    return window.jobs.submit("export", run, tag=window.view_tag(), on_done=done)
