"""Opening files and folders: read on the worker, listed in the browser, problems listed too.

Reading a folder reports progress file by file. Thumbnails follow in a background job, a batch
at a time; each is drawn from a copy of the image that is dropped once drawn, so a folder of
thousands of files holds headers and thumbnails, not thousands of decoded frames.

A CT or MR series that makes a volume, and a NIfTI file, open as volumes: the first thing
opened, when it is one, is shown in three planes.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog

from engine.core.errors import LucidaError
from engine.core.resources import DEMO_STUDY
from engine.studies.filetypes import FAILED, IMAGE_PATTERNS, classify
from gui.study_browser import thumbnail

#: Paths kept in File ▸ Open recent.
RECENT_MAX = 10
#: Thumbnails sent to the browser at a time.
THUMB_BATCH = 16
#: The open dialog's filter.
DIALOG_FILTER = (f"Images ({' '.join(IMAGE_PATTERNS)});;NIfTI volumes (*.nii *.nii.gz);;"
                 "All files (*)")
#: The demo CT series (and the same volume as NIfTI), opened with the demo study.
DEMO_CT = DEMO_STUDY.parent / "demo-ct"


def _series_text(image) -> str:
    dataset = image.dataset
    return "" if dataset is None else str(dataset.get("SeriesDescription", ""))


def first_shown(tree, prefer: str | None = None):
    """What to show first of an opened tree: an image, or a volume.

    In tree order, a slice of a series that makes a volume stands for its volume, and NIfTI
    volumes come last. With ``prefer``, the first 2-D image whose series description holds
    that text comes first (the demo opens on a nodule case).
    """
    volume_of = {id(image): series.volume for patient in tree.patients
                 for study in patient.studies for series in study.series
                 if series.volume is not None for image in series.images}
    images = tree.all_images()
    wanted = [i for i in images if prefer and id(i) not in volume_of and prefer in
              _series_text(i)]
    if wanted:
        return wanted[0]
    shown = [volume_of.get(id(i), i) for i in images] + list(tree.nifti)
    return shown[0] if shown else None


def read_tree(paths: list[str], progress, cancel):
    """Open files or folders into a study tree, on the worker thread."""
    from engine.studies.tree import open_paths

    return open_paths(paths, progress=progress, cancel=cancel)


def draw_thumbnails(images: list, cancel, on_partial) -> int:
    """Send ``{path: thumbnail}`` batches for ``images`` (worker thread); return how many.

    Each thumbnail comes from a fresh copy of the file, so the tree's images keep no decoded
    pixels.
    """
    from engine.studies.image import open_image

    batch: dict[str, object] = {}
    done = 0
    for image in images:
        cancel.check()
        try:
            batch[str(image.path)] = thumbnail(open_image(image.path))
        except LucidaError:
            pass  # the tree still lists it; opening it shows the reason in place
        done += 1
        if len(batch) >= THUMB_BATCH:
            on_partial(batch)
            batch = {}
    if batch:
        on_partial(batch)
    return done


class FileOpener:
    """Turns open requests (dialog, drop, recent, command line) into worker jobs.

    Parameters
    ----------
    window : QtMainWindow
        Its browser, problems list, settings and ``show_image`` are used.
    """

    def __init__(self, window) -> None:
        self.window = window
        self.tree = None
        #: The files and folders the open study was read from, as the user chose them.
        self.paths: list[str] = []

    def open_paths(self, paths: list[str], prefer: str | None = None) -> int:
        """Open files or folders on the worker; the first image is shown when they are read.

        Parameters
        ----------
        paths : list of str
            Files or folders.
        prefer : str, optional
            Show first the first 2-D image whose series description contains this text.
        """
        paths = [str(p) for p in paths]
        self.remember_recent(paths)
        self.window.browser.set_reading(paths)
        return self.window.jobs.submit(
            "open", lambda progress, cancel, _partial: read_tree(paths, progress, cancel),
            on_done=self._opened, on_failed=self._failed,
            on_progress=lambda f, text, _c: self.window.browser.set_reading(paths, f, text),
            on_cancelled=lambda _c: self.window.browser.set_reading(None),
            paths=paths, prefer=prefer)

    def open_demo(self) -> None:
        """Open the bundled demo study on a nodule case, and the demo model.

        The demo CT series comes with it; selecting it shows three planes and switches to the
        3-D demo model.
        """
        self.open_paths([str(DEMO_STUDY), str(DEMO_CT)], prefer="nodule")
        self.window.load_model("demo")

    def open_dialog(self) -> None:
        """Ask for files with the platform's dialog and open them."""
        files, _ = QFileDialog.getOpenFileNames(self.window, "Open images", "", DIALOG_FILTER)
        if files:
            self.open_paths(files)

    def _failed(self, text: str, _context: dict) -> None:
        self.window.browser.set_reading(None)
        self.window.show_error(text)

    def _opened(self, tree, context: dict) -> None:
        window = self.window
        window.browser.set_reading(None)
        images = tree.all_images()
        volumes = tree.all_volumes()
        problems = classify(tree.problems, context["paths"])
        failed = [p for p in problems if p.kind == FAILED]
        window.problems.set_problems(problems)
        if images or volumes:  # a drop of unreadable files keeps the study that is open
            self.tree, self.paths = tree, list(context["paths"])
            window.browser.set_tree(tree)
            window.jobs.submit("thumbs", lambda _p, cancel, partial: draw_thumbnails(
                images, cancel, partial), background=True,
                on_partial=lambda batch, _c: window.browser.set_thumbnails(batch))
        if failed:
            first = failed[0]
            more = (f" (and {len(failed) - 1} more: see View ▸ Problems)"
                    if len(failed) > 1 else "")
            window.show_error(f"{first.path}: {first.reason}{more}")
            if len(failed) > 1:
                window.docks["problems"].show()
                window.docks["problems"].raise_()
        if images or volumes:
            window.show_image(first_shown(tree, context.get("prefer")))
            skipped = len(problems) - len(failed)
            if not window.volume_shown():
                window.status.message.setText(
                    f"Opened {len(images)} image(s)"
                    + (f" and {len(volumes)} volume(s)" if volumes else "")
                    + (f"; {skipped} other file(s) skipped (see Problems)" if skipped else ""))
        elif not failed:
            window.show_error("no images found in the opened files. Fix: open DICOM files, "
                              "PNG, JPEG, TIFF or BMP images, or NIfTI volumes")

    # -- recent files -----------------------------------------------------------------------
    def remember_recent(self, paths: list[str]) -> None:
        """Put ``paths`` first in File ▸ Open recent."""
        settings = self.window.settings
        recent = [p for p in settings.value("recent", [], type=list) if p not in paths]
        settings.setValue("recent", (paths + recent)[:RECENT_MAX])
        self.fill_recent()

    def fill_recent(self) -> None:
        """Rebuild the Open recent menu from the settings."""
        menu = self.window.recent_menu
        menu.clear()
        for path in self.window.settings.value("recent", [], type=list):
            menu.addAction(path, lambda p=path: self.open_paths([p]))
        menu.setEnabled(not menu.isEmpty())

