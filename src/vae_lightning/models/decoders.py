"""Generative models p(x|z) over flattened images; log-likelihoods in nats, summed over pixels.

The protocol every decoder follows (a user's own too): built with ``image_shape`` and
``latent_dim`` (and, if it takes them, ``likelihood``, ``variance``, ``min_variance``),
``log_likelihood(x, z)`` gives log p(x|z) of shape (..., batch) for x (batch, D) and z
(..., batch, latent_dim), and ``mean(z)`` gives E[x|z] of shape (..., D). Subclassing
models.likelihoods.BernoulliLikelihood or GaussianLikelihood provides both.
"""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from vae_lightning.models.conv import deconv_stack, feature_shape
from vae_lightning.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from vae_lightning.models.mlp import ACTIVATIONS, mlp
from vae_lightning.models.ppca import LinearGaussianDecoder

LIKELIHOODS = ("bernoulli", "gaussian", "linear_gaussian")
# Densities over real-valued pixels, unbounded on binary data.
CONTINUOUS_LIKELIHOODS = ("gaussian", "linear_gaussian")


class BernoulliDecoder(BernoulliLikelihood):
    """An MLP from z to the pixel logits, for binary (or [0, 1]) pixels."""

    def __init__(
        self, latent_dim: int, hidden_dims: Sequence[int], out_features: int, activation: str
    ) -> None:
        super().__init__()
        self.body = mlp(latent_dim, hidden_dims, activation)
        self.logits = nn.Linear(hidden_dims[-1], out_features)

    def forward(self, z: Tensor) -> Tensor:
        """Pixel logits, shape (*z.shape[:-1], out_features)."""
        return self.logits(self.body(z))


class GaussianDecoder(GaussianLikelihood):
    """An MLP from z to each pixel's mean (through a sigmoid) and, unless ``variance`` fixes
    it, log-variance head."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        out_features: int,
        activation: str,
        variance: float | None = None,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__(variance, min_variance)
        self.body = mlp(latent_dim, hidden_dims, activation)
        self.mu = nn.Linear(hidden_dims[-1], out_features)
        self.logvar = None if variance is not None else nn.Linear(hidden_dims[-1], out_features)

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.body(z)
        return self.mu(h), None if self.logvar is None else self.logvar(h)


def mlp_decoder(
    image_shape: Sequence[int],
    latent_dim: int,
    likelihood: str = "bernoulli",
    hidden_dims: Sequence[int] = (500,),
    activation: str = "tanh",
    variance: float | None = None,
    min_variance: float = 1e-4,
) -> nn.Module:
    """The MLP decoder for ``likelihood``: 'bernoulli', 'gaussian' or 'linear_gaussian' (PPCA,
    linear: no hidden layers and no activation)."""
    pixels = math.prod(image_shape)
    if likelihood == "bernoulli":
        return BernoulliDecoder(latent_dim, hidden_dims, pixels, activation)
    if likelihood == "gaussian":
        return GaussianDecoder(latent_dim, hidden_dims, pixels, activation, variance, min_variance)
    if likelihood == "linear_gaussian":
        return LinearGaussianDecoder(latent_dim, pixels, variance, min_variance)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


class ConvNetwork(nn.Module):
    """z -> a hidden layer -> a (channels[-1], H / 2^n, W / 2^n) map -> transposed convolutions
    (4 x 4, stride 2) up to ``outputs`` maps of H x W, flattened: shape (..., outputs * H * W)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        outputs: int,
        channels: Sequence[int],
        hidden_dim: int,
        activation: str,
    ) -> None:
        super().__init__()
        self.start = feature_shape(image_shape, channels)
        self.body = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            ACTIVATIONS[activation](),
            nn.Linear(hidden_dim, math.prod(self.start)),
            ACTIVATIONS[activation](),
        )
        self.deconv = deconv_stack(list(reversed(channels)), outputs, activation)

    def forward(self, z: Tensor) -> Tensor:
        maps = self.deconv(self.body(z.reshape(-1, z.shape[-1])).view(-1, *self.start))
        return maps.reshape(*z.shape[:-1], -1)


class ConvBernoulliDecoder(BernoulliLikelihood):
    """Transposed convolutions from z to the pixel logits."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, **network) -> None:
        super().__init__()
        self.network = ConvNetwork(image_shape, latent_dim, image_shape[0], **network)

    def forward(self, z: Tensor) -> Tensor:
        """Pixel logits, shape (*z.shape[:-1], D)."""
        return self.network(z)


class ConvGaussianDecoder(GaussianLikelihood):
    """Transposed convolutions from z to each pixel's mean logits and, unless ``variance``
    fixes it, raw log-variance (twice the image's channels)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        variance: float | None = None,
        min_variance: float = 1e-4,
        **network,
    ) -> None:
        super().__init__(variance, min_variance)
        self.heads_per_pixel = 2 if variance is None else 1
        outputs = image_shape[0] * self.heads_per_pixel
        self.network = ConvNetwork(image_shape, latent_dim, outputs, **network)

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.network(z)
        if self.heads_per_pixel == 1:
            return out, None
        # Channels (mean, log-variance) of each image channel: the first half is the mean.
        logits, raw_logvar = out.chunk(2, dim=-1)
        return logits, raw_logvar


def conv_decoder(
    image_shape: Sequence[int],
    latent_dim: int,
    likelihood: str = "bernoulli",
    channels: Sequence[int] = (32, 64),
    hidden_dim: int = 256,
    activation: str = "relu",
    variance: float | None = None,
    min_variance: float = 1e-4,
) -> nn.Module:
    """The convolutional decoder for ``likelihood`` 'bernoulli' or 'gaussian'; ``channels``
    are the encoder's, from the image up (the decoder runs them in reverse)."""
    network = {"channels": channels, "hidden_dim": hidden_dim, "activation": activation}
    if likelihood == "bernoulli":
        return ConvBernoulliDecoder(image_shape, latent_dim, **network)
    if likelihood == "gaussian":
        return ConvGaussianDecoder(image_shape, latent_dim, variance, min_variance, **network)
    raise ValueError(
        f"the convolutional decoder has no {likelihood!r} likelihood; use bernoulli or gaussian "
        "(linear_gaussian is PPCA's linear decoder: model/decoder=mlp)"
    )
