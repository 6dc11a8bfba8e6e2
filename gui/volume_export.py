"""Exporting an explained volume from the three-plane view: reports, plane figure, NIfTI maps.

The export holds what is on screen: the map shown (every map with "all maps"), the shared
window, the overlay's colours and opacity, and planes through the crosshair. It is written on
the worker by :func:`engine.export.volume_report.write_volume_exports`, de-identified.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from gui.export_folder import export_root, remember

#: What a volume export writes.
FORMATS = "pdf,html,png,nifti"


def case_folder(window) -> str:
    """The per-case folder name of an export: the map on screen, no patient identifiers."""
    from engine.export.results import file_key

    return f"lucida_volume_{file_key(window.method or 'map', window.layer or 'input')}"


def export_volume(window) -> int | None:
    """Ask for a folder and export the shown volume's map there (File ▸ Export)."""
    if window.current_result() is None or window.volumes.heat is None:
        window.show_error("nothing to export yet. Fix: open a volume and wait for its map")
        return None
    root = QFileDialog.getExistingDirectory(window, "Export the volume's map into",
                                            str(export_root(window.settings)))
    if not root:
        return None
    return export_volume_to(window, Path(root) / case_folder(window))


def export_volume_to(window, folder: Path, all_maps: bool = False) -> int | None:
    """Export the shown volume's map(s) into ``folder`` on the worker; return the job id."""
    from engine.export.volume_report import write_volume_exports

    result, volume = window.current_result(), window.volumes.volume
    if result is None or volume is None:
        window.show_error("nothing to export yet. Fix: open a volume and wait for its map")
        return None
    state = {**window.view_state(), "window": window.volumes.window}
    point = None if window.volumes.point is None else window.volumes.point.copy()

    def run(progress, cancel, _partial):
        return write_volume_exports(result, volume, folder, FORMATS, figure_options=state,
                                    point=point, all_maps=all_maps, progress=progress,
                                    cancel=cancel)

    def done(paths, _context) -> None:
        remember(window.settings, str(folder), folder.name)
        window.message.setText(f"Exported {len(paths)} file(s) to {folder}")

    return window.jobs.submit("export", run, tag=window.view_tag(), on_done=done)
