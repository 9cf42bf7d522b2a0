"""What the latent space does: active units, KL per dimension and mutual information.

For q(z|x) = N(mu(x), diag sigma^2(x)) and p(z) = N(0, I), over the N data points of a split:

- Active units (Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, arXiv
  1509.00519, section 5.2): A_u = Cov_x(E_q(u|x)[u]) = the variance over the split of mu_u(x);
  unit u is active if A_u > threshold (0.01 in the paper).
- KL per dimension: E_x[KL(q(z_j|x) || p(z_j))] = E_x[1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)],
  in nats; their sum is the ELBO's KL term.
- Mutual information I_q(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)] (Hoffman & Johnson,
  ELBO surgery, 2016), with the aggregate posterior q(z) = 1/N sum_n q(z|x_n) the mixture over
  the same N points and one draw z_i ~ q(z|x_i) per point. For x uniform over these N points
  this is an unbiased Monte Carlo estimate of I_q, which is then at most log N (x takes N
  values); as an estimate of I_q over the data distribution it is a lower bound in
  expectation (the InfoNCE bound, van den Oord et al. 2018, with critic log q(z|x); Poole et
  al. 2019), close only while I_q is well below log N. An estimate near log N says that I_q
  is at least about log N, no more. A Monte Carlo average, it can fall slightly below 0 where
  the information is about 0. Compare models on the same number of points.
- The marginal KL: E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z)) (Hoffman & Johnson),
  so KL(q(z) || p(z)) is reported as the difference of the two estimates (with the lower
  bound on I_q, an upper bound on it).
"""

import math

import torch
from torch import Tensor
from torchmetrics import Metric

LOG_2PI = math.log(2 * math.pi)
# Rows of z scored against the whole mixture at a time: memory rows x N x 8 bytes.
_ROWS = 1024


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z_j|x) || N(0, 1)) = 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) of every point
    and dimension, shape and dtype of mu; summed over j it is models.elbo.gaussian_kl."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


def unit_activity(mu: Tensor) -> Tensor:
    """A_u = Cov_x(mu_u(x)), the variance of each posterior mean over the points (the
    population variance, 1/N), shape (latent_dim,), float64."""
    return mu.double().var(0, correction=0)


def log_aggregate_posterior(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q(z_i) = log 1/N sum_n N(z_i | mu_n, diag exp(logvar_n)) for each row z_i; float64.

    The Gaussian log-densities of all pairs come from two matrix products:
    sum_d (z_d - m_d)^2 / v_d = z^2 . (1/v) - 2 z . (m / v) + sum_d m_d^2 / v_d.
    """
    z, mu, logvar = z.double(), mu.double(), logvar.double()
    precision = torch.exp(-logvar)  # (N, D)
    constant = (mu.pow(2) * precision + logvar + LOG_2PI).sum(1)  # (N,)
    scores = []
    for rows in z.split(_ROWS):
        squares = rows.pow(2) @ precision.T - 2 * rows @ (mu * precision).T + constant
        scores.append(torch.logsumexp(-0.5 * squares, dim=1))
    return torch.cat(scores) - math.log(len(mu))


def mutual_information(
    mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None, rows: int | None = None
) -> float:
    """The estimate of I_q(x; z) in nats over these N points (see the module), at most log N.

    ``rows``: score the draws z_i ~ q(z|x_i) of the first ``rows`` points only (None: all N),
    each still against the mixture of all N. The mean over a subset of the points is unbiased
    for the mean over all of them and keeps the ceiling log N; it costs rows x N instead of
    N^2, at the price of a larger Monte Carlo variance.
    """
    mu, logvar = mu.double(), logvar.double()
    queried = slice(None) if rows is None else slice(rows)
    mu_q, logvar_q = mu[queried], logvar[queried]
    eps = torch.randn(mu_q.shape, generator=generator, dtype=torch.float64, device=mu.device)
    z = mu_q + torch.exp(0.5 * logvar_q) * eps
    log_q_given_x = -0.5 * (eps.pow(2) + logvar_q + LOG_2PI).sum(1)
    return (log_q_given_x - log_aggregate_posterior(z, mu, logvar)).mean().item()


def latent_diagnostics(
    mu: Tensor,
    logvar: Tensor,
    threshold: float = 0.01,
    mutual_info_points: int | None = None,
    seed: int = 0,
) -> dict:
    """The diagnostics of a split's posteriors, mu and logvar of shape (N, latent_dim).

    Active units and the KL per dimension use every point; the mutual information uses
    ``mutual_info_points`` of them drawn with ``seed`` (None: all N; its cost grows as N^2).
    """
    generator = torch.Generator(device=mu.device).manual_seed(seed)
    activity = unit_activity(mu)
    kl = kl_per_dimension(mu.double(), logvar.double()).mean(0)
    if mutual_info_points is not None and mutual_info_points < len(mu):
        keep = torch.randperm(len(mu), generator=generator, device=mu.device)[:mutual_info_points]
        mu, logvar = mu[keep], logvar[keep]
    info = mutual_information(mu, logvar, generator)
    return _summary(activity, kl, threshold, info, len(mu))


def _summary(activity: Tensor, kl: Tensor, threshold: float, info: float, points: int) -> dict:
    """The diagnostics as eval.json records them (see the module)."""
    return {
        "active_units": int((activity > threshold).sum()),
        "active_unit_threshold": threshold,
        "unit_activity": activity.tolist(),
        "kl_per_dim": kl.tolist(),
        "kl": kl.sum().item(),
        "mutual_info": info,
        "mutual_info_points": points,
        "mutual_info_bound": math.log(points),  # log N: the estimate's ceiling
        "marginal_kl": kl.sum().item() - info,
    }


class LatentDiagnostics(Metric):
    """The diagnostics of an epoch's points, gathered batch by batch (summed over processes
    under DDP): per dimension, the sums over every point of mu, mu^2, sigma^2 and log sigma^2
    (each batch's in float32, their total in float64), and the posteriors of the split's
    first ``mutual_info_points`` points (its order is fixed, so every epoch's estimate uses
    the same points; each process's first under DDP; None: all points). The mutual
    information scores the draws of the first ``mutual_info_rows`` of those against the
    mixture of all of them (`mutual_information`), so that it costs a validation epoch
    little; None: all of them, as the evaluation does.

    Active units are those of `latent_diagnostics` over all points, A_u = E[mu_u^2] - E[mu_u]^2,
    and the KL per dimension is its mean over all points, which is linear in these sums:
    1/2 (E[mu_j^2] + E[sigma_j^2] - 1 - E[log sigma_j^2]). The mutual information is over the
    points kept.
    """

    full_state_update = False

    def __init__(
        self,
        threshold: float = 0.01,
        mutual_info_points: int | None = 500,
        mutual_info_rows: int | None = 100,
    ) -> None:
        super().__init__()
        self.threshold, self.mutual_info_points = threshold, mutual_info_points
        self.mutual_info_rows = mutual_info_rows
        # Rows: sum mu, sum mu^2, sum sigma^2, sum log sigma^2; one column per dimension.
        self.add_state("sums", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("mu", [], dist_reduce_fx="cat")
        self.add_state("logvar", [], dist_reduce_fx="cat")

    def update(self, mu: Tensor, logvar: Tensor) -> None:
        mu, logvar = mu.detach().float(), logvar.detach().float()
        sums = torch.stack((mu.sum(0), mu.pow(2).sum(0), logvar.exp().sum(0), logvar.sum(0)))
        self.sums = sums.double() if self.sums.numel() == 0 else self.sums + sums.double()
        self.count += len(mu)
        kept = sum(len(m) for m in self.mu)
        room = len(mu) if self.mutual_info_points is None else self.mutual_info_points - kept
        if room > 0:
            self.mu.append(mu[:room])
            self.logvar.append(logvar[:room])

    def compute(self) -> tuple[Tensor, Tensor, float, int]:
        """The unit activities, the KL per dimension, the mutual information and the number of
        points it used (`summary` gives them as eval.json records them). Tensors, not lists:
        torchmetrics walks what `compute` returns, element by element."""
        mean_mu, mean_mu_squared, mean_variance, mean_logvar = self.sums / self.count
        activity = (mean_mu_squared - mean_mu.pow(2)).clamp_min(0)
        kl = 0.5 * (mean_mu_squared + mean_variance - 1 - mean_logvar)
        mu, logvar = (torch.cat(s) if isinstance(s, list) else s for s in (self.mu, self.logvar))
        generator = torch.Generator(mu.device).manual_seed(0)
        info = mutual_information(mu, logvar, generator, self.mutual_info_rows)
        return activity, kl, info, len(mu)

    def summary(self) -> dict:
        """The epoch's diagnostics as `latent_diagnostics` gives them (see the module)."""
        activity, kl, info, points = self.compute()
        return _summary(activity, kl, self.threshold, info, points)
