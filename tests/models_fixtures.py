"""Small models, weights files and stand-in images shared by the model tests."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.models.preprocess import InputSpec


class ArrayImage:
    """Stands in for :class:`engine.studies.image.Image`: a fixed array from ``model_input``."""

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array, dtype=np.float32)
        self.shape = self.array.shape[:2]
        self.windows: list = []

    def model_input(self, frame: int = 0, window="default") -> np.ndarray:
        self.windows.append(window)
        return self.array


def tiny_cnn(in_channels: int = 1, num_classes: int = 2) -> nn.Sequential:
    """A plain nn.Sequential CNN ending in global average pooling and a linear layer."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def grey_spec(size: int = 32) -> InputSpec:
    return InputSpec(size=(size, size), channels=1, mean=(0.5,), std=(0.25,))


def write_card(folder: Path, body: str, name: str = "card.toml") -> Path:
    """Write a model card into ``folder`` and return its path."""
    path = folder / name
    path.write_text(body)
    return path


def save_state(module: nn.Module, path: Path) -> Path:
    """Save a module's state_dict (safetensors or torch.save by suffix)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    else:
        torch.save(module.state_dict(), path)
    return path


class NetworkBlocked(RuntimeError):
    """Raised when code under test tries to reach a host other than this machine."""


@pytest.fixture
def no_network(monkeypatch):
    """Block every connection that leaves localhost, for tests that prove a load is offline.

    DNS look-ups fail too. Loopback stays open, as the local servers of other tests use it.
    """
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def local(address) -> bool:
        host = address[0] if isinstance(address, tuple) else address
        return isinstance(host, str) and (
            host.startswith("127.") or host in ("::1", "localhost") or host.startswith("/")
        )

    def connect(sock, address):
        if not local(address):
            raise NetworkBlocked(f"network blocked in this test: connect to {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not local(address):
            raise NetworkBlocked(f"network blocked in this test: connect to {address}")
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if not local((host,)):
            raise NetworkBlocked(f"network blocked in this test: look-up of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
