"""The variational autoencoder as a plain torch module: encoder, decoder and prior N(0, I)."""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, distributions, nn

from vae_lightning.models.elbo import Elbo, gaussian_kl, reparameterize
from vae_lightning.models.latent_diagnostics import latent_diagnostics
from vae_lightning.models.networks import DEFAULT_DECODER, DEFAULT_ENCODER, build_networks


class VariationalAutoencoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) Bernoulli, Gaussian or PPCA.

    ``encoder`` and ``decoder``: Hydra configs of the networks (models/networks.py); the
    default is the MLPs of Kingma & Welling, of widths ``hidden_dims``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        hidden_dims: Sequence[int],
        activation: str,
        likelihood: str,
        variance: float | None = None,
        min_variance: float = 1e-4,
        encoder: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.encoder, self.decoder = build_networks(
            encoder or DEFAULT_ENCODER,
            decoder or DEFAULT_DECODER,
            self.image_shape,
            latent_dim,
            hidden_dims=list(hidden_dims),
            activation=activation,
            likelihood=likelihood,
            variance=variance,
            min_variance=min_variance,
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
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """Means E[x|z] of n draws z ~ p(z), as images; the draws seeded by ``seed`` if given
        (torch's global generator is then left as it was)."""
        device = next(self.parameters()).device
        with _seeded(seed, device):
            return self.decode(torch.randn(n, self.latent_dim, device=device))

    def encode(self, x: Tensor) -> distributions.Distribution:
        """q(z|x) = N(mu(x), diag sigma^2(x)) as a torch distribution, event shape (latent_dim,):
        ``.mean`` and ``.variance`` are mu(x) and sigma^2(x), each (batch, latent_dim)."""
        mu, logvar = self.encoder(x)
        return distributions.Independent(distributions.Normal(mu, (0.5 * logvar).exp()), 1)

    def decode_distribution(self, z: Tensor) -> distributions.Distribution:
        """p(x|z) over the flattened pixels as a torch distribution (event shape (pixels,)), for
        decoders that give one (``decoder.distribution``: those of models/likelihoods.py)."""
        if not callable(getattr(self.decoder, "distribution", None)):
            raise TypeError(
                f"{type(self.decoder).__name__} has no distribution(z); its log_likelihood(x, z) "
                "and mean(z) are what every decoder has."
            )
        return self.decoder.distribution(z)

    @torch.no_grad()
    def latent_diagnostics(
        self,
        x: Tensor,
        threshold: float = 0.01,
        mutual_info_points: int | None = None,
        seed: int = 0,
        batch_size: int = 1000,
    ) -> dict[str, Any]:
        """The latent diagnostics of the images x, as eval.json's ``latent`` holds them
        (models/latent_diagnostics.py): active units (A_u > ``threshold``), KL per dimension
        and its sum, mutual information I_q(x; z) over ``mutual_info_points`` of the images
        drawn with ``seed`` (None: all), and KL(q(z) || p(z)); nats."""
        mu, logvar = [], []
        for batch in x.split(batch_size):
            m, v = self.encoder(batch.to(next(self.parameters()).device))
            mu.append(m.float().cpu())
            logvar.append(v.float().cpu())
        mu, logvar = torch.cat(mu), torch.cat(logvar)
        return latent_diagnostics(mu, logvar, threshold, mutual_info_points, seed)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        num_samples: int = 5000,
        seed: int | None = 0,
        batch_size: int = 100,
        chunk_size: int = 100,
    ) -> Tensor:
        """The importance-sampled log p(x) of each image of x with K = ``num_samples`` draws
        from q(z|x) (evaluation/importance_sampling.py), nats, float64 on the CPU, shape (n,).

        A stochastic lower bound that rises to log p(x) with K (5000 in the literature). The
        draws are seeded by ``seed`` (None: torch's global generator, which is otherwise left
        as it was); x is processed ``batch_size`` images and ``chunk_size`` draws at a time.
        """
        # Imported here: the evaluation package imports this module.
        from vae_lightning.evaluation.metrics import importance_sampled_log_likelihood

        with _seeded(seed, next(self.parameters()).device):  # where the draws are made
            return importance_sampled_log_likelihood(self, x, num_samples, batch_size, chunk_size)


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's CPU generator, and that of ``device`` if it is a GPU, with ``seed`` inside,
    and restore them after; None: unseeded. Only these two: torch.manual_seed would also
    reseed every other GPU (or, before CUDA starts, queue that reseeding for later), which
    fork_rng does not restore."""
    if seed is None:
        yield
        return
    gpu = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpu):
        torch.random.default_generator.manual_seed(seed)
        if gpu:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
