"""Turning a volume into 3-D model input, and a model-input map back onto the volume's grid.

A 3-D model card states the input ``size = [D, H, W]``, the voxel ``spacing = [z, y, x]`` in mm,
and an ``orientation`` such as ``"RAS"``: the patient directions in which the model's x (W), y (H)
and z (D) axes increase, in nibabel's axis codes. Preprocessing is the chain MONAI's
``Orientationd``, ``Spacingd``, ``ScaleIntensityRanged`` and ``ResizeWithPadOrCropd`` apply:

1. **orientation**: the voxel axes are permuted and flipped to the stated orientation (nibabel's
   ``io_orientation``, as MONAI does; an oblique volume keeps its obliquity);
2. **spacing**: each axis is resampled to the stated spacing by linear interpolation, keeping the
   centre of the first voxel where it is and covering the same extent
   (``round((n - 1) * old / new + 1)`` voxels, MONAI's ``scale_extent=False``);
3. **intensity**: a window ``[center, width]`` in modality units (HU) is clipped and scaled to
   [0, 1], or ``minmax`` stretches the volume's own range;
4. **crop or pad** to ``size``, centred (MONAI's centre crop and symmetric pad) or around an ROI;
   padding is 0 (the window's floor); then channels are repeated and the card's mean/std applied.

Steps 1, 2 and 4 place the model's voxel grid in the volume's: model index ``r`` along each model
axis is ``scale * p + offset`` for voxel index ``p`` along one volume axis. :class:`ModelGrid`
holds that map; :func:`maps_to_volume` is its exact inverse for maps: every voxel of the volume
takes the map's value at its own model coordinate (0 where the model saw nothing of it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from engine.core.errors import ModelError
from engine.models.preprocess import InputSpec

#: RAS+ <-> LPS: the first two patient axes change sign.
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CROPS = ("centre", "roi")
_AXIS_CODES = {"L": "R", "R": "L", "P": "A", "A": "P", "I": "S", "S": "I"}


@dataclass(frozen=True)
class VolumeSpec(InputSpec):
    """What a 3-D model expects as input: :class:`InputSpec` with voxel geometry.

    Attributes
    ----------
    size : tuple of int
        ``(D, H, W)`` of the model input.
    spacing : tuple of float
        ``(z, y, x)`` voxel spacing in mm, along the model's D, H and W axes.
    orientation : str
        Three nibabel axis codes for the model's x (W), y (H) and z (D) axes, e.g. ``"RAS"``.
    crop : str
        ``"centre"`` crops or pads around the volume's centre; ``"roi"`` around the ROI given at
        preprocessing (the centre when none is given).
    """

    spacing: tuple = (1.0, 1.0, 1.0)
    orientation: str = "RAS"
    crop: str = "centre"


def is_volume_spec(spec) -> bool:
    """Whether a model input spec describes a 3-D model."""
    return isinstance(spec, VolumeSpec)


def normalise_volume_spec(spec: VolumeSpec) -> VolumeSpec:
    """Check a 3-D spec and broadcast one-value mean/std to every channel.

    Raises
    ------
    ModelError
        When a field is out of range; the message names the field.
    """
    if len(spec.size) != 3 or min(int(s) for s in spec.size) < 1:
        raise ModelError(f"[input] size = {list(spec.size)} is invalid",
                         fix="use [depth, height, width] for a 3-D model")
    if len(spec.spacing) != 3 or min(float(s) for s in spec.spacing) <= 0:
        raise ModelError(f"[input] spacing = {list(spec.spacing)} is invalid",
                         fix="use [z, y, x] in mm, each > 0")
    codes = str(spec.orientation).upper()
    axes = [_AXIS_CODES.get(c) for c in codes]
    if len(codes) != 3 or None in axes or len({frozenset((c, _AXIS_CODES[c])) for c in codes}) \
            != 3:
        raise ModelError(f"[input] orientation = {spec.orientation!r} is invalid",
                         fix="use three axis codes, one of L/R, P/A and I/S each, e.g. 'RAS'")
    if spec.crop not in CROPS:
        raise ModelError(f"[input] crop = {spec.crop!r} is unknown", fix="use 'centre' or 'roi'")
    if spec.channels < 1:
        raise ModelError(f"[input] channels = {spec.channels} is invalid", fix="use 1 or more")
    mean, std = tuple(spec.mean), tuple(spec.std)
    mean = mean * spec.channels if len(mean) == 1 else mean
    std = std * spec.channels if len(std) == 1 else std
    if len(mean) != spec.channels or len(std) != spec.channels or any(s <= 0 for s in std):
        raise ModelError("[input] mean/std need one positive std (and a mean) per channel",
                         fix="give one value per channel, or a single value for all")
    window = spec.window
    if isinstance(window, (list, tuple)):
        if len(window) != 2 or float(window[1]) <= 0:
            raise ModelError(f"[input] window = {list(window)} is invalid",
                             fix="use [center, width], width > 0")
        window = (float(window[0]), float(window[1]))
    elif window not in ("default", "minmax"):
        raise ModelError(f"[input] window = {window!r} is unknown",
                         fix="use 'default', 'minmax' or [center, width] in HU")
    return VolumeSpec(
        size=tuple(int(s) for s in spec.size), channels=int(spec.channels),
        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std), window=window,
        resize="resize", spacing=tuple(float(s) for s in spec.spacing), orientation=codes,
        crop=spec.crop,
    )


@dataclass(frozen=True)
class ModelGrid:
    """Where the model's voxel grid lies in a volume's.

    Along model axis ``v`` (0 = D, 1 = H, 2 = W), model index ``r = scale[v] * p + offset[v]``
    for voxel index ``p`` along volume axis ``source[v]`` (0 = slice, 1 = row, 2 = column).

    Attributes
    ----------
    source : tuple of int
        The volume axis feeding each model axis.
    scale, offset : tuple of float
        The map above (a negative scale is a flip).
    resampled : tuple of int
        Shape after orientation and spacing, in model axis order (before crop or pad).
    start : tuple of int
        Where the model box starts in the resampled grid (negative: padded before).
    size : tuple of int
        ``(D, H, W)``.
    affine : numpy.ndarray
        (4, 4) model voxel ``(w, h, d, 1)`` to patient LPS mm.
    """

    source: tuple[int, int, int]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    resampled: tuple[int, int, int]
    start: tuple[int, int, int]
    size: tuple[int, int, int]
    affine: np.ndarray

    def to_model(self, kji) -> np.ndarray:
        """Model indices ``[..., (d, h, w)]`` of volume indices ``[..., (slice, row, column)]``."""
        kji = np.asarray(kji, dtype=np.float64)
        return np.stack([self.scale[v] * kji[..., self.source[v]] + self.offset[v]
                         for v in range(3)], axis=-1)

    def to_volume(self, dhw) -> np.ndarray:
        """Volume indices ``[..., (slice, row, column)]`` of model indices ``[..., (d, h, w)]``."""
        dhw = np.asarray(dhw, dtype=np.float64)
        out = np.empty_like(dhw)
        for v in range(3):
            out[..., self.source[v]] = (dhw[..., v] - self.offset[v]) / self.scale[v]
        return out


def model_grid(affine: np.ndarray, shape: tuple[int, int, int], spec: VolumeSpec,
               roi=None) -> ModelGrid:
    """Plan orientation, spacing and crop/pad for a volume (see :func:`_plan`); cached."""
    key = tuple(float(v) for v in np.asarray(affine, dtype=np.float64).ravel())
    return _cached_grid(key, tuple(int(s) for s in shape), spec,
                        None if roi is None else tuple(float(v) for v in roi))


@functools.lru_cache(maxsize=64)
def _cached_grid(affine: tuple, shape: tuple, spec: VolumeSpec, roi) -> ModelGrid:
    return _plan(np.asarray(affine).reshape(4, 4), shape, spec, roi)


def _plan(affine: np.ndarray, shape: tuple[int, int, int], spec: VolumeSpec,
          roi=None) -> ModelGrid:
    """Plan orientation, spacing and crop/pad for a volume of ``affine`` and ``shape``.

    Parameters
    ----------
    affine : numpy.ndarray
        The volume's (4, 4) voxel ``(column, row, slice, 1)`` to LPS affine.
    shape : tuple of int
        ``(slices, rows, columns)``.
    spec : VolumeSpec
        The model's input spec.
    roi : tuple of float, optional
        ``(x0, y0, z0, x1, y1, z1)`` voxel box (column, row, slice, end-exclusive) the crop
        centres on when ``spec.crop == "roi"``.

    Returns
    -------
    ModelGrid
    """
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    ras = _LPS_RAS @ np.asarray(affine, dtype=np.float64)
    ornt = ornt_transform(io_orientation(ras), axcodes2ornt(tuple(spec.orientation)))
    n_ijk = (shape[2], shape[1], shape[0])
    target = tuple(reversed(spec.spacing))  # (x, y, z) along oriented i, j, k
    size_ijk = tuple(reversed(spec.size))
    source, scale, offset, resampled, start = [0] * 3, [0.0] * 3, [0.0] * 3, [0] * 3, [0] * 3
    centre = None
    if spec.crop == "roi" and roi is not None:
        x0, y0, z0, x1, y1, z1 = (float(v) for v in roi)
        centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (z0 + z1 - 1) / 2)
    model_affine = np.eye(4)
    for a in range(3):
        b, flip = int(ornt[a, 0]), float(ornt[a, 1])
        n = n_ijk[a]
        step = float(np.linalg.norm(affine[:3, a]))
        zoom = step / target[b]
        # numpy's round-half-to-even on the extent plus one, exactly as MONAI computes it.
        m = int(np.round((n - 1) * zoom + 1.0))
        s = size_ijk[b]
        # Position in the resampled grid of voxel p: q = zoom * p, or zoom * (n - 1 - p) flipped.
        if centre is not None:
            c = zoom * (centre[a] if flip > 0 else n - 1 - centre[a])
            first = int(round(c)) - s // 2
        else:
            first = m // 2 - s // 2 if m > s else -((s - m) // 2)
        v = 2 - b
        source[v] = 2 - a
        scale[v] = flip * zoom
        offset[v] = (0.0 if flip > 0 else zoom * (n - 1)) - first
        resampled[v], start[v] = m, first
        # Model voxel r along b sits at volume index p = (r - offset) / scale.
        model_affine[:3, b] = affine[:3, a] / scale[v]
    origin_index = np.zeros(3)
    for v in range(3):
        origin_index[2 - source[v]] = -offset[v] / scale[v]
    model_affine[:3, 3] = affine[:3, :3] @ origin_index + affine[:3, 3]
    return ModelGrid(tuple(source), tuple(scale), tuple(offset), tuple(resampled), tuple(start),
                     tuple(spec.size), model_affine)


def _linear(t: torch.Tensor, axis: int, positions: torch.Tensor) -> torch.Tensor:
    """Sample ``t`` along ``axis`` at fractional ``positions`` (linear, clamped to the ends)."""
    n = t.shape[axis]
    pos = positions.clamp(0, n - 1)
    low = pos.floor().long().clamp(0, n - 1)
    high = (low + 1).clamp(max=n - 1)
    w = (pos - low).to(t.dtype)
    shape = [1] * t.ndim
    shape[axis] = -1
    w = w.view(shape)
    return t.index_select(axis, low) * (1 - w) + t.index_select(axis, high) * w


def resample(values, grid: ModelGrid) -> torch.Tensor:
    """Orient and resample volume values to the model's spacing (before crop or pad).

    Parameters
    ----------
    values : numpy.ndarray or torch.Tensor
        ``(slices, rows, columns)`` on the volume's grid.
    grid : ModelGrid
        From :func:`model_grid`.

    Returns
    -------
    torch.Tensor
        float32, shaped ``grid.resampled`` (model axis order). Linear interpolation, clamped at
        the volume's edges (MONAI's ``padding_mode="border"``).
    """
    t = values.float() if isinstance(values, torch.Tensor) else torch.from_numpy(
        np.array(values, dtype=np.float32))
    t = t.permute(*grid.source)
    for v in range(3):
        q = torch.arange(grid.resampled[v], dtype=torch.float64)
        t = _linear(t, v, ((q - grid.start[v] - grid.offset[v]) / grid.scale[v]).float())
    return t.contiguous()


def crop_pad(resampled: torch.Tensor, grid: ModelGrid, pad: float = 0.0) -> torch.Tensor:
    """Cut the model box out of the resampled grid, padding with ``pad`` where it runs over."""
    out = torch.full(tuple(grid.size), float(pad), dtype=resampled.dtype)
    src, dst = [], []
    for v in range(3):
        lo = max(grid.start[v], 0)
        hi = min(grid.start[v] + grid.size[v], grid.resampled[v])
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - grid.start[v], max(hi, lo) - grid.start[v]))
    out[tuple(dst)] = resampled[tuple(src)]
    return out


def window_unit(values: torch.Tensor, spec: VolumeSpec, volume) -> torch.Tensor:
    """Scale modality values to [0, 1]: the card's HU window, the volume's default, or min-max."""
    window = spec.window
    if window == "minmax":
        lo, hi = float(np.min(volume.voxels)), float(np.max(volume.voxels))
        return ((values - lo) / (hi - lo)).clamp(0, 1) if hi > lo else values * 0.0
    if window == "default":
        preset = volume.default_window
        center, width = preset.center, preset.width
    else:
        center, width = window
    low = center - width / 2.0
    return ((values - low) / width).clamp(0.0, 1.0)


def prepare_volume(volume, spec: VolumeSpec, roi=None) -> tuple[torch.Tensor, ModelGrid]:
    """Turn a volume into normalised 3-D model input.

    Parameters
    ----------
    volume : Volume
        Voxels in modality units with their affine.
    spec : VolumeSpec
        The model's input spec.
    roi : tuple of float, optional
        ``(x0, y0, z0, x1, y1, z1)`` voxel box to centre the crop on (``crop = "roi"``).

    Returns
    -------
    x : torch.Tensor
        float32 ``(1, C, D, H, W)`` on the CPU.
    grid : ModelGrid
        Where that input lies in the volume (for :func:`maps_to_volume`).
    """
    grid = model_grid(volume.affine, volume.shape, spec, roi)
    # Modality values are resampled first and windowed after: MONAI's order.
    unit = window_unit(resample(torch.from_numpy(np.array(volume.voxels)), grid), spec, volume)
    boxed = crop_pad(unit, grid, pad=0.0)
    x = boxed[None, None].repeat(1, spec.channels, 1, 1, 1)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1, 1)
    return ((x - mean) / std).contiguous(), grid


def maps_to_volume(raw: torch.Tensor, grid: ModelGrid,
                   shape: tuple[int, int, int]) -> torch.Tensor:
    """Bring ``(N, d, h, w)`` maps over the model input back onto the volume's voxel grid.

    The exact inverse of the geometric chain: each volume voxel ``p`` takes the map's value at
    its own model coordinate ``r = scale * p + offset``, read on the map's grid (which spans the
    model input, so a coarse layer's cell ``l`` covers model voxels as ``align_corners=False``
    resampling does) by linear interpolation. Voxels outside the model box get 0: the model saw
    nothing of them.

    Parameters
    ----------
    raw : torch.Tensor
        ``(N, d, h, w)`` maps (any resolution) spanning the model input.
    grid : ModelGrid
        The grid the input was prepared on.
    shape : tuple of int
        The volume's ``(slices, rows, columns)``.

    Returns
    -------
    torch.Tensor
        float32 ``(N, slices, rows, columns)``.
    """
    t = raw.float()
    # One interpolation matrix per model axis (rows: volume voxels along its source axis,
    # columns: map cells), the rows of voxels outside the model box left at 0; three matrix
    # products then resample the whole stack.
    w = []
    for v in range(3):
        r = grid.scale[v] * torch.arange(shape[grid.source[v]], dtype=torch.float64) \
            + grid.offset[v]
        cells = t.shape[v + 1]
        inside = (r >= -0.5) & (r <= grid.size[v] - 0.5)
        w.append(_interpolation_matrix((r + 0.5) * cells / grid.size[v] - 0.5, cells, inside))
    n, d, h, c = t.shape
    out = w[0] @ t.reshape(n, d, h * c)                     # (N, S0, h*w)
    out = out.view(n, -1, h, c) @ w[2].T                    # (N, S0, h, S2)
    out = w[1] @ out                                        # (N, S0, S1, S2)
    if tuple(grid.source) == (0, 1, 2):
        return out.contiguous()
    order = [0] + [1 + list(grid.source).index(u) for u in range(3)]
    return out.permute(*order).contiguous()


def _interpolation_matrix(position: torch.Tensor, cells: int,
                          inside: torch.Tensor) -> torch.Tensor:
    """(len(position), cells) float32 matrix of linear interpolation at ``position``, clamped."""
    pos = position.clamp(0, cells - 1)
    low = pos.floor().long().clamp(0, cells - 1)
    high = (low + 1).clamp(max=cells - 1)
    frac = (pos - low).float()
    rows = torch.arange(len(pos))
    out = torch.zeros((len(pos), cells), dtype=torch.float32)
    out.index_put_((rows, low), 1.0 - frac, accumulate=True)
    out.index_put_((rows, high), frac, accumulate=True)
    return out * inside[:, None].float()
