"""Axial, coronal and sagittal planes of a volume, resampled in patient space.

A viewer of three linked planes needs, for each plane, the image through a point, the map on
the same pixels, where a click lands in patient space (to move the other planes), and how far a
scroll step goes. Everything here works in DICOM patient coordinates (LPS mm), so anisotropic or
oblique voxels are shown with their true proportions: planes are sampled on square pixels of the
volume's finest spacing, by trilinear interpolation of the voxels.

Planes are shown in the radiological convention:

- **axial** (seen from the feet): the patient's right on the screen's left, anterior up;
- **coronal** (seen from the front): the patient's right on the screen's left, head up;
- **sagittal** (seen from the patient's left): anterior on the screen's left, head up.

A maximum-intensity projection (:func:`mip`) takes the largest value along each plane's normal,
also in patient space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.errors import UsageError

PLANES = ("axial", "coronal", "sagittal")
#: Per plane, LPS directions of the screen's +column (right) and +row (down), and the normal.
_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}


@dataclass(frozen=True)
class PlaneGeometry:
    """Where a plane's pixels lie in patient space.

    Attributes
    ----------
    plane : str
        ``axial``, ``coronal`` or ``sagittal``.
    origin : numpy.ndarray
        LPS mm of the centre of pixel (row 0, column 0).
    right, down, normal : numpy.ndarray
        Unit LPS directions of +column, +row and of the plane's normal.
    pixel_mm : float
        Side of a (square) pixel.
    shape : tuple of int
        ``(rows, columns)``.
    """

    plane: str
    origin: np.ndarray
    right: np.ndarray
    down: np.ndarray
    normal: np.ndarray
    pixel_mm: float
    shape: tuple[int, int]

    def to_patient(self, row: float, col: float) -> np.ndarray:
        """LPS mm of a (fractional) pixel position: where a click lands."""
        return self.origin + col * self.pixel_mm * self.right + row * self.pixel_mm * self.down

    def to_pixel(self, point) -> tuple[float, float]:
        """``(row, column)`` of the projection of an LPS point onto the plane (crosshairs)."""
        d = np.asarray(point, dtype=np.float64) - self.origin
        return float(d @ self.down) / self.pixel_mm, float(d @ self.right) / self.pixel_mm

    def depth(self, point) -> float:
        """Signed distance (mm) of an LPS point from the plane along its normal."""
        return float((np.asarray(point, dtype=np.float64) - self.origin) @ self.normal)


def _check(plane: str) -> None:
    if plane not in PLANES:
        raise UsageError(f"unknown plane {plane!r}", fix=f"use {', '.join(PLANES)}")


def _corners(affine: np.ndarray, shape) -> np.ndarray:
    s, r, c = shape
    ijk = np.array([[i, j, k] for i in (0, c - 1) for j in (0, r - 1) for k in (0, s - 1)],
                   dtype=np.float64)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def finest_spacing(affine: np.ndarray) -> float:
    """The smallest voxel spacing (mm): the pixel size planes are shown at."""
    return float(np.linalg.norm(affine[:3, :3], axis=0).min())


def plane_geometry(affine: np.ndarray, shape, plane: str, point,
                   pixel_mm: float | None = None) -> PlaneGeometry:
    """The plane of kind ``plane`` through ``point``, covering the whole volume.

    Parameters
    ----------
    affine : numpy.ndarray
        The volume's (4, 4) voxel ``(column, row, slice, 1)`` to LPS affine.
    shape : tuple of int
        The volume's ``(slices, rows, columns)``.
    plane : str
        ``axial``, ``coronal`` or ``sagittal``.
    point : array-like
        An LPS point the plane passes through (the crosshair).
    pixel_mm : float, optional
        Pixel side; the volume's finest spacing by default.

    Returns
    -------
    PlaneGeometry
    """
    _check(plane)
    right, down, normal = (np.asarray(v) for v in _AXES[plane])
    pixel = finest_spacing(affine) if pixel_mm is None else float(pixel_mm)
    corners = _corners(np.asarray(affine, dtype=np.float64), shape)
    r_lo, r_hi = (corners @ right).min(), (corners @ right).max()
    d_lo, d_hi = (corners @ down).min(), (corners @ down).max()
    point = np.asarray(point, dtype=np.float64)
    # The point falls exactly on a pixel centre, so the crosshair pixel is the point itself.
    before_c = int(np.ceil((point @ right - r_lo) / pixel - 1e-6))
    before_r = int(np.ceil((point @ down - d_lo) / pixel - 1e-6))
    origin = point - before_c * pixel * right - before_r * pixel * down
    cols = before_c + int(np.floor((r_hi - point @ right) / pixel + 1e-6)) + 1
    rows = before_r + int(np.floor((d_hi - point @ down) / pixel + 1e-6)) + 1
    return PlaneGeometry(plane, origin, right, down, normal, pixel, (rows, cols))


def resample_plane(values: np.ndarray, affine: np.ndarray, geometry: PlaneGeometry,
                   fill: float = 0.0, order: int = 1) -> np.ndarray:
    """Sample ``(slices, rows, columns)`` volume values on a plane's pixels.

    Parameters
    ----------
    values : numpy.ndarray
        Voxels (HU) or a map on the volume's grid.
    affine : numpy.ndarray
        The volume's affine.
    geometry : PlaneGeometry
        The plane.
    fill : float
        Value where the plane leaves the volume (-1024 for CT air, 0 for maps).
    order : int
        1 for trilinear interpolation, 0 for nearest voxel (label maps).

    Returns
    -------
    numpy.ndarray
        float32 ``geometry.shape``.
    """
    from scipy.ndimage import map_coordinates

    rows, cols = geometry.shape
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
    points = (geometry.origin[None, None] + cc[..., None] * geometry.pixel_mm * geometry.right
              + rr[..., None] * geometry.pixel_mm * geometry.down)
    ijk = (points - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]])
    values = np.asarray(values, dtype=np.float32)
    out = map_coordinates(values, coords, order=order, mode="nearest").astype(np.float32)
    # A voxel covers half a spacing either side of its centre; beyond that is outside.
    shape = np.asarray(values.shape, dtype=np.float64)[:, None, None]
    outside = np.any((coords < -0.5) | (coords > shape - 0.5), axis=0)
    out[outside] = fill
    return out


@dataclass
class PlaneView:
    """One plane as a viewer draws it: the image, the map on the same pixels, the geometry."""

    geometry: PlaneGeometry
    image: np.ndarray
    overlay: np.ndarray | None = None


def plane_through(volume, plane: str, point, overlay: np.ndarray | None = None,
                  pixel_mm: float | None = None) -> PlaneView:
    """The plane ``plane`` of ``volume`` through ``point``, with ``overlay`` resampled alike.

    Parameters
    ----------
    volume : Volume
        Voxels in modality units.
    plane : str
        ``axial``, ``coronal`` or ``sagittal``.
    point : array-like
        LPS mm.
    overlay : numpy.ndarray, optional
        A map on the volume's grid (a heatmap); sampled on the same pixels, 0 outside.
    pixel_mm : float, optional
        Pixel side (the volume's finest spacing by default).

    Returns
    -------
    PlaneView
    """
    geometry = plane_geometry(volume.affine, volume.shape, plane, point, pixel_mm)
    floor = float(np.min(volume.voxels))
    image = resample_plane(volume.voxels, volume.affine, geometry, fill=floor)
    heat = None if overlay is None else resample_plane(overlay, volume.affine, geometry, 0.0)
    return PlaneView(geometry, image, heat)


def three_planes(volume, point, overlay: np.ndarray | None = None,
                 pixel_mm: float | None = None) -> dict[str, PlaneView]:
    """Axial, coronal and sagittal views through one point (the linked crosshair)."""
    return {plane: plane_through(volume, plane, point, overlay, pixel_mm) for plane in PLANES}


def mip(values: np.ndarray, affine: np.ndarray, shape, plane: str,
        pixel_mm: float | None = None, fill: float = 0.0) -> tuple[np.ndarray, PlaneGeometry]:
    """Maximum-intensity projection along a plane's normal, in patient space.

    Parameters
    ----------
    values : numpy.ndarray
        ``(slices, rows, columns)`` on the volume's grid (a map, or HU).
    affine : numpy.ndarray
        The volume's affine.
    shape : tuple of int
        The volume's shape.
    plane : str
        The plane projected onto.
    pixel_mm : float, optional
        Pixel side and step along the normal (the volume's finest spacing by default).
    fill : float
        Value outside the volume.

    Returns
    -------
    projection : numpy.ndarray
        float32 on the plane's pixels.
    geometry : PlaneGeometry
        The plane through the volume's nearest corner to the viewer.
    """
    _check(plane)
    normal = np.asarray(_AXES[plane][2])
    corners = _corners(np.asarray(affine, dtype=np.float64), shape)
    near, far = (corners @ normal).min(), (corners @ normal).max()
    start = corners[np.argmin(corners @ normal)]
    geometry = plane_geometry(affine, shape, plane, start, pixel_mm)
    out = np.full(geometry.shape, -np.inf, np.float32)
    steps = int(np.floor((far - near) / geometry.pixel_mm + 1e-6)) + 1
    for n in range(steps):
        layer = PlaneGeometry(plane, geometry.origin + n * geometry.pixel_mm * normal,
                              geometry.right, geometry.down, normal, geometry.pixel_mm,
                              geometry.shape)
        np.maximum(out, resample_plane(values, affine, layer, fill=fill), out=out)
    return out, geometry


def scroll_step(affine: np.ndarray, plane: str) -> float:
    """How far (mm) one scroll moves a plane: the voxel spacing along its normal."""
    _check(plane)
    normal = np.asarray(_AXES[plane][2])
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    lengths = np.linalg.norm(columns, axis=0)
    along = np.abs(normal @ columns) / lengths
    axis = int(np.argmax(along))
    return float(lengths[axis] / max(along[axis], 1e-6))


def peak_point(volume, heat: np.ndarray) -> np.ndarray:
    """LPS mm of a map's peak voxel (where the CLI's overlays cross)."""
    index = np.unravel_index(int(np.argmax(heat)), tuple(volume.shape))
    return volume.index_to_patient(index)


#: Most voxels a viewer's patient grid holds; a larger volume is shown on coarser voxels.
GRID_VOXELS = 40_000_000
#: LPS direction of each patient-grid axis: to the feet, to the posterior, to the patient's left.
_GRID_AXES = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
#: Per plane, the patient-grid axis along its normal (the others are its rows and columns).
_GRID_NORMAL_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


@dataclass(frozen=True)
class PatientGrid:
    """A box of cubic voxels aligned with the patient axes, covering a whole volume.

    A viewer resamples a volume (and each map) onto this grid once; every axial, coronal and
    sagittal plane is then a slice of the array, already on square pixels, and each
    projection a maximum along one axis. Axis 0 runs to the feet, axis 1 to the posterior and
    axis 2 to the patient's left, so ``values[k]`` is an axial plane, ``values[:, k]`` a
    coronal one and ``values[:, :, k]`` a sagittal one, each in the radiological convention of
    :func:`plane_geometry`.

    Attributes
    ----------
    origin : numpy.ndarray
        LPS mm of the centre of voxel ``[0, 0, 0]`` (head, anterior, patient's right).
    pixel_mm : float
        Side of a voxel.
    shape : tuple of int
        ``(feet, posterior, left)`` voxel counts.
    """

    origin: np.ndarray
    pixel_mm: float
    shape: tuple[int, int, int]

    def point(self, index) -> np.ndarray:
        """LPS mm of a (fractional) grid index."""
        return self.origin + (np.asarray(index, dtype=np.float64) * self.pixel_mm) @ _GRID_AXES

    def index(self, point) -> tuple[int, int, int]:
        """The grid voxel nearest an LPS point, clipped into the grid."""
        steps = (_GRID_AXES @ (np.asarray(point, dtype=np.float64) - self.origin)) / self.pixel_mm
        return tuple(int(np.clip(np.rint(s), 0, n - 1)) for s, n in zip(steps, self.shape,
                                                                          strict=True))

    def clip(self, point) -> np.ndarray:
        """The LPS point nearest ``point`` inside the grid (a scroll stops at the last plane)."""
        steps = (_GRID_AXES @ (np.asarray(point, dtype=np.float64) - self.origin)) / self.pixel_mm
        return self.point(np.clip(steps, 0, np.asarray(self.shape) - 1))

    def geometry(self, plane: str, index) -> PlaneGeometry:
        """Where the pixels of plane ``plane`` through grid voxel ``index`` lie."""
        _check(plane)
        right, down, normal = (np.asarray(v) for v in _AXES[plane])
        axis = _GRID_NORMAL_AXIS[plane]
        start = [0, 0, 0]
        start[axis] = int(index[axis])
        rows, cols = [n for k, n in enumerate(self.shape) if k != axis]
        return PlaneGeometry(plane, self.point(start), right, down, normal, self.pixel_mm,
                             (rows, cols))

    def plane(self, values: np.ndarray, plane: str, index) -> np.ndarray:
        """Plane ``plane`` through grid voxel ``index`` of grid ``values`` (a view, no copy)."""
        _check(plane)
        axis = _GRID_NORMAL_AXIS[plane]
        return np.take(values, int(index[axis]), axis=axis)

    def projection(self, values: np.ndarray, plane: str) -> np.ndarray:
        """Maximum-intensity projection of grid ``values`` along plane ``plane``'s normal."""
        _check(plane)
        return np.max(values, axis=_GRID_NORMAL_AXIS[plane])

    def sample(self, values: np.ndarray, affine: np.ndarray, fill: float = 0.0, order: int = 1,
               cancel=None) -> np.ndarray:
        """Resample ``(slices, rows, columns)`` voxel values onto the grid.

        Parameters
        ----------
        values : numpy.ndarray
            Voxels (HU) or a map on the volume's own grid.
        affine : numpy.ndarray
            The volume's affine.
        fill : float
            Value outside the volume.
        order : int
            1 for trilinear interpolation, 0 for nearest voxel.
        cancel : CancelToken, optional
            Checked between axial planes.

        Returns
        -------
        numpy.ndarray
            float32 ``shape``.
        """
        out = np.empty(self.shape, np.float32)
        for k in range(self.shape[0]):
            if cancel is not None:
                cancel.check()
            out[k] = resample_plane(values, affine, self.geometry("axial", (k, 0, 0)), fill,
                                    order)
        return out


def patient_grid(affine: np.ndarray, shape, pixel_mm: float | None = None,
                 max_voxels: int = GRID_VOXELS) -> PatientGrid:
    """The :class:`PatientGrid` that covers a volume, at its finest spacing where it fits.

    Parameters
    ----------
    affine : numpy.ndarray
        The volume's affine.
    shape : tuple of int
        The volume's ``(slices, rows, columns)``.
    pixel_mm : float, optional
        Voxel side (the volume's finest spacing by default).
    max_voxels : int
        Above this many voxels the side grows until the grid fits.

    Returns
    -------
    PatientGrid
    """
    corners = _corners(np.asarray(affine, dtype=np.float64), shape)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    extent = np.abs(_GRID_AXES @ (hi - lo))
    pixel = finest_spacing(affine) if pixel_mm is None else float(pixel_mm)

    def counts(side: float) -> tuple[int, int, int]:
        return tuple(int(np.floor(e / side + 1e-6)) + 1 for e in extent)

    if np.prod(counts(pixel), dtype=np.float64) > max_voxels:
        pixel *= float(np.cbrt(np.prod(counts(pixel), dtype=np.float64) / max_voxels))
        while np.prod(counts(pixel), dtype=np.float64) > max_voxels:
            pixel *= 1.01
    origin = np.array([lo[0], lo[1], hi[2]])
    return PatientGrid(origin, pixel, counts(pixel))
