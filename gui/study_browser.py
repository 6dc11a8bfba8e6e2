"""The study browser: Patient / Study / Series / image tree with thumbnails and file drops.

A CT or MR series of slices is one row, with the thumbnail of its middle slice, as viewers
list a series: selecting it opens the series (its volume in axial, coronal and sagittal
planes, or its middle slice for a 2-D model; the window decides). Its slices are folded under
it and still open one by one. NIfTI files are listed as volumes under their own heading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.studies.names import person_name
from gui.viewer import qimage_from_array

#: Thumbnail edge in pixels.
THUMB = 56
IMAGE_ROLE = Qt.ItemDataRole.UserRole
#: The ``engine.studies.tree.Series`` a series row opens.
SERIES_ROLE = Qt.ItemDataRole.UserRole + 1
HINT = "Drop DICOM or image files here, or use File ▸ Open."
#: Marks a series row that opens as a volume in three planes.
VOLUME_MARK = "▦"


def thumbnail(image, size: int = THUMB) -> np.ndarray:
    """Return a small RGB rendering of an image's first frame (computed on the worker).

    Parameters
    ----------
    image : engine.studies.image.Image
        The image.
    size : int
        Longest edge of the thumbnail in pixels.

    Returns
    -------
    numpy.ndarray
        uint8 (h, w, 3) with max(h, w) == size (or smaller for tiny images).
    """
    rgb = image.render(0)
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / size)))
    return np.ascontiguousarray(rgb[::step, ::step])


def _date(text: str) -> str:
    """Show a DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as given."""
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _is_volume(item: QTreeWidgetItem) -> bool:
    return getattr(item.data(0, IMAGE_ROLE), "kind", None) == "volume"


class QtStudyBrowser(QWidget):
    """Tree of what is open; a click on an image, a volume or a series selects it.

    Signals
    -------
    sig_image_selected(object image)
        An image or a NIfTI volume was selected.
    sig_series_selected(object series)
        A CT or MR series row was selected (an ``engine.studies.tree.Series``).
    sig_files_dropped(list paths)
    """

    sig_image_selected = Signal(object)
    sig_series_selected = Signal(object)
    sig_files_dropped = Signal(list)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMB, THUMB))
        self.tree.setIndentation(12)
        self.tree.itemClicked.connect(self._clicked)
        self.tree.itemActivated.connect(self._clicked)
        self._items: dict[str, list[QTreeWidgetItem]] = {}
        self.hint = QLabel(HINT)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(mid);")
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.hint)
        self.setAcceptDrops(True)

    def set_reading(self, paths: list[str] | None, fraction: float = 0.0, name: str = "") -> None:
        """Say what is being read (``None`` when reading is over)."""
        if paths is None:
            self.hint.setText(HINT)
            self.hint.setVisible(self.tree.topLevelItemCount() == 0)
            return
        what = Path(paths[0]).name + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
        self.hint.setText(f"Reading {what}: {fraction:.0%}" + (f" ({name})" if name else ""))
        self.hint.setVisible(True)

    def set_tree(self, tree, thumbnails: dict[str, np.ndarray] | None = None) -> None:
        """Show a ``StudyTree`` (patients -> studies -> series -> images)."""
        thumbnails = thumbnails or {}
        self.tree.clear()
        self._items = {}
        folded = []
        for patient in tree.patients:
            name = person_name(patient.name) or "Anonymous"
            p_item = QTreeWidgetItem([name])
            p_item.setToolTip(0, f"Patient ID {patient.id}" if patient.id else name)
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies:
                date = _date(study.date)
                s_item = QTreeWidgetItem([" ".join(t for t in (date, study.description) if t)
                                          or "Study"])
                s_item.setToolTip(0, f"Accession {study.accession}" if study.accession
                                  else study.uid)
                p_item.addChild(s_item)
                for series in study.series:
                    images = list(series.images)
                    words = (series.modality, series.description or
                             (f"series {series.number}" if series.number else ""))
                    title = " ".join(w for w in words if w) or "Series"
                    if len(images) == 1:
                        # A one-image series is the image: one row, not two.
                        if not series.description:
                            title = f"{series.modality} {images[0].path.name}".strip()
                        s_item.addChild(self._image_item(images[0], title, thumbnails))
                        self._remember(images[0], s_item.child(s_item.childCount() - 1))
                        continue
                    se_item = QTreeWidgetItem([f"{title} ({len(images)})"])
                    s_item.addChild(se_item)
                    if series.volume is not None or series.volume_error:
                        self._series_row(se_item, series, thumbnails)
                        folded.append(se_item)
                    for image in images:
                        se_item.addChild(self._image_item(image, image.path.name, thumbnails))
                        self._remember(image, se_item.child(se_item.childCount() - 1))
        if tree.nifti:
            n_item = QTreeWidgetItem(["NIfTI volumes"])
            self.tree.addTopLevelItem(n_item)
            for volume in tree.nifti:
                n_item.addChild(self._volume_item(volume, volume.path.name))
        self.tree.expandAll()
        for item in folded:  # a series of slices is one row; its slices fold under it
            item.setExpanded(False)
        self.hint.setVisible(self.tree.topLevelItemCount() == 0)

    def _remember(self, image, item: QTreeWidgetItem) -> None:
        self._items.setdefault(str(image.path), []).append(item)

    def _series_row(self, item: QTreeWidgetItem, series, thumbnails: dict) -> None:
        """Make ``item`` the one row of a CT or MR series: it opens the series."""
        item.setData(0, SERIES_ROLE, series)
        if series.volume is not None:
            volume = series.volume
            s, r, c = volume.shape
            ds, dr, dc = volume.spacing
            item.setData(0, IMAGE_ROLE, volume)
            item.setText(0, f"{VOLUME_MARK} {item.text(0)}")
            item.setToolTip(0, f"{s} × {r} × {c} voxels, {ds:.2f} × {dr:.2f} × {dc:.2f} mm: "
                               "opens in axial, coronal and sagittal planes")
        else:
            item.setToolTip(0, f"Not a volume: {series.volume_error}")
        middle = series.middle
        self._remember(middle, item)
        thumb = thumbnails.get(str(middle.path))
        if thumb is not None:
            item.setIcon(0, QIcon(QPixmap.fromImage(qimage_from_array(thumb))))

    def set_thumbnails(self, thumbnails: dict[str, np.ndarray]) -> None:
        """Give the listed images (and the series they stand for) their thumbnails."""
        for path, thumb in thumbnails.items():
            for item in self._items.get(path, []):
                item.setIcon(0, QIcon(QPixmap.fromImage(qimage_from_array(thumb))))

    @staticmethod
    def _image_item(image, title: str, thumbnails: dict) -> QTreeWidgetItem:
        item = QTreeWidgetItem([title])
        item.setData(0, IMAGE_ROLE, image)
        item.setToolTip(0, str(image.path))
        thumb = thumbnails.get(str(image.path))
        if thumb is not None:
            item.setIcon(0, QIcon(QPixmap.fromImage(qimage_from_array(thumb))))
        return item

    @staticmethod
    def _volume_item(volume, title: str) -> QTreeWidgetItem:
        s, r, c = volume.shape
        ds, dr, dc = volume.spacing
        item = QTreeWidgetItem([title])
        item.setData(0, IMAGE_ROLE, volume)
        item.setToolTip(0, f"{volume.path}\n{s} × {r} × {c} voxels, "
                           f"{ds:.2f} × {dr:.2f} × {dc:.2f} mm")
        return item

    def volume_items(self) -> list[QTreeWidgetItem]:
        """Return the rows that open a volume (a series' row, or a NIfTI file's)."""
        return [item for item in self._rows() if _is_volume(item)]

    def series_items(self) -> list[QTreeWidgetItem]:
        """Return the rows that open a CT or MR series (one row per series)."""
        return [item for item in self._rows() if item.data(0, SERIES_ROLE) is not None]

    def select_image(self, image) -> None:
        """Highlight the row of ``image`` (without emitting a selection).

        A slice of a folded series highlights the series' row: the series stays one row.
        """
        for item in self._rows():
            if item.data(0, IMAGE_ROLE) is image:
                parent = item.parent()
                if (parent is not None and parent.data(0, SERIES_ROLE) is not None
                        and not parent.isExpanded()):
                    item = parent
                self.tree.blockSignals(True)
                self.tree.setCurrentItem(item)
                self.tree.blockSignals(False)
                self.tree.scrollToItem(item)
                return

    def image_items(self) -> list[QTreeWidgetItem]:
        """Return the rows of single images (a series' slices among them)."""
        return [item for item in self._rows()
                if item.childCount() == 0 and not _is_volume(item)]

    def _rows(self) -> list[QTreeWidgetItem]:
        """Every row that opens something, in tree order."""
        found = []

        def walk(item: QTreeWidgetItem) -> None:
            if item.data(0, IMAGE_ROLE) is not None or item.data(0, SERIES_ROLE) is not None:
                found.append(item)
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return found

    def _clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        series = item.data(0, SERIES_ROLE)
        if series is not None:
            self.sig_series_selected.emit(series)
            return
        image = item.data(0, IMAGE_ROLE)
        if image is not None:
            self.sig_image_selected.emit(image)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.sig_files_dropped.emit(paths)
            event.acceptProposedAction()
