"""A MONAI bundle's standard transforms, read as Lucida's input spec and output activation.

A bundle states its preprocessing as a ``Compose`` of MONAI transforms in its config. Nothing
here evaluates the config: the transforms' names and literal arguments are read (``@id``
references to literal values are followed) and mapped onto :class:`InputSpec` /
:class:`VolumeSpec`:

- ``Resized`` / ``ResizeWithPadOrCropd`` / ``CenterSpatialCropd`` / ``SpatialPadd``: ``size``;
- ``ScaleIntensityRanged``: ``window = [center, width]`` from ``a_min``/``a_max``, and the
  ``b_min``/``b_max`` range as mean/std; ``ScaleIntensityd``: ``window = "minmax"``;
- ``NormalizeIntensityd`` with a ``subtrahend`` and ``divisor``: mean/std;
- ``Spacingd``: ``spacing``; ``Orientationd``: ``orientation``;
- ``EnsureChannelFirstd`` / ``RepeatChanneld``: ``channels``.

Lucida scales the windowed image to [0, 1] and then applies ``(x - mean) / std``; the intensity
transforms compose into one affine map ``a * x + b`` of that value, so ``mean = -b / a`` and
``std = 1 / a``.

MONAI arrays keep the file's voxel order: after ``Orientationd(axcodes="RAS")`` the first
spatial axis runs towards R. Lucida's 3-D input is (D, H, W) with its orientation naming the W,
H and D axes, so the bundle's axis codes are reversed (``"RAS"`` becomes ``"SAR"``): the network
then sees the array in MONAI's order, and its maps come back onto the volume exactly.

A transform that cannot be mapped is named in one line, not dropped silently: a note on the
loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.models.preprocess import InputSpec, normalise_spec
from engine.models.volume_preprocess import VolumeSpec, normalise_volume_spec

#: Transforms that only load, reshape or retype the data: nothing for Lucida to do.
NO_OPS = frozenset({
    "Compose", "LoadImage", "EnsureChannelFirst", "AddChannel", "AsChannelFirst", "EnsureType",
    "ToTensor", "ToNumpy", "CastToType", "ToDevice", "Identity", "SqueezeDim",
})
#: Transforms that set the model input's spatial size.
SIZE_TRANSFORMS = frozenset({"Resize", "ResizeWithPadOrCrop", "CenterSpatialCrop", "SpatialPad"})
_UNSET = object()


@dataclass
class _Reading:
    """What the transforms said so far."""

    dims: int
    channels: int
    size: tuple | None = None
    resized: bool = False
    window: object = "default"
    scale: list = field(default_factory=lambda: [1.0])
    shift: list = field(default_factory=lambda: [0.0])
    intensity: bool = False
    spacing: tuple | None = None
    orientation: str | None = None
    unmapped: list = field(default_factory=list)


def transform_name(target) -> str | None:
    """The MONAI transform a ``_target_`` names, without module path or the ``d`` suffix."""
    if not isinstance(target, str):
        return None
    name = target.rsplit(".", 1)[-1]
    return name[:-1] if name.endswith("d") and name[:-1] in _KNOWN else name


def literal(value, config: dict):
    """``value`` with ``@id`` references to literal config values followed; ``_UNSET`` if not.

    A ``$`` expression (which would run code) or a reference that cannot be followed gives
    ``_UNSET``.
    """
    for _ in range(8):  # a chain of references, bounded against cycles
        if isinstance(value, str) and value.startswith("@"):
            value = lookup(config, value[1:])
            continue
        break
    if isinstance(value, str) and value.startswith(("$", "%", "@")):
        return _UNSET
    if isinstance(value, list):
        items = [literal(v, config) for v in value]
        return _UNSET if any(i is _UNSET for i in items) else items
    if isinstance(value, dict):
        return _UNSET
    return value


def lookup(config: dict, ref: str):
    """The config item ``ref`` (``a::b::0``, or the older ``a#b#0``); ``_UNSET`` if absent."""
    node = config
    for part in ref.replace("#", "::").split("::"):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _UNSET
    return node


def transforms_of(config: dict, key: str) -> list | None:
    """The list of transform dicts of the ``Compose`` at ``key``, or None when there is none."""
    node = literal_tree(config.get(key), config)
    if isinstance(node, dict):
        node = literal_tree(node.get("transforms"), config)
    if not isinstance(node, list):
        return None
    return [literal_tree(t, config) for t in node]


def literal_tree(node, config: dict):
    """``node`` with a whole-string ``@id`` reference followed (one level)."""
    if isinstance(node, str) and node.startswith("@"):
        found = lookup(config, node[1:])
        return None if found is _UNSET else found
    return node


def _per_channel(value, channels: int) -> list[float] | None:
    values = value if isinstance(value, list) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return values if len(values) in (1, channels) else None


def _affine(reading: _Reading, scale: list[float], shift: list[float]) -> None:
    """Compose ``value -> scale * value + shift`` after what ``reading`` already holds."""
    n = max(len(reading.scale), len(scale), len(shift), len(reading.shift))

    def at(seq, i):
        return seq[i] if len(seq) > 1 else seq[0]

    reading.scale = [at(scale, i) * at(reading.scale, i) for i in range(n)]
    reading.shift = [at(scale, i) * at(reading.shift, i) + at(shift, i) for i in range(n)]


def _read_one(reading: _Reading, name: str, args: dict, config: dict) -> bool:
    """Apply one transform to ``reading``; False when it cannot be mapped."""
    def arg(key, default=_UNSET):
        return literal(args.get(key, default), config) if key in args else default

    if name in NO_OPS:
        return True
    if name == "RepeatChannel":
        repeats = arg("repeats")
        if not isinstance(repeats, int) or repeats < 1:
            return False
        reading.channels *= repeats
        return True
    if name in SIZE_TRANSFORMS:
        size = arg("spatial_size")
        if isinstance(size, int):
            size = [size] * reading.dims
        if not isinstance(size, list) or len(size) != reading.dims or \
                not all(isinstance(s, int) and s > 0 for s in size):
            return False
        reading.size = tuple(size)
        reading.resized = name == "Resize"
        return True
    if name == "ScaleIntensityRange":
        lo, hi = arg("a_min"), arg("a_max")
        b_lo, b_hi = arg("b_min", 0.0), arg("b_max", 1.0)
        if not all(isinstance(v, int | float) for v in (lo, hi, b_lo, b_hi)) or hi <= lo \
                or b_hi == b_lo:
            return False
        if arg("clip", False) is not True:
            reading.unmapped.append("ScaleIntensityRanged clip=false (Lucida clips to the window)")
        reading.window = ((lo + hi) / 2.0, float(hi - lo))
        reading.scale, reading.shift = [float(b_hi - b_lo)], [float(b_lo)]
        reading.intensity = True
        return True
    if name == "ScaleIntensity":
        lo, hi = arg("minv", 0.0), arg("maxv", 1.0)
        if not all(isinstance(v, int | float) for v in (lo, hi)) or hi == lo or \
                arg("factor", None) is not None or arg("channel_wise", False):
            return False
        reading.window = "minmax"
        reading.scale, reading.shift = [float(hi - lo)], [float(lo)]
        reading.intensity = True
        return True
    if name == "NormalizeIntensity":
        sub = _per_channel(arg("subtrahend", None), reading.channels)
        div = _per_channel(arg("divisor", None), reading.channels)
        if sub is None or div is None or any(d == 0 for d in div) or arg("nonzero", False):
            return False  # without both, MONAI standardises each image by its own statistics
        n = max(len(sub), len(div))
        sub, div = sub * (n // len(sub)), div * (n // len(div))
        _affine(reading, [1.0 / d for d in div], [-s / d for s, d in zip(sub, div, strict=True)])
        return True
    if name == "Spacing" and reading.dims == 3:
        pixdim = arg("pixdim")
        if not isinstance(pixdim, list) or len(pixdim) != 3 or \
                not all(isinstance(p, int | float) and p > 0 for p in pixdim):
            return False
        reading.spacing = tuple(float(p) for p in pixdim)
        return True
    if name == "Orientation" and reading.dims == 3:
        codes = arg("axcodes")
        if not isinstance(codes, str) or len(codes) != 3:
            return False
        reading.orientation = codes.upper()[::-1]
        return True
    return False


_KNOWN = NO_OPS | SIZE_TRANSFORMS | {
    "RepeatChannel", "ScaleIntensityRange", "ScaleIntensity", "NormalizeIntensity", "Spacing",
    "Orientation",
}


def bundle_input(config: dict, *, dims: int, channels: int, size: tuple | None,
                 file: Path) -> tuple[InputSpec, list[str]]:
    """Read the bundle's ``preprocessing`` as an input spec.

    Parameters
    ----------
    config : dict
        The bundle's inference config, as read from its file (nothing evaluated).
    dims : int
        2 or 3 spatial dimensions.
    channels : int
        Input channels the metadata states (before any ``RepeatChanneld``).
    size : tuple of int or None
        Spatial shape the metadata states, used when no transform sets one.
    file : Path
        The config file, for the warning.

    Returns
    -------
    spec : InputSpec
        An :class:`InputSpec` for 2-D bundles, a :class:`VolumeSpec` for 3-D ones.
    warnings : list of str
        Lines naming what could not be mapped (empty when everything was).
    """
    reading = _Reading(dims=dims, channels=channels, size=size)
    transforms = transforms_of(config, "preprocessing")
    lines = []
    if transforms is None and "preprocessing" in config:
        reading.unmapped.append("preprocessing (not a list of transforms)")
    for item in transforms or []:
        name = transform_name(item.get("_target_")) if isinstance(item, dict) else None
        if name is None or not _read_one(reading, name, item, config):
            reading.unmapped.append(str(name or item))
    if reading.unmapped:
        lines.append(f"{file}: preprocessing not mapped: {', '.join(reading.unmapped)}; "
                     "Lucida's preprocessing may differ from the bundle's. Fix: state [input] "
                     "in a card.toml beside the bundle")
    if not reading.intensity:
        lines.append(f"{file}: the bundle scales no intensities; Lucida feeds the image scaled "
                     "to [0, 1]. Fix: state [input] mean, std and window in a card.toml beside "
                     "the bundle")
    return _spec(reading, lines, file), lines


def _spec(reading: _Reading, lines: list[str], file: Path) -> InputSpec:
    n = reading.channels
    scale = reading.scale * n if len(reading.scale) == 1 else reading.scale
    shift = reading.shift * n if len(reading.shift) == 1 else reading.shift
    mean = tuple(-b / a for a, b in zip(scale, shift, strict=True))
    std = tuple(1.0 / a for a in scale)
    if reading.dims == 2:
        return normalise_spec(InputSpec(
            size=reading.size or (224, 224), channels=n, mean=mean, std=std,
            window=reading.window))
    if reading.spacing is None:
        lines.append(f"{file}: the bundle resamples to no spacing (no Spacingd); Lucida "
                     "resamples to 1 mm. Fix: state [input] spacing in a card.toml beside the "
                     "bundle")
    if reading.resized:
        lines.append(f"{file}: the bundle resizes volumes (Resized); Lucida crops or pads "
                     "them to the size at the stated spacing")
    return normalise_volume_spec(VolumeSpec(
        size=reading.size or (96, 96, 96), channels=n, mean=mean, std=std,
        window=reading.window, spacing=reading.spacing or (1.0, 1.0, 1.0),
        orientation=reading.orientation or "SAR"))


def bundle_output(config: dict) -> str:
    """``sigmoid`` when the bundle's ``postprocessing`` applies one, else ``softmax``."""
    for item in transforms_of(config, "postprocessing") or []:
        if isinstance(item, dict) and transform_name(item.get("_target_")) == "Activations":
            if literal(item.get("sigmoid", False), config) is True:
                return "sigmoid"
    return "softmax"
