"""TorchXRayVision chest X-ray DenseNets: ``xrv:<weights name>`` built offline.

``xrv:densenet121-res224-all`` builds ``torchxrayvision.models.DenseNet(weights=None)``, the
architecture only: with ``weights=None`` the library never takes its download path, and the
weights come from the user's file. The weights name fixes the pathology names
(``model_urls[name]["labels"]``: the ``all`` weights predict the 18
``xrv.datasets.default_pathologies``) and the preprocessing: one channel, 224 x 224, pixel
values scaled to [-1024, 1024] (``xrv.utils.normalize``).

Built with ``weights=None`` the DenseNet has no ``op_threshs`` and ``apply_sigmoid`` is off, so
its forward returns the classifier's logits; the card's output is ``sigmoid`` (multi-label).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.core.errors import ModelError
from engine.models.offline import go_offline
from engine.models.preprocess import InputSpec, normalise_spec

#: xrv's normalisation maps an image in [0, 1] to (2x - 1) * 1024 = (x - 0.5) / (1 / 2048).
XRV_INPUT = InputSpec(
    size=(224, 224), channels=1, mean=(0.5,), std=(1.0 / 2048.0,), window="default",
    # xrv's XRayCenterCrop keeps the centred square, then XRayResizer scales it to 224.
    resize="crop", interpolation="bilinear", crop_pct=1.0,
)


def _model_urls() -> dict:
    go_offline()
    import torchxrayvision as xrv

    return xrv.models.model_urls


def xrv_names() -> list[str]:
    """The DenseNet weights names TorchXRayVision knows (``densenet121-res224-all``, ...)."""
    return sorted(k for k in _model_urls() if k.startswith("densenet"))


def xrv_classes(name: str) -> list[str]:
    """The pathology names of weights ``name``, in output order.

    Weights trained on one dataset leave some of the 18 outputs untrained (an empty label);
    those are named ``untrained_<index>``.
    """
    labels = _model_urls()[name]["labels"]
    return [label or f"untrained_{i}" for i, label in enumerate(labels)]


def xrv_input_spec() -> InputSpec:
    """TorchXRayVision's preprocessing as an :class:`InputSpec`."""
    return normalise_spec(XRV_INPUT)


def build_xrv(name: str, args: dict, num_classes: int | None, card: Path | None) -> nn.Module:
    """Build the untrained DenseNet of weights ``name`` (never downloading).

    Raises
    ------
    ModelError
        ``name`` is not a TorchXRayVision DenseNet weights name, or ``args`` are invalid.
    """
    names = xrv_names()
    if name not in names:
        raise ModelError(
            f"TorchXRayVision has no DenseNet weights named {name!r}", path=card,
            fix="use one of " + ", ".join(f"xrv:{n}" for n in names),
        )
    import torchxrayvision as xrv

    if "weights" in args:
        raise ModelError(
            "[architecture_args] weights would download TorchXRayVision's weights", path=card,
            fix="remove it; the weights come from the card's file",
        )
    kwargs = {"num_classes": num_classes or len(xrv_classes(name)), **args}
    try:
        return xrv.models.DenseNet(weights=None, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"cannot build xrv:{name} with arguments {kwargs} ({exc})", path=card,
            fix="check [architecture_args] in the model card",
        ) from None


def xrv_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights for the logits-returning DenseNet: ``op_threshs`` dropped.

    A DenseNet loaded with xrv's own weights carries operating-point thresholds, and its
    forward then returns calibrated probabilities (a sigmoid rescaled so each threshold maps
    to 0.5). Lucida explains the logit of a class and shows its sigmoid, so the thresholds,
    which a state_dict of such a model holds as a buffer, are not loaded.
    """
    return {k: v for k, v in state.items() if k != "op_threshs"}
