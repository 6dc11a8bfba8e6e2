"""Opening files and folders: the one way in, read on the worker, listed in the browser.

Every way of opening (File ▸ Open of files or a folder, a drop, Open recent, the command line,
a saved review, the demo, a PACS retrieve) goes through :meth:`FileOpener.open_paths`, and
every thing shown from what was opened (the first of it, or a study-tree selection) through
:meth:`FileOpener.show`. Opening clears the view before it reads, so nothing of the image
before stays on screen; a failure is said in the view and in Problems.

Reading a folder reports progress file by file. Thumbnails follow in a background job, a batch
at a time; each is drawn from a copy of the image that is dropped once drawn, so a folder of
thousands of files holds headers and thumbnails, not thousands of decoded frames.

A CT or MR series of slices opens as its volume (a 3-D model) or its middle slice (a 2-D
model); a series that is not a volume opens its middle slice and says why. The model is
never changed to suit what is opened: only the demo's own study switches between the demo's
2-D and 3-D models, until the user opens other files or picks a model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QPushButton

from engine.core.errors import LucidaError
from engine.core.resources import DEMO_STUDY
from engine.studies.filetypes import FAILED, IMAGE_PATTERNS, classify
from engine.studies.tree import FileProblem, Series
from gui.study_browser import thumbnail

#: Paths kept in File ▸ Open recent.
RECENT_MAX = 10
#: Thumbnails sent to the browser at a time.
THUMB_BATCH = 16
#: The open dialog's filter. The first, chosen by default, shows every file: DICOM files often
#: have no extension at all (``IM0001`` on a CD), which no pattern of suffixes matches.
DIALOG_FILTER = ("DICOM and images, with or without an extension (*);;"
                 f"Images ({' '.join(IMAGE_PATTERNS)});;NIfTI volumes (*.nii *.nii.gz)")
#: The demo CT series (and the same volume as NIfTI), opened with the demo study.
DEMO_CT = DEMO_STUDY.parent / "demo-ct"
#: Where a failed PACS search or retrieve is listed in Problems.
PACS_PROBLEM = Path("PACS")


def _series_text(image) -> str:
    dataset = image.dataset
    return "" if dataset is None else str(dataset.get("SeriesDescription", ""))


def first_shown(tree, prefer: str | None = None, reads_volumes: bool = True):
    """What to show first of an opened tree: an image, a series' volume or its middle slice.

    In tree order, a CT or MR series of slices stands for what opening it shows
    (:meth:`engine.studies.tree.Series.shown_as`), and NIfTI volumes come last. With
    ``prefer``, the first 2-D image whose series description holds that text comes first (the
    demo opens on a nodule case).
    """
    stacks = {id(series): series for series in tree.all_series()
              if series.volume is not None or series.volume_error}
    if prefer:
        wanted = [image for series in tree.all_series() if id(series) not in stacks
                  for image in series.images if prefer in _series_text(image)]
        if wanted:
            return wanted[0]
    shown = []
    for series in tree.all_series():
        shown += ([series.shown_as(reads_volumes)] if id(series) in stacks
                  else list(series.images))
    shown += list(tree.nifti)
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


class OpenDialog(QFileDialog):
    """File ▸ Open: pick files, or open the folder the dialog shows ("Open this folder").

    A platform dialog picks either files or a folder, never both in one; Qt's own dialog can
    carry a button for the folder, so it is used.
    """

    def __init__(self, parent=None, directory: str = "") -> None:
        super().__init__(parent, "Open images or a folder", directory, DIALOG_FILTER)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setFileMode(QFileDialog.FileMode.ExistingFiles)
        self.folder_button = QPushButton("Open this folder")
        self.folder_button.setToolTip("Open every file in the folder shown, and in its folders")
        self.folder_button.clicked.connect(self._choose_folder)
        self.findChild(QDialogButtonBox).addButton(self.folder_button,
                                                   QDialogButtonBox.ButtonRole.ActionRole)
        self._folder: str | None = None

    def _choose_folder(self) -> None:
        self._folder = self.directory().absolutePath()
        self.done(QDialog.DialogCode.Accepted)

    def chosen(self) -> list[str]:
        """The files or the folder chosen (after ``exec`` returned Accepted)."""
        return [self._folder] if self._folder is not None else self.selectedFiles()


class FileOpener:
    """Turns open requests (dialog, drop, recent, command line, PACS) into worker jobs.

    Parameters
    ----------
    window : QtMainWindow
        Its browser, problems list, settings, ``show_image`` and ``show_nothing`` are used.
    """

    def __init__(self, window) -> None:
        self.window = window
        self.tree = None
        #: The files and folders the open study was read from, as the user chose them.
        self.paths: list[str] = []
        self._asked: list[str] = []  # the paths being read now

    def open_paths(self, paths: list[str], prefer: str | None = None, *, demo: bool = False,
                   refresh: bool = False) -> int:
        """Open files or folders on the worker: the one way in. The view is cleared first.

        Parameters
        ----------
        paths : list of str
            Files or folders.
        prefer : str, optional
            Show first the first 2-D image whose series description contains this text.
        demo : bool
            These are the demo's own files: the demo model may follow what is shown (its 2-D
            or 3-D model) until the user opens other files or picks a model.
        refresh : bool
            Read again a study already open that has grown (a PACS retrieve still arriving):
            the list is updated and what is shown stays.
        """
        window = self.window
        paths = [str(p) for p in paths]
        self._asked = paths
        if not refresh:
            window.models.follows_demo = demo
            self.remember_recent(paths)
            window.show_nothing()
        window.browser.set_reading(paths)
        return window.jobs.submit(
            "open", lambda progress, cancel, _partial: read_tree(paths, progress, cancel),
            on_done=self._opened, on_failed=self._failed,
            on_progress=lambda f, text, _c: window.browser.set_reading(paths, f, text),
            on_cancelled=lambda _c: window.browser.set_reading(None),
            paths=paths, prefer=prefer, refresh=refresh)

    def open_demo(self) -> None:
        """Open the bundled demo study on a nodule case, and the demo model.

        The demo CT series comes with it; selecting it shows three planes and switches to the
        3-D demo model.
        """
        self.open_paths([str(DEMO_STUDY), str(DEMO_CT)], prefer="nodule", demo=True)
        self.window.load_model("demo")

    def open_dialog(self) -> None:
        """Ask for files or a folder (:class:`OpenDialog`) and open them."""
        dialog = OpenDialog(self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.chosen():
            self.open_paths(dialog.chosen())

    def reads_volumes(self) -> bool:
        """Whether a series opens as its volume rather than its middle slice.

        It does when the model reads volumes, when none is loaded yet, and in the demo (whose
        model follows what is shown); a 2-D model gets the middle slice.
        """
        model = self.window.model
        return (model is None or bool(getattr(model, "is_volumetric", False))
                or self.window.models.follows_demo)

    def show(self, entry) -> None:
        """Show an image, a volume or a series (what was opened, or a study-tree selection).

        A slice of a series that is not a volume is shown with the reason above it.
        """
        series = entry if isinstance(entry, Series) else (
            self.tree.series_of(entry) if self.tree is not None else None)
        if isinstance(entry, Series):
            entry = entry.shown_as(self.reads_volumes())
        self.window.show_image(entry)
        if series is not None and series.volume_error:
            self.window.show_error(series.volume_error)

    def not_a_volume(self, image) -> str | None:
        """Why the series of ``image`` (a slice) is not a volume, or None."""
        series = self.tree.series_of(image) if self.tree is not None else None
        if series is None or not series.volume_error:
            return None
        return series.volume_error

    def _failed(self, text: str, _context: dict) -> None:
        self.window.browser.set_reading(None)
        self.window.show_nothing(text)
        self.window.show_error(text)

    def _opened(self, tree, context: dict) -> None:
        window = self.window
        window.browser.set_reading(None)
        images = tree.all_images()
        volumes = tree.all_volumes()
        problems = classify(tree.problems, context["paths"]) + tree.volume_problems()
        failed = [p for p in problems if p.kind == FAILED]
        window.problems.set_problems(problems)
        if len(failed) > 1 or not (images or volumes):
            window.docks["problems"].show()
            window.docks["problems"].raise_()
        if not (images or volumes):
            # Nothing to show: the view says why (it was cleared when the opening began).
            if failed:
                first = failed[0]
                more = (f" (and {len(failed) - 1} more: see View ▸ Problems)"
                        if len(failed) > 1 else "")
                line = f"{first.path}: {first.reason}{more}"
                window.show_nothing(f"Cannot open {first.path.name}\n\n{first.reason}{more}")
            else:
                line = ("no images found in the opened files. Fix: open DICOM files, PNG, "
                        "JPEG, TIFF or BMP images, or NIfTI volumes")
                window.show_nothing(f"No images found\n\n{line}")
            window.show_error(line)
            return
        self.tree, self.paths = tree, list(context["paths"])
        window.browser.set_tree(tree)
        window.jobs.submit("thumbs", lambda _p, cancel, partial: draw_thumbnails(
            images, cancel, partial), background=True,
            on_partial=lambda batch, _c: window.browser.set_thumbnails(batch))
        if context["refresh"] and window.image is not None:
            return  # the study grew: the list is new, what is shown stays
        self.show(first_shown(tree, context.get("prefer"), self.reads_volumes()))
        if failed:
            first = failed[0]
            more = (f" (and {len(failed) - 1} more: see View ▸ Problems)"
                    if len(failed) > 1 else "")
            window.show_error(f"{first.path}: {first.reason}{more}")
        skipped = len(problems) - len(failed)
        if not window.volume_shown() and not window.banner.isVisible():
            window.status.message.setText(
                f"Opened {len(images)} image(s)"
                + (f" and {len(volumes)} volume(s)" if volumes else "")
                + (f"; {skipped} other problem(s) (see Problems)" if skipped else ""))

    # -- PACS -------------------------------------------------------------------------------
    def connect_pacs(self, dock) -> None:
        """Open what the PACS dock retrieves; list its failures in Problems."""
        dock.sig_study_arrived.connect(self.study_arrived)
        dock.sig_retrieved.connect(self.window.message.setText)
        dock.sig_error.connect(self.pacs_failed)

    def study_arrived(self, folder: str) -> None:
        """A retrieved study folder holds new instances: open it, or refresh it if open."""
        self.open_paths([folder], refresh=[folder] in (self.paths, self._asked))

    def pacs_failed(self, line: str) -> None:
        """A PACS search or retrieve failed: say so above the view and in Problems."""
        self.window.problems.add_problem(FileProblem(PACS_PROBLEM, line, FAILED))
        self.window.show_error(line)

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

