"""NIfTI files (``.nii``, ``.nii.gz``) as volumes, through nibabel.

A NIfTI image holds data indexed ``[i, j, k]`` and an affine to RAS+ millimetres (x to the
patient's right, y anterior, z superior). A :class:`engine.studies.volume.Volume` holds voxels
indexed ``[k, j, i]`` (slice, row, column) and an affine to DICOM LPS, so the data is transposed
and the affine's first two rows change sign; the grid itself is kept exactly as stored.
Scaling (``scl_slope``, ``scl_inter``) is applied, so a CT in HU reads in HU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.core.errors import StudyError
from engine.studies.volume import Volume

#: RAS+ <-> LPS: the first two patient axes change sign.
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def open_nifti(path: str | Path) -> Volume:
    """Open a 3-D NIfTI file as a volume (voxels are read on first use).

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    Volume
        ``modality`` is empty (NIfTI does not record it); ``sop_uids`` are empty strings.

    Raises
    ------
    StudyError
        The file is missing or unreadable, is not 3-D, or its affine is not invertible.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise StudyError("no such file", path=path, fix="check the path")
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on corrupt files
        raise StudyError(f"cannot be read as NIfTI ({type(exc).__name__}: {exc})", path=path,
                         fix="check that the file is a complete .nii or .nii.gz") from None
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3 or min(shape) < 1:
        raise StudyError(f"is a {len(shape)}-D NIfTI image of shape {shape}", path=path,
                         fix="open a 3-D volume (split a 4-D series into its volumes first)")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise StudyError("has an affine that cannot place its voxels in space", path=path,
                         fix="fix the file's qform/sform")

    def load() -> np.ndarray:
        try:
            data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
        except Exception as exc:  # noqa: BLE001 - a truncated file fails only when read
            raise StudyError(f"voxels cannot be read ({type(exc).__name__}: {exc})", path=path,
                             fix="check that the file is complete") from None
        return np.transpose(data, (2, 1, 0))

    return Volume(path=path, name=path.name, modality="", affine=LPS_FROM_RAS @ affine,
                  shape=(shape[2], shape[1], shape[0]), loader=load)


def write_nifti(values: np.ndarray, volume: Volume, path: str | Path,
                description: str = "") -> Path:
    """Write ``(slices, rows, columns)`` values on a volume's grid as NIfTI, with its affine.

    Parameters
    ----------
    values : numpy.ndarray
        Array shaped like ``volume.shape`` (a heatmap, say); stored as float32.
    volume : Volume
        Whose grid the values lie on; its affine is written as both qform and sform (RAS+).
    path : str or Path
        ``.nii`` or ``.nii.gz``.
    description : str
        Stored in the header's ``descrip`` (80 bytes at most); never patient identifiers.

    Returns
    -------
    Path
    """
    import nibabel as nib

    values = np.asarray(values, dtype=np.float32)
    if values.shape != tuple(volume.shape):
        raise StudyError(f"values of shape {values.shape} do not lie on the volume's grid "
                         f"{tuple(volume.shape)}", path=path, fix="resample them first")
    affine = LPS_FROM_RAS @ volume.affine
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(values, (2, 1, 0))), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return Path(path)
