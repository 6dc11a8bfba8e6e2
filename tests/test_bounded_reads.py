"""Reading is bounded and cancellable: a file that cannot be an image is refused from its first
bytes, and every read (header, deferred pixel data, content hash) stops when its work is
cancelled. Bytes are counted by the kernel (``/proc/self/io``), not timed."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from gui_fixtures import PYDICOM_FILES

from engine.core.cancel import Cancelled, CancelToken, cancel_scope
from engine.core.errors import NotAnImage
from engine.core.hashing import sha256_file
from engine.studies.dicom_io import HEAD_BYTES, could_be_dicom
from engine.studies.image import open_image
from engine.studies.tree import open_paths

#: A sparse file of this size costs no disk.
HUGE = 2 * 1024**3
#: More than a header check needs, far less than reading a huge file.
SMALL_READ = 1 << 20


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux ``rchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("/proc/self/io has no rchar line")


def sparse(path: Path, start: bytes = b"", size: int = HUGE) -> Path:
    """Write ``start``, then zeros up to ``size`` bytes, without using the disk for them."""
    with open(path, "wb") as fh:
        fh.write(start)
        fh.truncate(size)
    return path


def slow_start() -> bytes:
    """A valid first element ((0008,0005) Specific Character Set, implicit VR): the header
    check lets the file through, and pydicom then reads zeros, element by element."""
    return struct.pack("<HHL", 0x0008, 0x0005, 10) + b"ISO_IR 100"


class ByteBudget(CancelToken):
    """A real token, cancelled once the process has read ``budget`` more bytes: the read is
    under way when the cancel arrives, with no thread and no timing involved."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self._limit = bytes_read() + budget

    def check(self) -> None:
        if bytes_read() > self._limit:
            self.cancel()
        super().check()


@pytest.fixture(autouse=True)
def _warm(tmp_path):
    """Refuse one small file first, so lazy imports do not count as bytes read."""
    with pytest.raises(NotAnImage):
        open_image(sparse(tmp_path / "warm.dcm", size=4096))


def test_a_2gb_file_of_zeros_is_refused_from_its_header(tmp_path):
    huge = sparse(tmp_path / "huge.dcm")
    before = bytes_read()
    with pytest.raises(NotAnImage) as caught:
        open_image(huge)
    assert bytes_read() - before < SMALL_READ
    line = caught.value.one_line()
    assert line.startswith(str(huge)) and "is not a DICOM or image file" in line
    assert "Fix: open DICOM files or PNG" in line and "\n" not in line


def test_a_dicm_preamble_before_zeros_is_refused_too(tmp_path):
    huge = sparse(tmp_path / "preamble.dcm", b"\0" * 128 + b"DICM")
    before = bytes_read()
    with pytest.raises(NotAnImage):
        open_image(huge)
    assert bytes_read() - before < SMALL_READ


def test_a_study_folder_with_a_huge_zero_file_lists_it_without_reading_it(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    sparse(folder / "IM0001")
    before = bytes_read()
    tree = open_paths([folder])
    assert bytes_read() - before < SMALL_READ
    (problem,) = tree.problems
    assert problem.path.name == "IM0001" and "not a DICOM or image file" in problem.reason


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on its own odd test files
def test_every_dicom_test_file_passes_the_header_check():
    checked = 0
    for path in sorted(PYDICOM_FILES.glob("*.dcm")):
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        if "SOPClassUID" not in ds and "Rows" not in ds:
            continue  # not DICOM enough for pydicom either
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        assert could_be_dicom(head, path.stat().st_size), path.name
        checked += 1
    assert checked > 50


def test_the_header_check_refuses_zeros_text_and_item_tags():
    assert not could_be_dicom(b"\0" * 4096, HUGE)
    assert not could_be_dicom(b"hello, this is a README file\n" * 10, 300)
    assert not could_be_dicom(struct.pack("<HHL", 0xFFFE, 0xE000, 0) + b"\0" * 8, 16)
    # An element claiming more bytes than the file holds.
    assert not could_be_dicom(struct.pack("<HHL", 0x0008, 0x0016, 4000), 100)
    assert could_be_dicom(slow_start(), 18)


def test_reading_a_slow_file_stops_when_its_work_is_cancelled(tmp_path):
    slow = sparse(tmp_path / "slow.dcm", slow_start())
    token = ByteBudget(4 << 20)
    before = bytes_read()
    with cancel_scope(token), pytest.raises(Cancelled):
        open_image(slow)
    assert token.cancelled
    # pydicom reads 8 bytes per empty element: it stopped right after the budget.
    assert 4 << 20 < bytes_read() - before < 8 << 20


def _big_dicom(path: Path) -> Path:
    """A 512 × 512 16-bit CT slice: its 512 KB of pixel data stay on disk until decoded."""
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.Rows = ds.Columns = 512
    ds.PixelData = np.arange(512 * 512, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_decoding_deferred_pixel_data_stops_when_cancelled(tmp_path):
    image = open_image(_big_dicom(tmp_path / "big.dcm"))
    stopped = CancelToken()
    stopped.cancel()
    with cancel_scope(stopped), pytest.raises(Cancelled):
        image.modality_frame(0)
    # Not cached as a failure: the next request decodes it.
    assert image.modality_frame(0).shape == (512, 512)


def test_the_content_hash_stops_when_cancelled_and_runs_later(tmp_path):
    image = open_image(_big_dicom(tmp_path / "big.dcm"))
    stopped = CancelToken()
    stopped.cancel()
    with pytest.raises(Cancelled):
        sha256_file(image.path, cancel=stopped)
    with cancel_scope(stopped), pytest.raises(Cancelled):
        image.content_id(0)
    assert image.content_id(0).digest == sha256_file(image.path)
