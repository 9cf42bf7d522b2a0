"""PPCA as an oracle: its exact posterior, and the exact expected ELBO of any diagonal q.

    p(z) = N(0, I_L), p(x|z) = N(W z + b, s^2 I_D):   p(z|x) = N(M^-1 W^T (x - b), s^2 M^-1),
    M = W^T W + s^2 I_L. For q(z|x) = N(m, diag v):
    E_q[log p(x|z)] = -1/2 [D log(2 pi s^2) + (|x - W m - b|^2 + sum_j v_j |W_j|^2) / s^2],
    KL(q || p(z)) = 1/2 sum_j (v_j + m_j^2 - 1 - log v_j).
All in float64, nats per data point.
"""

import torch
from torch import Tensor, nn

from vae_lightning.models.ppca import LOG_2PI, PPCAParameters
from vae_lightning.models.vae import VariationalAutoencoder


def posterior(x: Tensor, params: PPCAParameters) -> tuple[Tensor, Tensor, Tensor]:
    """(M^-1 W^T, the posterior means (N, L), the posterior covariance (L, L))."""
    weight, bias, variance = (t.double() for t in params)
    precision = weight.T @ weight + variance * torch.eye(weight.shape[1], dtype=torch.float64)
    projection = torch.linalg.solve(precision, weight.T)
    means = (x.flatten(1).double() - bias) @ projection.T
    return projection, means, variance * torch.linalg.inv(precision)


def expected_elbo(x: Tensor, params: PPCAParameters, q_mean: Tensor, q_var: Tensor) -> Tensor:
    """E_q[log p(x|z)] - KL(q || N(0, I)) per data point, q = N(q_mean, diag q_var)."""
    weight, bias, variance = (t.double() for t in params)
    x, m, v = x.flatten(1).double(), q_mean.double(), q_var.double()
    residual = (x - m @ weight.T - bias).pow(2).sum(1)
    trace = (v * weight.pow(2).sum(0)).sum(-1)
    log_lik = -0.5 * (x.shape[1] * (LOG_2PI + variance.log()) + (residual + trace) / variance)
    kl = 0.5 * (v + m.pow(2) - 1 - v.log()).sum(-1)
    return log_lik - kl


class PoorPosteriorEncoder(nn.Module):
    """q(z|x): the exact posterior mean plus ``shift`` posterior standard deviations, with
    ``inflation`` times the posterior variances (diagonal, while p(z|x) need not be)."""

    def __init__(self, params: PPCAParameters, inflation: float, shift: float) -> None:
        super().__init__()
        self.params = params
        projection, _, cov = posterior(torch.zeros(1, len(params.bias)), params)
        self.projection = projection.float()
        self.offset = (shift * cov.diagonal().sqrt()).float()
        self.logvar = (inflation * cov.diagonal()).log().float()

    def q(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, variance) of q(z|x) in float64."""
        _, means, _ = posterior(x, self.params)
        return means + self.offset.double(), self.logvar.double().exp().expand_as(means)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = (x.flatten(1) - self.params.bias.float()) @ self.projection.T + self.offset
        return mu, self.logvar.expand_as(mu)


def oracle_vae(params: PPCAParameters, inflation: float, shift: float) -> VariationalAutoencoder:
    """A VAE whose linear Gaussian decoder holds ``params``, with a PoorPosteriorEncoder."""
    dim, latent = params.weight.shape
    vae = VariationalAutoencoder((1, dim), latent, [8], "tanh", "linear_gaussian")
    with torch.no_grad():
        vae.decoder.linear.weight.copy_(params.weight)
        vae.decoder.linear.bias.copy_(params.bias)
        # s^2 = exp(raw) + min_variance (1e-4): the floor is added back.
        vae.decoder.raw_log_variance.copy_((params.variance - 1e-4).log())
    vae.encoder = PoorPosteriorEncoder(params, inflation, shift)
    return vae
