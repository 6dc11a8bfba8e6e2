"""Small stand-ins for a loaded model and an image, for explainer tests on torchvision networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.core.errors import UsageError
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec, normalise_spec


class TorchModel:
    """The parts of ``LoadedModel`` the explainers use, around any ``nn.Module``.

    Parameters
    ----------
    module : nn.Module
        The network (put in eval mode here).
    classes : list of str
        Class names; their number must match the network's outputs.
    size : int
        Square input side.
    layers : list of str
        Candidate layer names; the last one is the default.
    output : str
        ``softmax`` or ``sigmoid``.
    """

    kind = "module"
    layer_methods_reason = None

    def __init__(self, module, classes, size=64, layers=(), output="softmax", channels=3):
        self.module = module.eval()
        self.classes = list(classes)
        self.size = size
        self.channels = channels
        self._layers = list(layers)
        self.output = output
        self.name = type(module).__name__
        self.sha256 = f"test-{id(module):x}"
        self.device = torch.device("cpu")

    def layers(self):
        return [type("LayerInfo", (), {"name": n, "kind": "spatial"})() for n in self._layers]

    @property
    def default_layer(self):
        return self._layers[-1] if self._layers else None

    def submodule(self, name):
        return self.module.get_submodule(name)

    def to_activation_map(self, name, output):
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output

    def logits(self, x):
        return self.module(x)

    def scores(self, logits):
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.softmax(logits, -1)

    def preprocess(self, image, frame=0):
        pixels = torch.from_numpy(np.asarray(image.model_input(frame), dtype=np.float32))
        if pixels.ndim == 2:
            pixels = pixels[None].repeat(self.channels, 1, 1)
        else:
            pixels = pixels.permute(2, 0, 1)
        x = F.interpolate(pixels[None], size=(self.size, self.size), mode="bilinear",
                          align_corners=False)
        return (x - 0.5) / 0.25

    def map_to_image(self, heat, image_shape):
        t = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
        return F.interpolate(t, size=tuple(image_shape), mode="bilinear",
                             align_corners=False)[0, 0].numpy()

    @property
    def input(self):
        return normalise_spec(InputSpec(size=(self.size, self.size), channels=self.channels,
                                        mean=(0.5,), std=(0.25,)))

    def final_linear(self):
        return LoadedModel.final_linear(self)

    def resolve_target(self, target, logits=None):
        if target == "top":
            return int(torch.argmax(logits))
        if isinstance(target, int) or str(target).isdigit():
            index = int(target)
            if 0 <= index < len(self.classes):
                return index
        elif target in self.classes:
            return self.classes.index(target)
        raise UsageError(f"unknown target {target!r}", fix=f"use one of {self.classes}")

    def describe(self):
        return {"name": self.name, "sha256": self.sha256, "files": {}, "classes": self.classes,
                "output": self.output, "kind": self.kind, "card": None}


class ArrayImage:
    """The parts of ``engine.studies.image.Image`` the session uses, around one RGB array."""

    kind = "raster"
    n_frames = 1

    def __init__(self, pixels: np.ndarray, path: str = "memory.png"):
        self.pixels = pixels.astype(np.float32)
        self.path = Path(path)
        self.shape = self.pixels.shape[:2]

    def model_input(self, frame=0, window="default"):
        return self.pixels

    def render(self, frame=0, window=None, invert=False):
        rgb = self.pixels if self.pixels.ndim == 3 else np.repeat(self.pixels[..., None], 3, 2)
        return np.round(rgb * 255).astype(np.uint8)

    def identifiers(self):
        return {}

    def content_id(self, frame=0):
        from engine.core.case import ContentId, array_digest

        return ContentId("array", array_digest(self.pixels), frame=int(frame))


def random_image(size=80, seed=0, path="memory.png") -> ArrayImage:
    """A smooth random RGB image in [0, 1] (smooth so that maps have structure)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, 6, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return ArrayImage(smooth[0].permute(1, 2, 0).clamp(0, 1).numpy(), path=path)


class GapNet(nn.Module):
    """conv -> ReLU(inplace) -> conv -> GAP -> linear: the network family CAM is defined on."""

    def __init__(self, classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def gapnet_model(classes=3, size=48, output="softmax") -> TorchModel:
    """A :class:`GapNet` as a loaded model; layers features.1 and features.4 (in-place ReLUs)."""
    torch.manual_seed(0)
    names = [f"c{i}" for i in range(classes)]
    return TorchModel(GapNet(classes), names, size=size, layers=["features.1", "features.4"],
                      output=output)


class MixedReLUNet(nn.Module):
    """One ReLU module and one functional ReLU: guided methods can only see the first."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.conv2(self.act(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def mixed_relu_model() -> TorchModel:
    """A seeded :class:`MixedReLUNet` as a loaded model with classes a and b on 16 px inputs."""
    torch.manual_seed(0)
    return TorchModel(MixedReLUNet(), ["a", "b"], size=16)
