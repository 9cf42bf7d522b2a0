"""Encoders q(z|x), decoders p(x|z), the objectives and the Lightning module that trains them."""

from vae_lightning.models.decoders import (
    BernoulliDecoder,
    ConvBernoulliDecoder,
    ConvGaussianDecoder,
    GaussianDecoder,
    conv_decoder,
    mlp_decoder,
)
from vae_lightning.models.elbo import Elbo, gaussian_kl, reparameterize
from vae_lightning.models.encoders import ConvEncoder, MLPEncoder
from vae_lightning.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from vae_lightning.models.lit_vae import VAE
from vae_lightning.models.objectives import (
    OBJECTIVES,
    Objective,
    elbo_objective,
    iwae_objective,
    kl_weight_at,
    log_weights,
    wake_sleep_objective,
)
from vae_lightning.models.vae import VariationalAutoencoder

__all__ = [
    "OBJECTIVES",
    "VAE",
    "BernoulliDecoder",
    "BernoulliLikelihood",
    "ConvBernoulliDecoder",
    "ConvEncoder",
    "ConvGaussianDecoder",
    "Elbo",
    "GaussianDecoder",
    "GaussianLikelihood",
    "MLPEncoder",
    "Objective",
    "VariationalAutoencoder",
    "conv_decoder",
    "elbo_objective",
    "gaussian_kl",
    "iwae_objective",
    "kl_weight_at",
    "log_weights",
    "mlp_decoder",
    "reparameterize",
    "wake_sleep_objective",
]
