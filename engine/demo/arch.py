"""The built-in demo networks: a small classifier, a small segmentation net and a small 3-D CNN.

The classifier's shape ``features -> AdaptiveAvgPool2d(1) -> flatten -> Linear`` is what the
original CAM paper requires, so every explainer (CAM included) applies to the demo models. The
segmentation net is a two-level encoder-decoder with skip connections (a small U-Net) that
outputs per-pixel logits of background, lung and nodule. The 3-D classifier has the 2-D one's
shape in three dimensions, for nodules in chest CT volumes.
"""

from __future__ import annotations

import torch
from torch import nn

#: The name a model card uses in ``architecture = "..."`` to ask for the demo classifier.
DEMO_ARCHITECTURE = "lucida:demo_cnn"
#: ... and for the demo segmentation net.
DEMO_SEG_ARCHITECTURE = "lucida:demo_seg"
#: ... and for the 3-D demo classifier.
DEMO_3D_ARCHITECTURE = "lucida:demo_3d"


def _block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    # BatchNorm keeps the faint-lesion task from collapsing to one class early in training.
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


class DemoCNN(nn.Module):
    """Conv blocks with BatchNorm, global average pooling and a linear classifier.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for the grey demo phantoms).
    num_classes : int
        Number of output logits.
    widths : tuple of int
        Channels of the conv blocks.
    pooled : int
        How many leading blocks end in 2x2 max pooling. With the defaults a 64-pixel input
        gives a 16x16 map in ``features``, fine enough for CAMs to separate a corner marker
        from a lung lesion.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: tuple[int, ...] = (8, 16, 32, 64),
        pooled: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            layers += _block(c_in, c_out, pool=i < pooled)
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x):
        """Return logits of shape (N, num_classes) for images of shape (N, C, H, W)."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


def build_demo_cnn(in_channels: int = 1, num_classes: int = 2, **kwargs) -> DemoCNN:
    """Build the demo network with freshly initialised weights.

    Parameters
    ----------
    in_channels : int
        Input channels.
    num_classes : int
        Number of classes.
    **kwargs
        Passed to :class:`DemoCNN` (for example ``widths``).

    Returns
    -------
    DemoCNN
    """
    return DemoCNN(in_channels=in_channels, num_classes=num_classes, **kwargs)


class DemoSegNet(nn.Module):
    """A small U-Net: two pooled encoder levels, a bottleneck, and a decoder with skips.

    Parameters
    ----------
    in_channels : int
        Input channels.
    num_classes : int
        Output classes (per-pixel logits).
    widths : tuple of int
        Channels of the two encoder levels and the bottleneck.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 3,
                 widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        a, b, c = widths
        self.enc1 = nn.Sequential(*_block(in_channels, a, pool=False))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), *_block(a, b, pool=False))
        self.bottleneck = nn.Sequential(nn.MaxPool2d(2), *_block(b, c, pool=False))
        self.up2 = nn.ConvTranspose2d(c, b, kernel_size=2, stride=2)
        self.dec2 = nn.Sequential(*_block(2 * b, b, pool=False))
        self.up1 = nn.ConvTranspose2d(b, a, kernel_size=2, stride=2)
        self.dec1 = nn.Sequential(*_block(2 * a, a, pool=False))
        self.head = nn.Conv2d(a, num_classes, kernel_size=1)

    def forward(self, x):
        """Return (N, num_classes, H, W) logits for (N, C, H, W) images (H, W divisible by 4)."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        mid = self.bottleneck(e2)
        d2 = self.dec2(torch.cat([self.up2(mid), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def build_demo_seg(in_channels: int = 1, num_classes: int = 3, **kwargs) -> DemoSegNet:
    """Build the demo segmentation net with freshly initialised weights."""
    return DemoSegNet(in_channels=in_channels, num_classes=num_classes, **kwargs)


class DemoCNN3D(nn.Module):
    """3-D conv blocks with BatchNorm, global average pooling and a linear classifier.

    The 2-D classifier's shape in three dimensions, so CAM applies too. (A global maximum
    instead learned a little faster but its maps peaked on the nodule's rim, outside its box.)

    Parameters
    ----------
    in_channels : int
        Input channels (1 for CT).
    num_classes : int
        Number of output logits.
    widths : tuple of int
        Channels of the conv blocks.
    pooled : int
        How many leading blocks end in 2x2x2 max pooling. With two, a 32x64x64 input gives an
        8x16x16 map in ``features`` (18 mm cells at 4.5 mm voxels) whose receptive field spans
        a nodule and its surroundings (with one, the net learned far more slowly), and a
        16x32x32 map after the second block (``features.6``, 9 mm cells).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2,
                 widths: tuple[int, ...] = (8, 16, 32, 32), pooled: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            layers += [nn.Conv3d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                       nn.BatchNorm3d(c_out), nn.ReLU()]
            if i < pooled:
                layers.append(nn.MaxPool3d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x):
        """Return logits (N, num_classes) for volumes (N, C, D, H, W)."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


def build_demo_3d(in_channels: int = 1, num_classes: int = 2, **kwargs) -> DemoCNN3D:
    """Build the 3-D demo network with freshly initialised weights."""
    return DemoCNN3D(in_channels=in_channels, num_classes=num_classes, **kwargs)


#: Built-in architectures by the name a card gives them.
DEMO_ARCHITECTURES = {DEMO_ARCHITECTURE: build_demo_cnn, DEMO_SEG_ARCHITECTURE: build_demo_seg,
                      DEMO_3D_ARCHITECTURE: build_demo_3d}
