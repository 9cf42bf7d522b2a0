"""The recognition model q(z|x) = N(z | mu(x), diag sigma^2(x)) of Kingma & Welling (App. C.2)."""

from collections.abc import Sequence

from torch import Tensor, nn

from vae_lightning.models.mlp import mlp


class GaussianEncoder(nn.Module):
    """An MLP over the flattened image with two linear heads: mu(x) and log sigma^2(x)."""

    def __init__(
        self, in_features: int, hidden_dims: Sequence[int], latent_dim: int, activation: str
    ) -> None:
        super().__init__()
        self.body = mlp(in_features, hidden_dims, activation)
        self.mu = nn.Linear(hidden_dims[-1], latent_dim)
        self.logvar = nn.Linear(hidden_dims[-1], latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x of shape (batch, *image_shape) -> (mu, logvar), each (batch, latent_dim)."""
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h)
