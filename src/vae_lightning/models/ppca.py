"""Probabilistic PCA (Tipping & Bishop, 1999): a linear Gaussian model with an exact likelihood.

    p(z) = N(0, I_L),   p(x|z) = N(x | W z + b, s^2 I_D),   so   p(x) = N(x | b, W W^T + s^2 I_D).

Trained as a VAE decoder its exact log p(x) is the reference for the ELBO and the
importance-sampled estimates. All log-likelihoods are in nats per data point.
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


class PPCAParameters(NamedTuple):
    """W of shape (D, L), b of shape (D,), the noise variance s^2 (a scalar tensor)."""

    weight: Tensor
    bias: Tensor
    variance: Tensor


def ppca_log_likelihood(x: Tensor, params: PPCAParameters) -> Tensor:
    """Exact log N(x | b, C), C = W W^T + s^2 I, per row of x (N, D); float64, shape (N,).

    With M = W^T W + s^2 I_L (L x L) and r = x - b, by the matrix determinant lemma and the
    Woodbury identity: log det C = (D - L) log s^2 + log det M and
    r^T C^-1 r = (|r|^2 - (W^T r)^T M^-1 (W^T r)) / s^2. Cost O(N D L + D L^2), never D x D.
    """
    weight, bias, variance = (t.double() for t in params)
    num_features, latent_dim = weight.shape
    residual = x.flatten(1).double() - bias
    cholesky = torch.linalg.cholesky(
        weight.T @ weight + variance * torch.eye(latent_dim, dtype=torch.float64)
    )
    projected = torch.linalg.solve_triangular(cholesky, (residual @ weight).T, upper=False)
    log_det = (num_features - latent_dim) * variance.log() + 2 * cholesky.diagonal().log().sum()
    mahalanobis = (residual.pow(2).sum(1) - projected.pow(2).sum(0)) / variance
    return -0.5 * (num_features * LOG_2PI + log_det + mahalanobis)


def fit_ppca(x: Tensor, latent_dim: int) -> PPCAParameters:
    """The closed-form maximum-likelihood PPCA of the rows of x (N, D), in float64.

    b = the data mean; with the eigenvalues l_1 >= ... >= l_D (eigenvectors U) of the data
    covariance S = 1/N sum (x - b)(x - b)^T: s^2 = mean of the D - L smallest, and
    W = U_L (diag(l_1..l_L) - s^2 I)^(1/2) (up to a rotation, which leaves p(x) unchanged).
    """
    data = x.flatten(1).double()
    if not 0 < latent_dim < data.shape[1]:
        raise ValueError(f"latent_dim must be in [1, {data.shape[1] - 1}], got {latent_dim}")
    mean = data.mean(0)
    centred = data - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / len(data))  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    variance = eigenvalues[latent_dim:].mean()
    scale = (eigenvalues[:latent_dim] - variance).clamp_min(0).sqrt()
    return PPCAParameters(eigenvectors[:, :latent_dim] * scale, mean, variance)


class LinearGaussianDecoder(nn.Module):
    """The PPCA generative model p(x|z) = N(x | W z + b, s^2 I), with W, b and s^2 learned.

    As in the Gaussian decoder, ``variance`` fixes s^2 instead, and s^2 >= ``min_variance``:
    log s^2 = logaddexp(a, log min_variance) for a learned scalar a.
    """

    def __init__(
        self,
        latent_dim: int,
        out_features: int,
        variance: float | None = None,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(latent_dim, out_features)  # weight W (D, L), bias b (D,)
        self.raw_log_variance = nn.Parameter(torch.zeros(())) if variance is None else None
        self.fixed_log_variance = None if variance is None else math.log(variance)
        self.log_min_variance = math.log(min_variance)

    def log_variance(self) -> Tensor:
        """log s^2, a scalar tensor."""
        if self.raw_log_variance is None:
            return torch.tensor(self.fixed_log_variance, device=self.linear.weight.device)
        floor = torch.tensor(self.log_min_variance, device=self.raw_log_variance.device)
        return torch.logaddexp(self.raw_log_variance, floor)

    def forward(self, z: Tensor) -> Tensor:
        """The mean W z + b, shape (*z.shape[:-1], D)."""
        return self.linear(z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = -1/2 [D (log 2pi + log s^2) + |x - W z - b|^2 / s^2]; shape (..., batch)."""
        log_variance = self.log_variance().float()
        sq_err = (x.float() - self(z).float()).pow(2).sum(-1)
        return -0.5 * (x.shape[-1] * (LOG_2PI + log_variance) + sq_err * torch.exp(-log_variance))

    def mean(self, z: Tensor) -> Tensor:
        """E[x|z] = W z + b."""
        return self(z)

    def distribution(self, z: Tensor) -> torch.distributions.Distribution:
        """p(x|z) over the D pixels, as a torch distribution (event shape (D,))."""
        scale = (0.5 * self.log_variance().float()).exp()
        return torch.distributions.Independent(
            torch.distributions.Normal(self(z).float(), scale), 1
        )

    def parameters_ppca(self) -> PPCAParameters:
        """The current (W, b, s^2)."""
        return PPCAParameters(self.linear.weight, self.linear.bias, self.log_variance().exp())

    def exact_log_likelihood(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x | b, W W^T + s^2 I) per data point, in nats (float64)."""
        return ppca_log_likelihood(x, self.parameters_ppca())
