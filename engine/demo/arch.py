"""The built-in demo classifier: a small CNN ending in global average pooling and one linear layer.

The shape ``features -> AdaptiveAvgPool2d(1) -> flatten -> Linear`` is what the original CAM paper
requires, so every explainer (CAM included) applies to the demo models.
"""

from __future__ import annotations

from torch import nn

#: The name a model card uses in ``architecture = "..."`` to ask for this network.
DEMO_ARCHITECTURE = "lucida:demo_cnn"


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
