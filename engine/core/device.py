"""Which torch device a model runs on: one resolver for the command line, the GUI and the API."""

from __future__ import annotations

import torch

from engine.core.errors import UsageError


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``.

    Parameters
    ----------
    name : str
        ``auto`` (CUDA, then Apple MPS, then CPU) or a torch device string (``cpu``, ``cuda:0``).

    Raises
    ------
    UsageError
        For an unknown device or one this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {name!r}", fix="use auto, cpu, cuda or mps") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False) or (
        # torch.device accepts any index; a GPU this machine lacks would only fail mid-run.
        device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count()
    ):
        raise UsageError(f"device {name!r} is not available here", fix="use --device auto or cpu")
    return device
