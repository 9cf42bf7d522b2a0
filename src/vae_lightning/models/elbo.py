"""The evidence lower bound (ELBO) of Auto-Encoding Variational Bayes, in nats per data point.

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x)

with q(z|x) = N(mu, diag sigma^2), p(z) = N(0, I), the expectation estimated with the
reparameterisation z = mu + sigma * eps, eps ~ N(0, I), and the KL in closed form.
"""

from dataclasses import dataclass

import torch
from torch import Tensor


def reparameterize(mu: Tensor, logvar: Tensor, num_samples: int = 1) -> Tensor:
    """Draw z = mu + sigma * eps with eps ~ N(0, I); shape (num_samples, *mu.shape)."""
    eps = torch.randn((num_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) = -1/2 sum_j (1 + log s_j^2 - mu_j^2 - s_j^2), nats.

    Summed over the last (latent) dimension; computed in float32 or wider.
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


@dataclass(frozen=True)
class Elbo:
    """Per-data-point terms, each of shape (batch,), in nats: elbo = -(recon + kl)."""

    recon: Tensor  # -E_q[log p(x|z)], the expected negative log-likelihood
    kl: Tensor  # KL(q(z|x) || p(z))

    @property
    def elbo(self) -> Tensor:
        return -(self.recon + self.kl)

    @property
    def loss(self) -> Tensor:
        """The training objective: the negative ELBO averaged over the batch."""
        return -self.elbo.mean()
