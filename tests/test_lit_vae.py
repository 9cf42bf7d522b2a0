"""The LightningModule's settings reach the model it builds, and bad ones are refused."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from vae_lightning.models import VAE
from vae_lightning.models.decoders import LIKELIHOODS
from vae_lightning.models.lit_vae import _plain
from vae_lightning.models.objectives import OBJECTIVES


def test_the_defaults_are_the_papers_mnist_model():
    model = VAE([1, 28, 28])
    assert model.vae.latent_dim == 20 and model.hparams.num_samples == 1
    assert model.hparams.min_variance == 1e-4 and model.hparams.variance is None
    assert model.hparams.objective == "elbo" and model._objective is OBJECTIVES["elbo"]


@pytest.mark.parametrize("likelihood", ["gaussian", "linear_gaussian"])
def test_a_fixed_variance_reaches_the_decoder_and_is_not_learned(likelihood):
    model = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8], likelihood=likelihood, variance=0.05)
    decoder = model.vae.decoder
    z = torch.randn(3, 2)
    if likelihood == "gaussian":
        _, log_variance = decoder(z)
        assert decoder.logvar is None
    else:
        log_variance = decoder.log_variance()
        assert decoder.raw_log_variance is None
    assert torch.allclose(log_variance, torch.tensor(math.log(0.05)))


@pytest.mark.parametrize("likelihood", ["gaussian", "linear_gaussian"])
def test_the_variance_floor_reaches_the_decoder(likelihood):
    def floor(**options) -> float:
        model = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8], likelihood=likelihood, **options)
        return model.vae.decoder.log_min_variance

    assert floor() == math.log(1e-4)
    assert floor(min_variance=0.5) == math.log(0.5)


def test_an_unknown_objective_or_likelihood_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError) as err:
        VAE([1, 4, 4], objective="vamp")
    assert str(err.value) == f"unknown objective 'vamp'; expected one of {list(OBJECTIVES)}"
    with pytest.raises(ValueError) as err:
        VAE([1, 4, 4], likelihood="poisson")
    assert str(err.value) == f"unknown likelihood 'poisson'; expected one of {LIKELIHOODS}"


def test_compile_wraps_the_objective_and_compiles_nothing_yet():
    model = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8], objective="iwae", compile=True)
    assert model._objective is not OBJECTIVES["iwae"]
    assert model._objective._torchdynamo_orig_callable is OBJECTIVES["iwae"]


def test_forward_computes_the_plain_elbo_unless_given_a_kl_weight():
    model = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8])
    x = torch.rand(5, 1, 4, 4).round()

    def loss(*kl_weight: float) -> torch.Tensor:
        torch.manual_seed(0)
        return model(x, *kl_weight).loss

    assert torch.equal(loss(), loss(1.0)) and not torch.equal(loss(), loss(0.5))


def test_hyperparameters_are_saved_as_plain_resolved_values():
    config = OmegaConf.create({"lr": "${base}", "base": 0.1, "betas": [0.9, 0.999]})
    assert _plain(config) == {"lr": 0.1, "base": 0.1, "betas": [0.9, 0.999]}
    assert _plain({"lr": 0.1}) == {"lr": 0.1}
