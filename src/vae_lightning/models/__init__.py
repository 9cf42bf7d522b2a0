"""Encoders q(z|x), decoders p(x|z), the ELBO and the Lightning module that trains them."""

from vae_lightning.models.decoders import BernoulliDecoder, GaussianDecoder, build_decoder
from vae_lightning.models.elbo import Elbo, gaussian_kl, reparameterize
from vae_lightning.models.encoder import GaussianEncoder
from vae_lightning.models.lit_vae import VAE
from vae_lightning.models.vae import VariationalAutoencoder

__all__ = [
    "VAE",
    "BernoulliDecoder",
    "Elbo",
    "GaussianDecoder",
    "GaussianEncoder",
    "VariationalAutoencoder",
    "build_decoder",
    "gaussian_kl",
    "reparameterize",
]
