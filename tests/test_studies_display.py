"""The display pipeline against pydicom's own functions, on pydicom's bundled test files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, pixel_array
from pydicom.sequence import Sequence
from studies_fixtures import (
    assert_close_8bit,
    bundled,
    pydicom_voi_lut_8bit,
    pydicom_window_8bit,
    read,
)

from engine.studies import dicom_io
from engine.studies.image import open_image
from engine.studies.windows import WindowPreset

MR_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_padded.dcm",
]


def _grey(rgb: np.ndarray) -> np.ndarray:
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    return rgb[..., 0]


@pytest.mark.parametrize("name", ["MR_small.dcm", "693_J2KI.dcm", "examples_overlay.dcm"])
def test_file_windows_match_pydicom(name):
    ds = read(name)
    image = open_image(bundled(name))
    centers = ds.WindowCenter if ds["WindowCenter"].VM > 1 else [ds.WindowCenter]
    assert len(image.presets) == len(centers)
    modality = apply_modality_lut(ds.pixel_array, ds)
    for i, preset in enumerate(image.presets):
        expected = pydicom_window_8bit(modality, ds, preset.center, preset.width, preset.function)
        assert float(preset.center) == float(centers[i])
        assert_close_8bit(_grey(image.render(window=preset)), expected)
    assert image.default_window == image.presets[0]
    assert np.array_equal(image.render(), image.render(window=image.presets[0]))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
@pytest.mark.parametrize(
    "window",
    [
        WindowPreset(40, 400, "soft tissue", "LINEAR"),
        WindowPreset(-600, 1500, "lung", "LINEAR_EXACT"),
        WindowPreset(40, 400, "sigmoid", "SIGMOID"),
        WindowPreset(100, 1, "threshold", "LINEAR"),
    ],
)
def test_ct_windows_match_pydicom(window):
    ds = read("CT_small.dcm")
    image = open_image(bundled("CT_small.dcm"))
    modality = apply_modality_lut(ds.pixel_array, ds)
    expected = pydicom_window_8bit(modality, ds, window.center, window.width, window.function)
    assert_close_8bit(_grey(image.render(window=window)), expected)
    unit = image.model_input(window=window)
    assert_close_8bit(np.rint(unit * 255), expected)


def test_ct_without_window_opens_at_soft_tissue():
    ds = read("CT_small.dcm")
    image = open_image(bundled("CT_small.dcm"))
    assert image.presets == []
    window = image.default_window
    assert (window.center, window.width, window.name) == (40.0, 400.0, "soft tissue")
    hu = apply_modality_lut(ds.pixel_array, ds)
    assert np.allclose(image.modality_frame(), hu)
    expected = pydicom_window_8bit(hu, ds, 40, 400, "LINEAR")
    assert_close_8bit(_grey(image.render()), expected)


def test_other_images_without_window_use_a_robust_default_from_data(tmp_path):
    ds = read("MR_small.dcm")
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
        if keyword in ds:
            delattr(ds, keyword)
    image = open_image(_write(ds, tmp_path / "mr.dcm"))
    assert image.presets == []
    window = image.default_window
    assert window.name == "auto" and window.function == "LINEAR_EXACT"
    values = apply_modality_lut(ds.pixel_array, ds)
    grey = _grey(image.render())
    expected = pydicom_window_8bit(values, ds, window.center, window.width, window.function)
    assert_close_8bit(grey, expected)
    # 0.5th-99.5th percentile: only the tails clip to black and white.
    assert (grey == 0).mean() < 0.02 and (grey == 255).mean() < 0.02
    assert grey.min() == 0 and grey.max() == 255


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_transfer_syntax_variants_render_like_uncompressed(name):
    reference = open_image(bundled("MR_small.dcm"))
    image = open_image(bundled(name))
    assert image.shape == (64, 64) and image.modality == "MR"
    assert np.array_equal(image.render(), reference.render())
    assert np.array_equal(image.render(window=(500, 700)), reference.render(window=(500, 700)))


def test_ybr_multiframe_jpeg_frames_match_pydicom():
    ds = read("examples_ybr_color.dcm")
    image = open_image(bundled("examples_ybr_color.dcm"))
    assert image.n_frames == 30 and image.is_color and image.default_window is None
    assert image.photometric == "YBR_FULL_422"
    frames = ds.pixel_array
    for frame in (0, 7, 29):
        assert np.array_equal(image.render(frame), frames[frame])
    assert not np.array_equal(image.render(0), image.render(29))


def test_uncompressed_ybr_full_422_converted_like_pydicom():
    ds = read("SC_ybr_full_422_uncompressed.dcm")
    raw = pixel_array(ds, raw=True)
    expected = convert_color_space(raw, "YBR_FULL", "RGB")
    image = open_image(bundled("SC_ybr_full_422_uncompressed.dcm"))
    assert_close_8bit(image.render(), expected)


def test_palette_colour_matches_apply_color_lut():
    ds = read("examples_palette.dcm")
    bits = ds.RedPaletteColorLookupTableDescriptor[2]
    expected = apply_color_lut(ds.pixel_array, ds) * 255.0 / (2**bits - 1)
    image = open_image(bundled("examples_palette.dcm"))
    rgb = image.render()
    assert image.is_color and rgb.shape == (350, 800, 3)
    assert_close_8bit(rgb, expected)
    assert not np.array_equal(rgb[..., 0], rgb[..., 2])


@pytest.mark.parametrize(
    ("name", "bits"),
    [("examples_rgb_color.dcm", 8), ("ExplVR_BigEnd.dcm", 8), ("SC_rgb_rle_16bit.dcm", 16)],
)
def test_rgb_matches_pydicom(name, bits):
    ds = read(name)
    image = open_image(bundled(name))
    expected = ds.pixel_array * 255.0 / (2**bits - 1)
    assert_close_8bit(image.render(), expected)
    assert_close_8bit(image.render(invert=True), 255 - np.rint(expected))
    colour = image.model_input()
    assert colour.dtype == np.float32 and colour.shape == (*image.shape, 3)
    assert 0.0 <= colour.min() and colour.max() <= 1.0


def test_rt_dose_frames_in_gray_and_monotonic():
    ds = read("rtdose.dcm")
    image = open_image(bundled("rtdose.dcm"))
    assert image.n_frames == 15 and image.modality == "RTDOSE"
    stored = ds.pixel_array
    for frame in (0, 9):
        dose = image.modality_frame(frame)
        assert np.allclose(dose, stored[frame] * float(ds.DoseGridScaling), rtol=1e-6)
        grey = _grey(image.render(frame)).astype(int).ravel()
        order = np.argsort(stored[frame].ravel(), kind="stable")
        assert np.all(np.diff(grey[order]) >= 0), "display must be monotonic in dose"


def test_jpeg2000_nm_matches_pydicom_with_auto_window():
    ds = read("JPEG2000.dcm")
    image = open_image(bundled("JPEG2000.dcm"))
    window = image.default_window
    expected = pydicom_window_8bit(ds.pixel_array, ds, window.center, window.width, "LINEAR_EXACT")
    assert_close_8bit(_grey(image.render()), expected)


def _write(ds: Dataset, path) -> str:
    ds.save_as(path)
    return str(path)


def test_voi_lut_sequence_preset_matches_apply_voi(tmp_path):
    ds = read("MR_small.dcm")
    item = Dataset()
    item.LUTDescriptor = [2048, 0, 12]
    item.LUTExplanation = "curve"
    item.add_new(0x00283006, "US", [int(4095 * (i / 2047) ** 2) for i in range(2048)])
    ds.VOILUTSequence = Sequence([item])
    image = open_image(_write(ds, tmp_path / "voi.dcm"))
    preset = image.presets[0]
    assert (preset.function, preset.name, preset.lut_index) == ("LUT", "curve", 0)
    assert [p.function for p in image.presets[1:]] == ["LINEAR"]
    expected = pydicom_voi_lut_8bit(ds.pixel_array, ds)
    assert_close_8bit(_grey(image.render()), expected)


def test_enhanced_multiframe_per_frame_rescale_and_window(tmp_path):
    ds = read("MR_small.dcm")
    base = ds.pixel_array.astype(np.int16)
    stack = np.stack([base, base // 2, base[::-1]])
    ds.NumberOfFrames = 3
    ds.PixelData = stack.tobytes()
    for keyword in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "US"
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    windows = [(1000, 2000), (400, 800), (1500, 600)]
    per_frame = []
    for i, (center, width) in enumerate(windows):
        group = Dataset()
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group.FrameVOILUTSequence = Sequence([voi])
        if i == 1:
            own = Dataset()
            own.RescaleSlope, own.RescaleIntercept, own.RescaleType = 1, 50, "US"
            group.PixelValueTransformationSequence = Sequence([own])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    image = open_image(_write(ds, tmp_path / "enhanced.dcm"))
    assert image.n_frames == 3
    rescales = [(2, -100), (1, 50), (2, -100)]
    for frame, ((center, width), (slope, intercept)) in enumerate(
        zip(windows, rescales, strict=True)
    ):
        flat = Dataset()
        flat.BitsStored, flat.PixelRepresentation = ds.BitsStored, ds.PixelRepresentation
        flat.RescaleSlope, flat.RescaleIntercept = slope, intercept
        values = apply_modality_lut(stack[frame], flat)
        assert np.allclose(image.modality_frame(frame), values)
        assert image.default_window_for(frame).center == center
        expected = pydicom_window_8bit(values, flat, center, width)
        assert_close_8bit(_grey(image.render(frame)), expected)


def _flipped(tmp_path, photometric="MONOCHROME1", shape=None):
    ds = read("MR_small.dcm")
    ds.PhotometricInterpretation = photometric
    if shape:
        ds.PresentationLUTShape = shape
    return open_image(_write(ds, tmp_path / f"{photometric}_{shape}.dcm"))


def test_monochrome1_is_displayed_inverted_and_model_input_keeps_polarity(tmp_path):
    normal = open_image(bundled("MR_small.dcm"))
    flipped = _flipped(tmp_path)
    assert flipped.photometric == "MONOCHROME1"
    assert np.array_equal(flipped.render(), 255 - normal.render())
    assert np.array_equal(flipped.render(window=(700, 900)), 255 - normal.render(window=(700, 900)))
    # Low stored values are white under MONOCHROME1: the brightest pixel is the minimum.
    stored = pydicom.dcmread(bundled("MR_small.dcm")).pixel_array
    grey = flipped.render()[..., 0]
    assert grey[np.unravel_index(stored.argmin(), stored.shape)] == grey.max()
    assert grey[np.unravel_index(stored.argmax(), stored.shape)] == grey.min() < grey.max()
    assert np.array_equal(flipped.render(invert=True), normal.render())
    # The model sees what the viewer shows, bright = dense, whatever the file's polarity.
    for image in (flipped, normal):
        assert_close_8bit(image.render()[..., 0], image.model_input() * 255)
    for window in ("default", "minmax", (600, 1600)):
        inverse = 1 - normal.model_input(window=window)
        assert np.allclose(flipped.model_input(window=window), inverse)
    raw = flipped.model_input(window="minmax")
    assert raw.dtype == np.float32 and raw.min() == 0.0 and raw.max() == 1.0


def test_presentation_lut_shape_inverse_is_one_inversion(tmp_path):
    normal = open_image(bundled("MR_small.dcm")).render()
    assert np.array_equal(_flipped(tmp_path, "MONOCHROME2", "INVERSE").render(), 255 - normal)
    assert np.array_equal(_flipped(tmp_path, "MONOCHROME1", "INVERSE").render(), 255 - normal)
    assert np.array_equal(_flipped(tmp_path, "MONOCHROME2", "IDENTITY").render(), normal)


def test_presentation_lut_sequence_applied_after_voi(tmp_path):
    ds = read("MR_small.dcm")
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new(0x00283006, "US", list(range(255, -1, -1)))
    ds.PresentationLUTSequence = Sequence([item])
    image = open_image(_write(ds, tmp_path / "plut.dcm"))
    normal = open_image(bundled("MR_small.dcm")).render()
    assert_close_8bit(image.render(), 255 - normal.astype(int))


def test_window_change_reuses_decoded_frame(monkeypatch):
    calls = []
    real = dicom_io.pixel_array

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dicom_io, "pixel_array", counting)
    image = open_image(bundled("CT_small.dcm"))
    renders = [image.render(window=(c, 400)) for c in (-200, 0, 40, 300)]
    image.model_input(window="minmax")
    image.modality_frame()
    assert len(calls) == 1
    means = [r.mean() for r in renders]
    assert means == sorted(means, reverse=True), "a higher centre must darken the image"


def test_info_and_identifiers():
    image = open_image(bundled("MR_small.dcm"))
    info = image.info()
    assert info["modality"] == "MR" and info["rows"] == 64 and info["frames"] == 1
    assert info["transfer_syntax"] == "Explicit VR Little Endian"
    assert info["window_presets"][0]["center"] == 600.0
    ids = image.identifiers()
    assert ids["PatientName"] == str(read("MR_small.dcm").PatientName)
    assert set(ids) >= {"PatientID", "PatientBirthDate", "AccessionNumber"}
    assert all(isinstance(v, str) for v in ids.values())


def test_default_window_is_one_per_image_so_cine_does_not_flicker():
    image = open_image(bundled("rtdose.dcm"))
    assert image.n_frames == 15 and image.presets_for(3) == []
    ranges = {float(np.ptp(image.modality_frame(f))) for f in (0, 7, 14)}
    assert len(ranges) > 1, "the frames differ, so per-frame windows would differ too"
    windows = {image.default_window_for(f) for f in range(image.n_frames)}
    assert len(windows) == 1
    # The same whichever frame is shown first.
    other = open_image(bundled("rtdose.dcm"))
    assert other.default_window_for(9) == image.default_window_for(0)


def _big_endian_twin(name: str, path) -> str:
    """Write `name` again as Explicit VR Big Endian: OW values (LUTs, pixels) byte-swapped."""
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRBigEndian

    ds = read(name)
    for keyword in ("RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
                    "BluePaletteColorLookupTableData", "PixelData"):
        if ds[keyword].VR == "OW":
            ds[keyword].value = np.frombuffer(ds[keyword].value, "<u2").astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    return str(path)


def test_big_endian_palette_with_16_bit_entries_renders_like_its_little_endian_twin(tmp_path):
    from pydicom.pixels import apply_color_lut

    ds = read("examples_palette.dcm")
    assert ds.RedPaletteColorLookupTableDescriptor[2] == 16
    little = open_image(bundled("examples_palette.dcm")).render()
    big = open_image(_big_endian_twin("examples_palette.dcm", tmp_path / "be.dcm"))
    assert big.info()["transfer_syntax"] == "Explicit VR Big Endian"
    assert np.array_equal(big.render(), little)
    expected = apply_color_lut(ds.pixel_array, ds).astype(np.float64) * 255.0 / 65535.0
    assert_close_8bit(little, expected)
    assert big.render().mean() > 10, "not black"
