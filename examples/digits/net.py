"""The CNN, in a module of its own: the logged model pickles a reference to `net.DigitsNet`, so the
scoring bundle carries this file (`deployment.code`) wherever it is loaded."""

import torch
from torch import nn

IMAGE_SHAPE = (8, 8)
MAX_INTENSITY = 16.0  # scikit-learn's digits: pixel intensities 0..16


class DigitsNet(nn.Module):
    """Two 3x3 convolutions, a 2x2 pooling and two dense layers: (N, 8, 8) intensities -> 10 logits.

    The input is the raw intensity scale (0-16, float32); the scaling is part of the model, so a
    scoring script, MLflow's pyfunc and a batch job all send the same numbers.
    """

    def __init__(self, channels: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, *IMAGE_SHAPE) / MAX_INTENSITY
        return self.classifier(self.features(x))
