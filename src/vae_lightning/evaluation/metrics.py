"""Per-data-point metrics over a whole split, in batches, and their mean and standard error."""

import math

import torch
from torch import Tensor

from vae_lightning.evaluation.importance_sampling import log_marginal_likelihood
from vae_lightning.models.ppca import LinearGaussianDecoder
from vae_lightning.models.vae import VariationalAutoencoder


def _batches(x: Tensor, batch_size: int, device: torch.device):
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size].to(device)


@torch.inference_mode()
def elbo_terms(
    vae: VariationalAutoencoder, x: Tensor, batch_size: int, num_samples: int = 1
) -> dict[str, Tensor]:
    """{'elbo', 'recon', 'kl'} of every data point (float64, on the CPU); see models.elbo."""
    device = next(vae.parameters()).device
    parts = [vae.elbo(batch, num_samples) for batch in _batches(x, batch_size, device)]
    return {
        name: torch.cat([getattr(p, name) for p in parts]).double().cpu()
        for name in ("elbo", "recon", "kl")
    }


@torch.inference_mode()
def importance_sampled_log_likelihood(
    vae: VariationalAutoencoder, x: Tensor, num_samples: int, batch_size: int, chunk_size: int
) -> Tensor:
    """The K-sample estimate of log p(x) of every data point (float64, on the CPU)."""
    device = next(vae.parameters()).device
    return torch.cat(
        [
            log_marginal_likelihood(vae, batch, num_samples, chunk_size).double().cpu()
            for batch in _batches(x, batch_size, device)
        ]
    )


def combine_estimates(estimates: list[Tensor], num_samples: list[int]) -> Tensor:
    """The importance-sampled log p(x) over all samples of independent estimates at K_i each:
    log sum_i K_i exp(estimate_i) - log sum_i K_i, the same as one estimate at sum_i K_i."""
    weighted = torch.stack([e + math.log(k) for e, k in zip(estimates, num_samples, strict=True)])
    return torch.logsumexp(weighted, dim=0) - math.log(sum(num_samples))


@torch.inference_mode()
def posteriors(vae: VariationalAutoencoder, x: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """q(z|x)'s (mu(x), log sigma^2(x)) of every data point, each (n, latent_dim), on the CPU."""
    device = next(vae.parameters()).device
    parts = [vae.encoder(batch) for batch in _batches(x, batch_size, device)]
    return tuple(torch.cat([part[i].float().cpu() for part in parts]) for i in (0, 1))


@torch.inference_mode()
def exact_log_likelihood(vae: VariationalAutoencoder, x: Tensor) -> Tensor | None:
    """log p(x) in closed form for the PPCA decoder (float64, on the CPU); None for others."""
    if not isinstance(vae.decoder, LinearGaussianDecoder):
        return None
    return vae.decoder.exact_log_likelihood(x.to(next(vae.parameters()).device)).cpu()


def mean_and_sem(values: Tensor) -> dict[str, float]:
    """The mean over data points and its standard error over data points, std / sqrt(n): how
    much the mean would change with other data points, not the Monte Carlo error of a
    per-point estimator."""
    n = len(values)
    sem = values.std().item() / math.sqrt(n) if n > 1 else math.nan
    return {"mean": values.mean().item(), "sem": sem}
