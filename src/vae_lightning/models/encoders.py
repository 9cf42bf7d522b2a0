"""Recognition models q(z|x) = N(z | mu(x), diag sigma^2(x)): networks x -> (mu, log sigma^2).

The protocol every encoder follows (a user's own too): built with ``image_shape`` and
``latent_dim`` (and its own settings), ``forward(x)`` takes images of shape
(batch, *image_shape) and returns (mu, logvar), each (batch, latent_dim).
"""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from vae_lightning.models.conv import conv_stack, feature_shape
from vae_lightning.models.mlp import ACTIVATIONS, mlp


class MLPEncoder(nn.Module):
    """An MLP over the flattened image with two linear heads, mu(x) and log sigma^2(x): the
    encoder of Kingma & Welling (App. C.2)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        hidden_dims: Sequence[int] = (500,),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.body = mlp(math.prod(image_shape), hidden_dims, activation)
        self.mu = nn.Linear(hidden_dims[-1], latent_dim)
        self.logvar = nn.Linear(hidden_dims[-1], latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x of shape (batch, *image_shape) -> (mu, logvar), each (batch, latent_dim)."""
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h)


class ConvEncoder(nn.Module):
    """Strided convolutions (4 x 4, stride 2) to ``channels``, a hidden layer of ``hidden_dim``
    units, then linear heads mu(x) and log sigma^2(x)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        channels: Sequence[int] = (32, 64),
        hidden_dim: int = 256,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        features = math.prod(feature_shape(image_shape, channels))
        self.body = nn.Sequential(
            conv_stack(image_shape[0], channels, activation),
            nn.Flatten(),
            nn.Linear(features, hidden_dim),
            ACTIVATIONS[activation](),
        )
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x of shape (batch, *image_shape), or flattened -> (mu, logvar), each of shape
        (batch, latent_dim)."""
        h = self.body(x.reshape(len(x), *self.image_shape))
        return self.mu(h), self.logvar(h)
