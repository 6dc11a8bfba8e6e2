"""Small inputs for the GUI tests: real files opened by the engine, made on the fly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from engine.studies.image import open_image

PYDICOM_FILES = Path(__import__("pydicom").__file__).parent / "data" / "test_files"


def raster_image(folder: Path, size: tuple[int, int] = (48, 64)):
    """Open a grey PNG with a diagonal gradient (so windowing visibly changes it)."""
    rows, cols = size
    grid = np.add.outer(np.arange(rows), np.arange(cols)).astype(np.float32)
    pixels = (255 * grid / grid.max()).astype(np.uint8)
    path = folder / "gradient.png"
    PILImage.fromarray(pixels).save(path)
    return open_image(path)


def ct_image():
    """Open pydicom's bundled CT slice (signed, rescaled to HU)."""
    return open_image(PYDICOM_FILES / "CT_small.dcm")


def multiframe_image():
    """Open pydicom's bundled multi-frame grey RT dose."""
    return open_image(PYDICOM_FILES / "rtdose.dcm")


def ramp_heatmap(shape: tuple[int, int]) -> np.ndarray:
    """Return a left-to-right heat ramp from 0 to 1 in image geometry."""
    rows, cols = shape
    return np.tile(np.linspace(0.0, 1.0, cols, dtype=np.float32), (rows, 1))


def qimage_pixels(image) -> np.ndarray:
    """The RGB pixels of a ``QImage`` as a (rows, columns, 3) uint8 array."""
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    # Qt pads each row to 4 bytes: cut the padding before reshaping.
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def click_item(tree, item) -> None:
    """Click a row of a tree widget (the study tree, the prediction list) as a person would."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    tree.scrollToItem(item)
    QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     tree.visualItemRect(item).center())


def drag(viewer, start, end) -> None:
    """Left-drag with real mouse events on a viewer's viewport between two scene points."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    port = viewer.viewport()
    a, b = viewer.mapFromScene(start), viewer.mapFromScene(end)
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(port, (a + b) / 2)
    QTest.mouseMove(port, b)
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


#: Generous limit for one explanation on a loaded 2-core machine.
WAIT_MS = 60_000


def pump(qapp, until, timeout_ms: int = WAIT_MS) -> bool:
    """Process events until ``until()`` is true; return whether it became true in time."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not until():
        if time.monotonic() > deadline:
            return False
        qapp.processEvents()
        time.sleep(0.005)
    return True


def demo_window(qapp, folder: Path):
    """Open a review window on the demo study and model; return it once its first map is drawn.

    Its settings live in ``folder``, so no test sees another's layout or export folder.
    """
    from PySide6.QtCore import QSettings

    from gui.main_window import QtMainWindow

    settings = QSettings(str(folder / "lucida.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.show()
    drawn = []
    win.sig_map_drawn.connect(lambda m, lay: drawn.append((m, lay)))
    win.open_demo()
    assert pump(qapp, lambda: drawn and win.result is not None), \
        "the demo never drew an explanation"
    return win


def image_named(window, name: str):
    """The image called ``name`` in the window's study browser."""
    from gui.study_browser import IMAGE_ROLE

    for item in window.browser.image_items():
        if item.data(0, IMAGE_ROLE).path.name == name:
            return item
    raise KeyError(name)


def write_multiframe(path: Path, n_frames: int = 12, size: int = 96,
                     syntax: str | None = None) -> Path:
    """Write a multi-frame CR-like DICOM of demo phantoms, each frame a little brighter.

    Frames differ in content (a nodule on every other frame) and in level, so maps, pixel
    values and captions of two frames tell them apart. ``syntax`` compresses the pixel data
    (a transfer syntax UID such as JPEG 2000 Lossless); by default it is stored uncompressed.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    from engine.demo.files import phantom_dataset, stored_values
    from engine.demo.phantoms import make_phantom

    frames = []
    first = None
    for n in range(n_frames):
        phantom = make_phantom(np.random.default_rng([7, n]), nodule=bool(n % 2), marker=False,
                               size=size)
        first = first or phantom
        frames.append(stored_values(np.clip(phantom.pixels + 0.002 * n, 0.0, 1.0)))
    ds = phantom_dataset(first, 0, 7, modality="CR", mono1=False)
    ds.NumberOfFrames = n_frames
    ds.PixelData = np.stack(frames).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if syntax is not None:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


class UrlCatcher(QObject):
    """Stands in for the desktop: records the URLs the window asks QDesktopServices to open."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@contextmanager
def caught_urls(schemes: tuple[str, ...] = ("file",)) -> Iterator[UrlCatcher]:
    """Catch the URLs opened with ``schemes`` while the block runs; nothing is opened."""
    catcher = UrlCatcher()
    for scheme in schemes:
        QDesktopServices.setUrlHandler(scheme, catcher, "open")
    try:
        yield catcher
    finally:
        for scheme in schemes:
            QDesktopServices.unsetUrlHandler(scheme)
