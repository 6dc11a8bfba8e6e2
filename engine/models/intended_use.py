"""What a model is for, and whether an image fits it.

A model card may state its intended use::

    [intended_use]
    modalities = ["CR", "DX"]
    body_parts = ["CHEST"]
    photometric = ["MONOCHROME1", "MONOCHROME2"]
    min_size = [256, 256]               # rows, columns
    description = "Nodule vs normal on adult chest radiographs"
    [intended_use.input_stats]          # optional: statistics of the training inputs
    mean = 0.31                         # mean of the model input in [0, 1] pixel space
    std = 0.12                          # spread of per-image means over the training set
    max_z = 4.0                         # |z| above which an image is out of distribution

:func:`check` compares an image's header (and, with input statistics, its model input) with
this before anything is explained. The result is shown as a badge in the GUI and recorded in
``result.json``, the reports and the audit's per-row table.

An image smaller than ``min_size`` gets a ``prediction_caveat``: the model's scores on it mean
nothing, and the window dims them. A file that cannot state a modality (NIfTI) is not a
mismatch: the check says the modality is not stated, and judges the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import ModelError

#: Check outcomes. ``unstated``: nothing contradicts the card, but the image does not state
#: something the card names (a NIfTI file has no modality).
MATCH, MISMATCH, UNKNOWN, UNSTATED = "match", "mismatch", "unknown", "unstated"


@dataclass(frozen=True)
class IntendedUse:
    """The ``[intended_use]`` table of a model card; empty lists mean "not stated"."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    photometric: tuple[str, ...] = ()
    min_size: tuple[int, int] | None = None
    description: str = ""
    input_mean: float | None = None
    input_std: float | None = None
    max_z: float = 4.0

    def summary(self) -> str:
        """Return a short phrase such as ``CR/DX chest``."""
        parts = ["/".join(self.modalities)] if self.modalities else []
        parts += ["/".join(b.lower() for b in self.body_parts)] if self.body_parts else []
        return " ".join(parts) or self.description or "its stated use"


@dataclass
class UseCheck:
    """The outcome of :func:`check` for one image.

    Attributes
    ----------
    status : str
        ``match``, ``mismatch`` or ``unknown`` (the card states no intended use).
    message : str
        One line for the badge, e.g. ``model is for CR/DX chest; this is an MR head``.
    problems : list of str
        Every mismatch found, one phrase each.
    out_of_distribution : bool or None
        Whether the image's model input lies far outside the training statistics (None when
        the card records none).
    prediction_caveat : str or None
        Why the model's scores on this image mean nothing (it is below the card's minimum
        size), or None.
    """

    status: str
    message: str
    problems: list[str] = field(default_factory=list)
    out_of_distribution: bool | None = None
    prediction_caveat: str | None = None

    def as_dict(self) -> dict:
        """Plain JSON-ready data for ``result.json``, reports and audit rows."""
        return {"status": self.status, "message": self.message, "problems": list(self.problems),
                "out_of_distribution": self.out_of_distribution,
                "prediction_caveat": self.prediction_caveat}


def _strings(path: Path, table: dict, key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"[intended_use] {key} must be a list of strings", path=path,
                         fix=f'write {key} = ["..."]')
    return tuple(v.strip().upper() for v in value if v.strip())


def parse(path: Path, table: Any) -> IntendedUse:
    """Read an ``[intended_use]`` table.

    Raises
    ------
    ModelError
        Naming the card and the field that is malformed.
    """
    if not isinstance(table, dict):
        raise ModelError("[intended_use] must be a table", path=path,
                         fix="see the model card format")
    size = table.get("min_size")
    if size is not None:
        if isinstance(size, int):
            size = [size, size]
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and v > 0 for v in size)):
            raise ModelError("[intended_use] min_size must be [rows, columns]", path=path,
                             fix="write min_size = [256, 256]")
        size = (int(size[0]), int(size[1]))
    stats = table.get("input_stats") or {}
    try:
        mean = None if "mean" not in stats else float(stats["mean"])
        std = None if "std" not in stats else float(stats["std"])
        max_z = float(stats.get("max_z", 4.0))
    except (TypeError, ValueError):
        raise ModelError("[intended_use.input_stats] values must be numbers", path=path,
                         fix="write mean = 0.3, std = 0.1") from None
    return IntendedUse(
        modalities=_strings(path, table, "modalities"),
        body_parts=_strings(path, table, "body_parts"),
        photometric=_strings(path, table, "photometric"),
        min_size=size,
        description=str(table.get("description", "")),
        input_mean=mean,
        input_std=std if std and std > 0 else None,
        max_z=max_z,
    )


def _body_part(image: Any) -> str:
    ds = getattr(image, "dataset", None)
    try:
        value = ds.get("BodyPartExamined", "") if ds is not None else ""
    except Exception:  # noqa: BLE001 - a corrupt element reads as "not stated"
        value = ""
    return str(value or "").strip().upper()


def check(use: IntendedUse | None, image: Any, model_input: np.ndarray | None = None,
          why: str | None = None) -> UseCheck:
    """Check one image against a model's intended use.

    Parameters
    ----------
    use : IntendedUse or None
        The card's statement; None when the card has none.
    image : Image
        Its ``modality``, ``photometric``, ``shape`` and body part are compared.
    model_input : numpy.ndarray, optional
        The image as the model sees it, in [0, 1] pixel space; compared with the training
        input statistics when the card records them.
    why : str, optional
        A likely cause, added to the out-of-distribution phrase when it is found (e.g. how
        little of a 3-D model's box a thin volume fills).

    Returns
    -------
    UseCheck
    """
    if use is None:
        return UseCheck(UNKNOWN, "the model's intended use is unknown (its card does not state it)")
    problems: list[str] = []
    unstated: list[str] = []
    modality = str(getattr(image, "modality", "") or "").upper()
    raster = getattr(image, "kind", "") == "raster"
    if use.modalities and not raster and not modality:
        unstated.append(_unstated_modality(image))
    elif use.modalities and not raster and modality not in use.modalities:
        problems.append(f"modality {modality}")
    part = _body_part(image)
    if use.body_parts and part and part not in use.body_parts:
        problems.append(f"body part {part.lower()}")
    photometric = str(getattr(image, "photometric", "") or "").upper()
    if use.photometric and photometric and photometric not in use.photometric:
        problems.append(f"photometric {photometric}")
    shape = tuple(getattr(image, "shape", ())[:2])
    caveat = None
    if use.min_size and len(shape) == 2 and (shape[0] < use.min_size[0]
                                             or shape[1] < use.min_size[1]):
        problems.append(f"size {shape[1]}x{shape[0]} below {use.min_size[1]}x{use.min_size[0]}")
        caveat = (f"{shape[1]} × {shape[0]} px is below the model's minimum "
                  f"{use.min_size[1]} × {use.min_size[0]}: its scores on this image mean nothing")
    ood = None
    if model_input is not None and use.input_mean is not None and use.input_std is not None:
        z = (float(np.mean(model_input)) - use.input_mean) / use.input_std
        ood = bool(abs(z) > use.max_z)
        if ood:
            problems.append(f"input statistics far outside the training data (z = {z:+.1f})"
                            + (f": {why}" if why else ""))
    if not problems and unstated:
        return UseCheck(UNSTATED, "; ".join(unstated) + f"; otherwise within the model's "
                        f"intended use ({use.summary()})", out_of_distribution=ood)
    if not problems:
        return UseCheck(MATCH, f"within the model's intended use ({use.summary()})",
                        out_of_distribution=ood)
    this = " ".join(p for p in (modality if not raster else "", part.lower()) if p) or "an image"
    message = f"model is for {use.summary()}; this is {this}: " + ", ".join(problems + unstated)
    return UseCheck(MISMATCH, message, problems, ood, caveat)


def _unstated_modality(image: Any) -> str:
    """The phrase for an image that states no modality.

    A volume without a DICOM header comes from a NIfTI file, which has no modality field: the
    file cannot say it, so this is no mismatch.
    """
    nifti = getattr(image, "kind", "") == "volume" and getattr(image, "dataset", None) is None
    return "modality not stated" + (" (NIfTI)" if nifti else "")


def check_input(use: IntendedUse | None, image: Any, x: Any, spec: Any) -> UseCheck:
    """:func:`check` with the model input ``x`` as the model sees it (normalised by ``spec``).

    ``x`` is a (1, C, H, W) tensor normalised with ``spec.mean``/``spec.std``; it is brought
    back to [0, 1] pixel space only when the card records training input statistics.
    """
    pixels = None
    if use is not None and use.input_mean is not None and x is not None:
        arr = np.asarray(x.detach().float().cpu().numpy() if hasattr(x, "detach") else x)
        shape = (1, -1) + (1,) * (arr.ndim - 2)
        pixels = arr * np.asarray(spec.std, np.float32).reshape(shape) \
            + np.asarray(spec.mean, np.float32).reshape(shape)
    return check(use, image, pixels, _padding(image, spec) if pixels is not None else None)


#: A 3-D model's box axis the volume fills less of than this is named as padded.
FILLED = 0.75


def _padding(volume: Any, spec: Any) -> str | None:
    """How little of a 3-D model's input box ``volume`` fills, or None (a 2-D input, or full).

    A volume thinner than the box is padded to it, which moves the input statistics on its own.
    """
    from engine.models.volume_preprocess import is_volume_spec, model_grid

    if not is_volume_spec(spec) or getattr(volume, "affine", None) is None:
        return None
    grid = model_grid(volume.affine, volume.shape, spec)
    short = [f"{100 * got / size:.0f} % of the model box's {size * step:.0f} mm {name}"
             for name, got, size, step in zip(("depth", "height", "width"), grid.resampled,
                                              grid.size, spec.spacing, strict=True)
             if got < FILLED * size]
    if not short:
        return None
    return "the volume fills only " + " and ".join(short) + " (the rest is padding)"
