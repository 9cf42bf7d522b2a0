"""Pixel likelihoods p(x|z) = prod_d p(x_d | theta_d(z)) shared by every decoder network.

A decoder is any module with ``log_likelihood(x, z)`` (log p(x|z) in nats, summed over the
D pixels of the flattened x) and ``mean(z)`` (E[x|z], flattened). These two bases give both
from a network's ``forward(z)``: subclass one and write the network.
"""

import math

import torch
from torch import Tensor, distributions, nn

from vae_lightning.models.ppca import LOG_2PI


class BernoulliLikelihood(nn.Module):
    """p(x|z) = prod_d Bernoulli(x_d | sigmoid(l_d)) for the logits l = forward(z), (..., D)."""

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum_d x_d l_d - softplus(l_d), softplus(l) = max(l, 0) + log(1 + e^-|l|).

        `log` rather than `log1p` (off by < 1e-7 nats a pixel): it is vectorised on CPUs,
        which makes this several times faster than binary_cross_entropy_with_logits.
        x: (batch, D); z: (..., batch, latent). Returns shape (..., batch), in float32.
        """
        logits = self(z).float()
        softplus = logits.clamp(min=0) + torch.log(1 + torch.exp(-logits.abs()))
        return (x.float() * logits - softplus).sum(-1)

    def mean(self, z: Tensor) -> Tensor:
        """E[x|z] = sigmoid(l), the pixel probabilities."""
        return torch.sigmoid(self(z))

    def distribution(self, z: Tensor) -> distributions.Distribution:
        """p(x|z) over the D flattened pixels, as a torch distribution (event shape (D,))."""
        return distributions.Independent(distributions.Bernoulli(logits=self(z).float()), 1)


class GaussianLikelihood(nn.Module):
    """p(x|z) = N(x | sigmoid(m), diag sigma^2) for grey levels in [0, 1] (Kingma & Welling,
    App. C.2), from ``heads(z) -> (m, v)``: the mean's logits m and, if the variance is
    learned, its raw log v (else None).

    A fixed ``variance`` replaces the learned one. A floor, sigma^2 >= ``min_variance``,
    keeps the density bounded: log sigma^2 = logaddexp(v, log min_variance).
    """

    def __init__(self, variance: float | None = None, min_variance: float = 1e-4) -> None:
        super().__init__()
        self.fixed_logvar = None if variance is None else math.log(variance)
        self.log_min_variance = math.log(min_variance)

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of each pixel, each of shape (*z.shape[:-1], D)."""
        logits, raw_logvar = self.heads(z)
        mean = torch.sigmoid(logits)
        if raw_logvar is None:
            return mean, torch.full_like(mean, self.fixed_logvar)
        return mean, torch.logaddexp(raw_logvar, torch.full_like(mean, self.log_min_variance))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = -1/2 sum_d [log 2pi + log sigma_d^2 + (x_d - mu_d)^2 / sigma_d^2].

        Computed in float32; shape (..., batch).
        """
        mean, logvar = (t.float() for t in self(z))
        sq_err = (x.float() - mean).pow(2)
        return -0.5 * (LOG_2PI + logvar + sq_err * torch.exp(-logvar)).sum(-1)

    def mean(self, z: Tensor) -> Tensor:
        """E[x|z] = sigmoid(m)."""
        return self(z)[0]

    def distribution(self, z: Tensor) -> distributions.Distribution:
        """p(x|z) over the D flattened pixels, as a torch distribution (event shape (D,))."""
        mean, logvar = (t.float() for t in self(z))
        return distributions.Independent(distributions.Normal(mean, (0.5 * logvar).exp()), 1)
