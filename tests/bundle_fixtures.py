"""MONAI bundles that the tests build and save: configs, metadata and weights, in a folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_bundle(root: Path, network: torch.nn.Module, inference: dict, metadata: dict) -> Path:
    """Save ``network``'s weights and the two configs as a bundle under ``root``."""
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "configs" / "inference.json").write_text(json.dumps(inference, indent=1))
    (root / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=1))
    torch.save(network.state_dict(), root / "models" / "model.pt")
    return root


def metadata(classes: list[str], channels: int, shape: list[int]) -> dict:
    """A bundle's metadata.json naming the input and the output channels."""
    return {
        "name": "test bundle", "version": "0.1.0",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": channels,
                                 "spatial_shape": shape}},
            "outputs": {"pred": {"type": "probabilities", "format": "classes",
                                 "num_channels": len(classes),
                                 "channel_def": {str(i): c for i, c in enumerate(classes)}}},
        },
    }


def inference(network_def: dict, transforms: list[dict], **extra) -> dict:
    """An inference.json as bundles write it: imports, a device, the network and a Compose."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": network_def,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": transforms},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True}]},
        **extra,
    }
