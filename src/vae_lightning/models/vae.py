"""The variational autoencoder as a plain torch module: encoder, decoder and prior N(0, I)."""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vae_lightning.models.decoders import build_decoder
from vae_lightning.models.elbo import Elbo, gaussian_kl, reparameterize
from vae_lightning.models.encoder import GaussianEncoder


class VariationalAutoencoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) Bernoulli, Gaussian or PPCA."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        hidden_dims: Sequence[int],
        activation: str,
        likelihood: str,
        variance: float | None = None,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        pixels = math.prod(self.image_shape)
        self.encoder = GaussianEncoder(pixels, hidden_dims, latent_dim, activation)
        self.decoder = build_decoder(
            likelihood, latent_dim, hidden_dims, pixels, activation, variance, min_variance
        )

    def elbo(
        self, x: Tensor, num_samples: int = 1, posterior: tuple[Tensor, Tensor] | None = None
    ) -> Elbo:
        """ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)), per data point.

        E_q is a mean over `num_samples` reparameterised draws of z; the KL is exact.
        ``posterior``: q(z|x)'s (mu, logvar) if already computed (default: the encoder's).
        """
        mu, logvar = self.encoder(x) if posterior is None else posterior
        z = reparameterize(mu, logvar, num_samples)
        log_px_given_z = self.decoder.log_likelihood(x.flatten(1), z)
        return Elbo(recon=-log_px_given_z.mean(0), kl=gaussian_kl(mu, logvar))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x|z] at z = mu(x), in the shape of x."""
        mu, _ = self.encoder(x)
        return self.decoder.mean(mu).view_as(x)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """E[x|z] for latent codes z of shape (n, latent_dim), as images (n, *image_shape)."""
        return self.decoder.mean(z).view(-1, *self.image_shape)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Means E[x|z] of n draws z ~ p(z), as images."""
        z = torch.randn(n, self.latent_dim, device=next(self.parameters()).device)
        return self.decode(z)
