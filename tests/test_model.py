"""The maths of the model: KL, log-likelihoods, reparameterisation, shapes."""

import pytest
import torch
from torch import distributions as D

from vae_lightning.models import (
    BernoulliDecoder,
    GaussianDecoder,
    VariationalAutoencoder,
    gaussian_kl,
    reparameterize,
)


def test_closed_form_kl_equals_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(64, 7) * 2, torch.randn(64, 7)
    q = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = D.Independent(D.Normal(torch.zeros(7), torch.ones(7)), 1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), D.kl_divergence(q, p))


def test_bernoulli_log_likelihood_equals_torch_distributions():
    torch.manual_seed(0)
    decoder = BernoulliDecoder(latent_dim=3, hidden_dims=[16], out_features=10, activation="tanh")
    x, z = torch.bernoulli(torch.full((5, 10), 0.3)), torch.randn(4, 5, 3)
    expected = D.Independent(D.Bernoulli(logits=decoder(z)), 1).log_prob(x.expand(4, 5, 10))
    torch.testing.assert_close(decoder.log_likelihood(x, z), expected)


@pytest.mark.parametrize("variance", [None, 0.05])
def test_gaussian_log_likelihood_equals_torch_distributions(variance):
    torch.manual_seed(0)
    decoder = GaussianDecoder(3, [16], 10, "tanh", variance=variance, min_variance=1e-4)
    x, z = torch.rand(5, 10), torch.randn(2, 5, 3)
    mean, logvar = decoder(z)
    expected = D.Independent(D.Normal(mean, torch.exp(0.5 * logvar)), 1).log_prob(x)
    torch.testing.assert_close(decoder.log_likelihood(x, z), expected)
    if variance is not None:
        torch.testing.assert_close(logvar, torch.full_like(logvar, torch.tensor(variance).log()))


def test_gaussian_variance_has_a_floor():
    decoder = GaussianDecoder(2, [8], 4, "tanh", min_variance=1e-3)
    with torch.no_grad():
        decoder.logvar.bias.fill_(-50.0)  # the network asks for a collapsed variance
    _, logvar = decoder(torch.randn(3, 2))
    assert torch.all(logvar >= torch.log(torch.tensor(1e-3)) - 1e-6)


def test_reparameterisation_has_the_right_moments_and_shape():
    torch.manual_seed(0)
    mu, logvar = (
        torch.tensor([[1.0, -2.0]]),
        torch.tensor([[0.0, 2 * torch.log(torch.tensor(3.0))]]),
    )
    z = reparameterize(mu, logvar, num_samples=200_000)
    assert z.shape == (200_000, 1, 2)
    torch.testing.assert_close(z.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([[1.0, 3.0]]), atol=0.03, rtol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradients_reach_encoder_and_decoder_through_the_sample(likelihood):
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 4, 4), 2, [8], "tanh", likelihood)
    x = torch.rand(6, 1, 4, 4)
    vae.elbo(x).loss.backward()
    for name, parameter in vae.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # The reconstruction term alone also reaches the encoder's variance head: the
    # gradient flows through z = mu + sigma * eps, not only through the closed-form KL.
    vae.zero_grad()
    vae.elbo(x).recon.mean().backward()
    assert vae.encoder.logvar.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("latent_dim", [1, 2, 5, 20])
@pytest.mark.parametrize("num_samples", [1, 3])
def test_shapes(latent_dim, num_samples):
    vae = VariationalAutoencoder((1, 28, 20), latent_dim, [32, 16], "relu", "gaussian")
    x = torch.rand(7, 1, 28, 20)
    terms = vae.elbo(x, num_samples)
    assert terms.elbo.shape == terms.recon.shape == terms.kl.shape == (7,)
    assert vae.sample(4).shape == (4, 1, 28, 20)
    assert vae.reconstruct(x).shape == x.shape
    assert vae.decode(torch.zeros(3, latent_dim)).shape == (3, 1, 28, 20)


def test_elbo_is_a_lower_bound_on_a_model_with_one_latent_state():
    """With q = p(z) and a decoder that ignores z, ELBO = log p(x) exactly (KL = 0)."""
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 2, 2), 1, [4], "tanh", "bernoulli")
    with torch.no_grad():
        for layer in (vae.encoder.mu, vae.encoder.logvar, vae.decoder.body[0]):
            layer.weight.zero_()
            layer.bias.zero_()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]]).view(1, 1, 2, 2)
    p = torch.sigmoid(vae.decoder.logits.bias)
    log_px = (x.flatten() * p.log() + (1 - x.flatten()) * (1 - p).log()).sum()
    torch.testing.assert_close(vae.elbo(x, num_samples=5).elbo, log_px.view(1))


def test_latent_means_of_more_than_two_dimensions_are_drawn_on_their_principal_axes():
    from vae_lightning.evaluation.figures import principal_components

    generator = torch.Generator().manual_seed(0)
    # Variance along a direction outside the first two coordinates: PCA must find it.
    direction = torch.tensor([0.0, 0.0, 3.0, 4.0, 0.0]) / 5
    points = torch.randn(500, 1, generator=generator) * 10 * direction
    points += 0.1 * torch.randn(500, 5, generator=generator)
    shown, explained = principal_components(points)
    assert shown.shape == (500, 2) and explained[0] > 0.95
    centred = points - points.mean(0)
    assert shown[:, 0].abs().tolist() == pytest.approx(
        (centred @ direction).abs().tolist(), abs=0.2
    )


def test_the_elbo_and_its_objective_draw_one_sample_of_z_by_default():
    from vae_lightning.models.objectives import elbo_objective

    torch.manual_seed(0)
    vae, x = VariationalAutoencoder((1, 6), 2, [8], "tanh", "bernoulli"), torch.rand(4, 1, 6)
    for estimate in (
        lambda **n: vae.elbo(x, **n).elbo,
        lambda **n: elbo_objective(vae, x, **n).loss,
    ):
        torch.manual_seed(1)
        default = estimate()
        torch.manual_seed(1)
        torch.testing.assert_close(default, estimate(num_samples=1), rtol=0, atol=0)
