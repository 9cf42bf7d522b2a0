"""Training objectives: lower bounds on log p(x), in nats per data point, and the KL weight.

    elbo (Kingma & Welling, eq. 7):  ELBO_L(x) = 1/L sum_l log p(x|z_l) - KL(q(z|x) || p(z))
    iwae (Burda et al., eq. 8):      L_k(x) = log 1/k sum_i w_i,  w_i = p(x, z_i) / q(z_i|x)

with z = mu + sigma * eps, eps ~ N(0, I) (L or k = ``num_samples`` draws per data point).
In expectation ELBO = L_1 <= L_k <= L_{k+1} <= log p(x). A weight beta on the KL term
(fixed, or warmed up from 0) changes the training loss only: the ELBO's terms reported
beside it are always those of the true ELBO (beta = 1).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vae_lightning.models.elbo import Elbo


@dataclass(frozen=True)
class Objective:
    """One batch's result: the ELBO's terms (beta = 1), the loss, and the bound if not the ELBO.

    ``terms``: recon and kl of shape (batch,), nats; ``loss``: the scalar to minimise;
    ``posterior``: q(z|x)'s (mu, logvar), each (batch, latent), for the latent diagnostics;
    ``bound``: the optimised bound per data point (iwae's L_k; None for the ELBO).
    """

    terms: Elbo
    loss: Tensor
    posterior: tuple[Tensor, Tensor]
    bound: Tensor | None = None


def log_weight_terms(
    decoder: nn.Module, x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor
) -> tuple[Tensor, Tensor]:
    """(log p(x|z), log p(z) - log q(z|x)) at z = mu + sigma * eps, each of shape (K, batch).

    eps: (K, batch, latent). With p(z) = N(0, I) and q(z|x) = N(mu, diag sigma^2),
    log p(z) - log q(z|x) = -1/2 sum_j (z_j^2 - eps_j^2 - log sigma_j^2), the log 2pi terms
    cancelling. z and both terms are float32 (or wider) under mixed precision too, so the
    ratio is that of the z the decoder sees. Differentiable with respect to everything.
    """
    mu, logvar, eps = (t.float() for t in (mu, logvar, eps))
    z = mu + torch.exp(0.5 * logvar) * eps
    log_prior_ratio = -0.5 * (z.pow(2) - eps.pow(2) - logvar).sum(-1)
    return decoder.log_likelihood(x.flatten(1), z), log_prior_ratio


def log_weights(decoder: nn.Module, x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) = log p(x, z) / q(z|x), shape (K, batch).

    The importance weights of z = mu + sigma * eps under the proposal q(z|x), shared by the
    IWAE objective and the importance-sampled log-likelihood of the evaluation.
    """
    log_px_given_z, log_prior_ratio = log_weight_terms(decoder, x, mu, logvar, eps)
    return log_px_given_z + log_prior_ratio


def elbo_objective(
    vae: nn.Module, x: Tensor, num_samples: int = 1, kl_weight: float = 1.0
) -> Objective:
    """The ELBO with L = ``num_samples`` draws of z and the KL in closed form.

    loss = mean over the batch of recon + beta * KL, where recon = -1/L sum_l log p(x|z_l);
    beta = 1: the negative ELBO.
    """
    posterior = vae.encoder(x)
    terms = vae.elbo(x, num_samples, posterior)
    return Objective(terms, loss=(terms.recon + kl_weight * terms.kl).mean(), posterior=posterior)


def iwae_objective(
    vae: nn.Module, x: Tensor, num_samples: int, kl_weight: float = 1.0
) -> Objective:
    """The importance-weighted bound L_k with k = ``num_samples``, by logsumexp over log w_i.

    loss = -mean over the batch of log 1/k sum_i exp(log p(x|z_i) + beta [log p(z_i) -
    log q(z_i|x)]): the KL weight beta multiplies the prior-to-proposal term inside each
    log-weight (beta = 1: -L_k). The ELBO's terms come from the same k draws:
    recon = -1/k sum_i log p(x|z_i), kl = 1/k sum_i [log q(z_i|x) - log p(z_i)] (a Monte
    Carlo KL), so the reported elbo is 1/k sum_i log w_i <= L_k, equal at k = 1.
    """
    mu, logvar = vae.encoder(x)
    eps = torch.randn((num_samples, *mu.shape), device=mu.device)
    log_px_given_z, log_prior_ratio = log_weight_terms(vae.decoder, x, mu, logvar, eps)
    log_k = math.log(num_samples)
    bound = torch.logsumexp(log_px_given_z + log_prior_ratio, dim=0) - log_k
    weighted = torch.logsumexp(log_px_given_z + kl_weight * log_prior_ratio, dim=0) - log_k
    terms = Elbo(recon=-log_px_given_z.mean(0), kl=-log_prior_ratio.mean(0))
    return Objective(terms, loss=-weighted.mean(), posterior=(mu, logvar), bound=bound)


OBJECTIVES = {"elbo": elbo_objective, "iwae": iwae_objective}
# The name under which each objective's bound is logged, where it is not the ELBO.
BOUND_NAMES = {"elbo": None, "iwae": "iwae_bound"}


def kl_weight_at(step: int, kl_weight: float = 1.0, warmup_steps: int = 0) -> float:
    """beta after ``step`` optimiser steps: kl_weight * min(1, step / warmup_steps).

    Linear KL warm-up from 0 at step 0 to ``kl_weight`` at ``warmup_steps`` (Bowman et al.
    2016; Sønderby et al. 2016), constant after; warmup_steps = 0: ``kl_weight`` throughout.
    """
    if warmup_steps <= 0:
        return kl_weight
    return kl_weight * min(1.0, step / warmup_steps)
