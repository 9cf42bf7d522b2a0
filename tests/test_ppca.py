"""PPCA, the model with an exact log p(x): the oracle for the ELBO and importance sampling."""

import pytest
import torch
from torch import Tensor, nn

from vae_lightning.evaluation import iwae_bound, log_marginal_likelihood
from vae_lightning.models.ppca import PPCAParameters, fit_ppca, ppca_log_likelihood
from vae_lightning.models.vae import VariationalAutoencoder

D, L = 10, 2


@pytest.fixture
def ppca_data() -> tuple[PPCAParameters, Tensor]:
    """True PPCA parameters and 400 draws x = W z + b + s * noise from them."""
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(D, L, generator=generator), torch.randn(D, generator=generator)
    params = PPCAParameters(weight, bias, torch.tensor(0.2))
    z = torch.randn(400, L, generator=generator)
    noise = torch.randn(400, D, generator=generator)
    return params, z @ params.weight.T + params.bias + params.variance.sqrt() * noise


class PosteriorEncoder(nn.Module):
    """q(z|x): the exact posterior mean M^-1 W^T (x - b) with the diagonal of its covariance
    s^2 M^-1 scaled by ``inflation``: close to p(z|x), but not equal (full vs diagonal)."""

    def __init__(self, params: PPCAParameters, inflation: float) -> None:
        super().__init__()
        weight, bias, variance = params
        precision = weight.T @ weight + variance * torch.eye(L)
        self.projection = torch.linalg.solve(precision, weight.T)  # M^-1 W^T, (L, D)
        self.bias = bias
        self.logvar = (variance * torch.linalg.inv(precision).diagonal() * inflation).log()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = (x.flatten(1) - self.bias) @ self.projection.T
        return mu, self.logvar.expand_as(mu)


def ppca_vae(params: PPCAParameters, inflation: float = 1.5) -> VariationalAutoencoder:
    """A VAE whose linear Gaussian decoder holds ``params``, with a fixed PosteriorEncoder."""
    vae = VariationalAutoencoder((1, D), L, [8], "tanh", "linear_gaussian")
    with torch.no_grad():
        vae.decoder.linear.weight.copy_(params.weight)
        vae.decoder.linear.bias.copy_(params.bias)
        # s^2 = exp(raw) + min_variance: the floor (1e-4) is added back.
        vae.decoder.raw_log_variance.copy_((params.variance - 1e-4).log())
    vae.encoder = PosteriorEncoder(params, inflation)
    return vae


def test_exact_log_likelihood_equals_the_dense_gaussian_density(ppca_data):
    params, x = ppca_data
    covariance = params.weight @ params.weight.T + params.variance * torch.eye(D)
    dense = torch.distributions.MultivariateNormal(params.bias.double(), covariance.double())
    assert torch.allclose(ppca_log_likelihood(x, params), dense.log_prob(x.double()), atol=1e-5)


def test_decoder_exact_log_likelihood_uses_its_parameters(ppca_data):
    params, x = ppca_data
    vae = ppca_vae(params)
    exact = vae.decoder.exact_log_likelihood(x)
    assert torch.allclose(exact, ppca_log_likelihood(x, params), atol=1e-4)


def test_closed_form_fit_has_the_highest_likelihood(ppca_data):
    params, x = ppca_data
    fit = fit_ppca(x, L)
    best = ppca_log_likelihood(x, fit).mean()
    assert best >= ppca_log_likelihood(x, params).mean()
    perturbed = PPCAParameters(fit.weight * 1.05, fit.bias, fit.variance)
    assert best > ppca_log_likelihood(x, perturbed).mean()
    assert fit.bias.allclose(x.double().mean(0))


@pytest.mark.parametrize("scale", [0.1, 3.0])  # eigenvalues below and above 1
def test_closed_form_fit_keeps_the_top_eigenvalues_and_averages_the_rest(ppca_data, scale):
    """The ML fit's covariance W W^T + s^2 I has the data covariance's L largest eigenvalues
    and, in the other D - L directions, their mean s^2 (Tipping & Bishop, eq. 7-8)."""
    x = ppca_data[1] * scale
    fit = fit_ppca(x, L)
    centred = x.double() - x.double().mean(0)
    data_eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / len(x)).flip(0)
    model = fit.weight @ fit.weight.T + fit.variance * torch.eye(D, dtype=torch.float64)
    model_eigenvalues = torch.linalg.eigvalsh(model).flip(0)
    assert torch.allclose(model_eigenvalues[:L], data_eigenvalues[:L], rtol=1e-9)
    assert torch.allclose(fit.variance, data_eigenvalues[L:].mean(), rtol=1e-9)
    assert torch.allclose(model_eigenvalues[L:], fit.variance.expand(D - L), rtol=1e-9)


@pytest.mark.parametrize("latent_dim", [1, D - 1])
def test_a_fit_takes_one_to_d_minus_one_latent_dimensions(ppca_data, latent_dim):
    assert fit_ppca(ppca_data[1], latent_dim).weight.shape == (D, latent_dim)


@pytest.mark.parametrize("latent_dim", [0, D])
def test_a_fit_with_no_latent_or_no_noise_dimension_is_refused(ppca_data, latent_dim):
    with pytest.raises(ValueError) as err:
        fit_ppca(ppca_data[1], latent_dim)
    assert str(err.value) == f"latent_dim must be in [1, {D - 1}], got {latent_dim}"


def test_elbo_is_below_the_exact_log_likelihood_for_every_point(ppca_data):
    params, x = ppca_data
    vae = ppca_vae(params)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = vae.elbo(x, num_samples=4000).elbo.double()
    exact = ppca_log_likelihood(x, params)
    assert (elbo <= exact + 0.01).all()  # 0.01: Monte Carlo error of the ELBO's expectation
    assert (exact - elbo).mean() > 0.05  # the diagonal proposal leaves a visible gap


def test_importance_sampling_converges_to_the_exact_log_likelihood(ppca_data):
    params, x = ppca_data
    vae, exact = ppca_vae(params), ppca_log_likelihood(x, params)
    torch.manual_seed(0)
    with torch.no_grad():
        estimates = {k: log_marginal_likelihood(vae, x, k, chunk_size=64) for k in (1, 10, 5000)}
        elbo = vae.elbo(x, num_samples=4000).elbo
    errors = {k: (exact - v).mean().item() for k, v in estimates.items()}
    assert errors[1] > errors[10] > errors[5000]
    assert abs(errors[1] - (exact - elbo).mean().item()) < 0.05  # K = 1: the ELBO
    assert abs(errors[5000]) < 0.01
    assert (exact - estimates[5000]).abs().max() < 0.1


def test_iwae_bound_is_differentiable(ppca_data):
    params, x = ppca_data
    vae = ppca_vae(params)
    iwae_bound(vae, x[:5], num_samples=8).mean().backward()
    assert vae.decoder.linear.weight.grad is not None


def test_gradient_trained_ppca_approaches_the_closed_form_fit(ppca_data):
    """ELBO training with the VAE's MLP encoder recovers the maximum-likelihood fit."""
    _, x = ppca_data
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, D), L, [32], "tanh", "linear_gaussian")
    optimizer = torch.optim.Adam(vae.parameters(), lr=0.03)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead
    try:
        for _ in range(300):
            optimizer.zero_grad()
            vae.elbo(x, num_samples=16).loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        trained = vae.decoder.exact_log_likelihood(x).mean()
    best = ppca_log_likelihood(x, fit_ppca(x, L)).mean()
    assert trained <= best + 1e-6
    assert best - trained < 0.05
