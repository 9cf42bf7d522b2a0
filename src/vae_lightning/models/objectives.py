"""Training objectives: lower bounds on log p(x), in nats per data point, and the KL weight.

    elbo (Kingma & Welling, eq. 7):  ELBO_L(x) = 1/L sum_l log p(x|z_l) - KL(q(z|x) || p(z))
    iwae (Burda et al., eq. 8):      L_k(x) = log 1/k sum_i w_i,  w_i = p(x, z_i) / q(z_i|x)

with z = mu + sigma * eps, eps ~ N(0, I) (L or k = ``num_samples`` draws per data point).
In expectation ELBO = L_1 <= L_k <= L_{k+1} <= log p(x). A weight beta on the KL term
(fixed, or warmed up from 0) changes the training loss only: the ELBO's terms reported
beside it are always those of the true ELBO (beta = 1).

wake_sleep (Hinton et al. 1995), the algorithm Kingma & Welling's Figure 2 compares AEVB
with, optimises no bound: it fits the decoder and the encoder with two separate objectives
(see wake_sleep_objective), and reports the true ELBO of the same networks, so the methods
are measured alike.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vae_lightning.models.elbo import Elbo, gaussian_kl, reparameterize
from vae_lightning.models.ppca import LOG_2PI


@dataclass(frozen=True)
class Objective:
    """One batch's result: the ELBO's terms (beta = 1), the loss, and the bound if not the ELBO.

    ``terms``: recon and kl of shape (batch,), nats; ``loss``: the scalar to minimise;
    ``posterior``: q(z|x)'s (mu, logvar), each (batch, latent), for the latent diagnostics;
    ``bound``: the optimised bound per data point (iwae's L_k; None for the ELBO);
    ``phases``: the losses whose sum is ``loss``, by name, where it has several (wake-sleep's
    'wake' and 'sleep').
    """

    terms: Elbo
    loss: Tensor
    posterior: tuple[Tensor, Tensor]
    bound: Tensor | None = None
    phases: dict[str, Tensor] | None = None


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


def wake_sleep_objective(
    vae: nn.Module, x: Tensor, num_samples: int = 1, kl_weight: float = 1.0
) -> Objective:
    """The wake-sleep algorithm (Hinton et al. 1995) with the VAE's encoder as its recognition
    model q_phi(z|x) and its decoder as the generative model p_theta(x|z) p(z).

    wake, for theta:  maximise E_x E_{z ~ q(z|x)} [log p(x|z) + log p(z)], z held fixed
        (sampled, then detached: no gradient reaches q);
    sleep, for phi:   maximise E_{z ~ p(z), x ~ p(x|z)} [log q(z|x)] on dreams (z, x) drawn
        from the model (sampled without gradient: none reaches p).

    loss = wake + sleep = -mean over the batch of 1/L sum_l [log p(x|z_l) + log p(z_l)]
    - mean over L x batch dreams of log q(z|x). log p(z) = log N(z | 0, I) has no parameter
    (its gradient is zero); it is kept so that the wake loss is -log p(x, z). The two terms'
    gradients are disjoint (the wake term's reach the decoder only, the sleep term's the
    encoder only), so one backward pass and one optimiser step on their sum update each
    network by its own phase; the sleep phase dreams with the decoder of before the step.
    Unlike the ELBO's, the sleep gradient is that of KL(p(z|x) || q(z|x)) averaged over the
    model's own p(x), not of the ELBO on the data. The reported terms are the true ELBO's, of
    the wake draws: recon = -1/L sum_l log p(x|z_l), kl = KL(q(z|x) || p(z)) in closed form.
    The decoder must give p(x|z) as a distribution (``decoder.distribution(z)``). There is no
    KL term to weight: ``kl_weight`` must be 1.
    """
    if kl_weight != 1.0:
        raise ValueError(f"wake-sleep has no KL term to weight; got kl_weight={kl_weight}")
    mu, logvar = vae.encoder(x)
    z = reparameterize(mu.float(), logvar.float(), num_samples).detach()
    log_px_given_z = vae.decoder.log_likelihood(x.flatten(1), z)  # (L, batch)
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    wake = -(log_px_given_z + log_pz).mean()

    with torch.no_grad():
        dreamed_z = torch.randn(num_samples * len(x), mu.shape[-1], device=mu.device)
        dreamed_x = vae.decode_distribution(dreamed_z).sample().view(-1, *x.shape[1:])
    dreamed_mu, dreamed_logvar = (t.float() for t in vae.encoder(dreamed_x.to(x.dtype)))
    log_q = -0.5 * (
        LOG_2PI + dreamed_logvar + (dreamed_z - dreamed_mu).pow(2) * torch.exp(-dreamed_logvar)
    ).sum(-1)
    sleep = -log_q.mean()

    terms = Elbo(recon=-log_px_given_z.mean(0), kl=gaussian_kl(mu, logvar))
    return Objective(
        terms,
        loss=wake + sleep,
        posterior=(mu, logvar),
        phases={"wake": wake, "sleep": sleep},
    )


OBJECTIVES = {
    "elbo": elbo_objective,
    "iwae": iwae_objective,
    "wake_sleep": wake_sleep_objective,
}
# The name under which each objective's bound is logged, where it is not the ELBO.
BOUND_NAMES = {"elbo": None, "iwae": "iwae_bound", "wake_sleep": None}


def kl_weight_at(step: int, kl_weight: float = 1.0, warmup_steps: int = 0) -> float:
    """beta after ``step`` optimiser steps: kl_weight * min(1, step / warmup_steps).

    Linear KL warm-up from 0 at step 0 to ``kl_weight`` at ``warmup_steps`` (Bowman et al.
    2016; Sønderby et al. 2016), constant after; warmup_steps = 0: ``kl_weight`` throughout.
    """
    if warmup_steps <= 0:
        return kl_weight
    return kl_weight * min(1.0, step / warmup_steps)
