"""Generative models p(x|z) over flattened images; log-likelihoods in nats, summed over pixels."""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vae_lightning.models.mlp import mlp
from vae_lightning.models.ppca import LOG_2PI, LinearGaussianDecoder

LIKELIHOODS = ("bernoulli", "gaussian", "linear_gaussian")
# Densities over real-valued pixels, unbounded on binary data.
CONTINUOUS_LIKELIHOODS = ("gaussian", "linear_gaussian")


class BernoulliDecoder(nn.Module):
    """p(x|z) = prod_d Bernoulli(x_d | sigmoid(f_d(z))), for binary (or [0, 1]) pixels."""

    def __init__(
        self, latent_dim: int, hidden_dims: Sequence[int], out_features: int, activation: str
    ) -> None:
        super().__init__()
        self.body = mlp(latent_dim, hidden_dims, activation)
        self.logits = nn.Linear(hidden_dims[-1], out_features)

    def forward(self, z: Tensor) -> Tensor:
        """Pixel logits, shape (*z.shape[:-1], out_features)."""
        return self.logits(self.body(z))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum_d x_d log p_d + (1 - x_d) log(1 - p_d) = sum_d [x_d l_d - softplus(l_d)]
        for the logits l = f(z), with softplus(l) = max(l, 0) + log(1 + exp(-|l|)).

        `log` rather than `log1p` (off by < 1e-7 nats a pixel): it is vectorised on CPUs,
        which makes this several times faster than binary_cross_entropy_with_logits.
        x: (batch, D); z: (..., batch, latent). Returns shape (..., batch), in float32.
        """
        logits = self(z).float()
        softplus = logits.clamp(min=0) + torch.log(1 + torch.exp(-logits.abs()))
        return (x.float() * logits - softplus).sum(-1)

    def mean(self, z: Tensor) -> Tensor:
        """E[x|z] = sigmoid(f(z)), the pixel probabilities."""
        return torch.sigmoid(self(z))


class GaussianDecoder(nn.Module):
    """p(x|z) = N(x | sigmoid(f_mu(z)), diag sigma^2(z)), for grey levels in [0, 1].

    The mean goes through a sigmoid as in the paper (App. C.2). The variance is either
    learned (a per-pixel log-variance head) or fixed (``variance``). A floor, sigma^2 >=
    ``min_variance``, keeps the density bounded: log sigma^2 = logaddexp(h(z), log min_variance).
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        out_features: int,
        activation: str,
        variance: float | None = None,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__()
        self.body = mlp(latent_dim, hidden_dims, activation)
        self.mu = nn.Linear(hidden_dims[-1], out_features)
        self.logvar = None if variance is not None else nn.Linear(hidden_dims[-1], out_features)
        self.fixed_logvar = None if variance is None else math.log(variance)
        self.log_min_variance = math.log(min_variance)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of each pixel, each of shape (*z.shape[:-1], out_features)."""
        h = self.body(z)
        mean = torch.sigmoid(self.mu(h))
        if self.logvar is None:
            return mean, torch.full_like(mean, self.fixed_logvar)
        floor = torch.full_like(mean, self.log_min_variance)
        return mean, torch.logaddexp(self.logvar(h), floor)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = -1/2 sum_d [log 2pi + log sigma_d^2 + (x_d - mu_d)^2 / sigma_d^2].

        Computed in float32; shape (..., batch).
        """
        mean, logvar = (t.float() for t in self(z))
        sq_err = (x.float() - mean).pow(2)
        return -0.5 * (LOG_2PI + logvar + sq_err * torch.exp(-logvar)).sum(-1)

    def mean(self, z: Tensor) -> Tensor:
        """E[x|z] = sigmoid(f_mu(z))."""
        return self(z)[0]


def build_decoder(
    likelihood: str,
    latent_dim: int,
    hidden_dims: Sequence[int],
    out_features: int,
    activation: str,
    variance: float | None = None,
    min_variance: float = 1e-4,
) -> nn.Module:
    """The decoder for ``likelihood``: 'bernoulli', 'gaussian' or 'linear_gaussian' (PPCA).

    The PPCA decoder is linear: it has no hidden layers and no activation.
    """
    if likelihood == "bernoulli":
        return BernoulliDecoder(latent_dim, hidden_dims, out_features, activation)
    if likelihood == "gaussian":
        return GaussianDecoder(
            latent_dim, hidden_dims, out_features, activation, variance, min_variance
        )
    if likelihood == "linear_gaussian":
        return LinearGaussianDecoder(latent_dim, out_features, variance, min_variance)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")
