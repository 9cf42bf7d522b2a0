"""Strided convolutions down to a feature map and transposed convolutions back up.

Each layer has a 4 x 4 kernel, stride 2 and padding 1, so it halves (or doubles) the height
and width exactly: 28 x 28 -> 14 x 14 -> 7 x 7 with two layers, 32 x 32 -> 8 x 8.
"""

import itertools
from collections.abc import Sequence

from torch import nn

from vae_lightning.models.mlp import ACTIVATIONS


def feature_shape(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[int, int, int]:
    """(channels[-1], H / 2^n, W / 2^n) after n = len(channels) layers; refuses sizes that do
    not halve exactly n times."""
    _, height, width = image_shape
    scale = 2 ** len(channels)
    if not channels or height % scale or width % scale:
        raise ValueError(
            f"a convolutional network of {len(channels)} stride-2 layers needs images whose "
            f"height and width divide by {scale}; these are {height} x {width}. Give as many "
            "channels as fit (e.g. 2 layers for 28 x 28) or resize the images."
        )
    return channels[-1], height // scale, width // scale


def conv_stack(in_channels: int, channels: Sequence[int], activation: str) -> nn.Sequential:
    """Conv2d(4, stride 2, padding 1) to each width in `channels`, each followed by the
    activation."""
    layers: list[nn.Module] = []
    for width in channels:
        layers += [nn.Conv2d(in_channels, width, 4, 2, 1), ACTIVATIONS[activation]()]
        in_channels = width
    return nn.Sequential(*layers)


def deconv_stack(channels: Sequence[int], out_channels: int, activation: str) -> nn.Sequential:
    """ConvTranspose2d(4, stride 2, padding 1) through `channels` (deepest first) to
    `out_channels`, the activation between layers and none after the last."""
    layers: list[nn.Module] = []
    widths = [*channels, out_channels]
    for i, (width, next_width) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.ConvTranspose2d(width, next_width, 4, 2, 1))
        if i < len(channels) - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
