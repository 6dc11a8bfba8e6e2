"""Bad input only ever raises Lucida's typed errors, with one line naming the file and the fix."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.pixels.decoders.base import Decoder
from studies_fixtures import bundled, read

from engine.cli import main as cli_main
from engine.core.errors import CodecError, LucidaError, NotAnImage, StudyError, UsageError
from engine.studies.image import open_image


def _assert_one_line(exc: LucidaError, path) -> str:
    line = exc.one_line()
    assert "\n" not in line and str(path) in line and "Fix:" in line
    return line


def test_truncated_file_is_study_error():
    path = bundled("MR_truncated.dcm")
    with pytest.raises(StudyError) as info:
        open_image(path)
    assert "truncated" in _assert_one_line(info.value, path)


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm"])
def test_objects_without_pixel_data(name):
    path = bundled(name)
    with pytest.raises(NotAnImage) as info:
        open_image(path)
    assert "holds no image" in _assert_one_line(info.value, path)


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEG2000.dcm", "CT_small.dcm"]
)
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.98])
def test_truncated_pixel_data_is_called_truncated(tmp_path, name, keep):
    data = bundled(name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(StudyError) as info:
        open_image(path).render()
    assert not isinstance(info.value, NotAnImage)
    line = _assert_one_line(info.value, path)
    assert "pixel data is" in line and "truncated" in line and "not a DICOM" not in line


def test_text_read_as_dicom_is_not_an_image(tmp_path):
    path = tmp_path / "notes"
    path.write_bytes(b"Patient list\n" + bytes(range(256)) * 3)
    with pytest.raises(NotAnImage, match="not a DICOM or image file"):
        open_image(path)


def test_unsupported_photometric(tmp_path):
    ds = read("MR_small.dcm")
    ds.PhotometricInterpretation = "HSV"
    ds.save_as(tmp_path / "hsv.dcm")
    with pytest.raises(StudyError) as info:
        open_image(tmp_path / "hsv.dcm")
    assert "'HSV' is not supported" in _assert_one_line(info.value, tmp_path / "hsv.dcm")


def test_missing_codec_names_the_package(monkeypatch, tmp_path):
    path = tmp_path / "j2k.dcm"
    shutil.copy(bundled("MR_small_jp2klossless.dcm"), path)
    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(CodecError) as info:
        open_image(path)
    assert "pip install pylibjpeg-openjpeg" in _assert_one_line(info.value, path)


def test_codec_without_the_needed_capability_names_the_package():
    path = bundled("JPGExtended.dcm")
    image = open_image(path)  # the header is fine; the 12-bit JPEG is not decodable here
    with pytest.raises(CodecError) as info:
        image.render()
    assert "pip install pylibjpeg-libjpeg" in _assert_one_line(info.value, path)


def test_not_an_image_missing_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for path, words in (
        (tmp_path / "notes.txt", "not a DICOM or image file"),
        (tmp_path / "missing.dcm", "no such file"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(StudyError) as info:
            open_image(path)
        assert words in _assert_one_line(info.value, path)


def test_bad_frame_and_window_are_usage_errors(tmp_path, capsys):
    image = open_image(bundled("MR_small.dcm"))
    with pytest.raises(UsageError, match="out of range"):
        image.render(1)
    with pytest.raises(UsageError, match="width > 0"):
        image.render(window=(40, 0))
    with pytest.raises(UsageError, match="center, width"):
        image.render(window="soft")
    out = str(tmp_path / "x.png")
    assert cli_main(["render", str(bundled("MR_small.dcm")), "--out", out, "--window", "a,b"]) == 2
    assert "is not CENTER,WIDTH" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seed_bytes():
    return {name: bundled(name).read_bytes() for name in ("MR_small.dcm", "MR_small_RLE.dcm")}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    which=st.sampled_from(["MR_small.dcm", "MR_small_RLE.dcm"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=12000)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=12000), st.integers(0, 255)), max_size=12
    ),
)
def test_mutated_and_truncated_dicom_only_raises_typed_errors(
    tmp_path_factory, seed_bytes, which, cut, edits
):
    data = bytearray(seed_bytes[which])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    if cut is not None:
        data = data[:cut]
    path = tmp_path_factory.mktemp("fuzz") / "mutated.dcm"
    path.write_bytes(bytes(data))
    try:
        image = open_image(path)
        image.info()
        image.identifiers()
        image.render(image.n_frames - 1)
        image.render(window=(100.0, 50.0), invert=True)
        image.model_input(window="minmax")
        image.model_input()
    except LucidaError as exc:
        assert "\n" not in exc.one_line()


def _panicking_rle(path):
    """An RLE frame whose first segment decodes to more bytes than the frame holds.

    pylibjpeg-rle (Rust) panics on it: it prints the panic and a backtrace to the process's
    stderr before the error reaches Python.
    """
    import struct

    from pydicom.encaps import encapsulate

    ds = read("MR_small_RLE.dcm")
    first = bytes([0x81, 7]) * 40  # 40 runs of 128 bytes: 5120 > the 4096 a segment holds
    second = bytes([0x81, 0]) * 32
    header = struct.pack("<16I", 2, 64, 64 + len(first), *([0] * 13))
    ds.PixelData = encapsulate([header + first + second])
    ds.save_as(path)
    return path


def test_a_decoder_panic_reaches_the_user_as_one_line_only(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("RUST_BACKTRACE", "1")
    path = _panicking_rle(tmp_path / "panic.dcm")
    image = open_image(path)
    with pytest.raises(StudyError) as info:
        image.render()
    _assert_one_line(info.value, path)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    assert cli_main(["render", str(path), "--out", str(tmp_path / "p.png")]) == 2
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "panicked" not in err
    assert str(path) in err and not (tmp_path / "p.png").exists()
