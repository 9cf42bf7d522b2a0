"""The wake-sleep objective (Hinton et al. 1995): each phase trains its own network, the sleep
phase fits q(z|x) to the exact posterior of a PPCA model, and a training run through the
entry point logs the true ELBO."""

import csv
import math

import pytest
import torch
from composing import compose_run
from conftest import tiny_overrides
from ppca_oracle import expected_elbo, posterior
from torch import Tensor, nn

from vae_lightning.errors import ConfigError
from vae_lightning.evaluation.checkpoint import load_model
from vae_lightning.models import VAE, VariationalAutoencoder
from vae_lightning.models.elbo import gaussian_kl
from vae_lightning.models.objectives import BOUND_NAMES, OBJECTIVES, wake_sleep_objective
from vae_lightning.models.ppca import PPCAParameters, ppca_log_likelihood
from vae_lightning.train import train

D, L = 6, 2


def gradient_norms(model: nn.Module, loss: Tensor) -> dict[str, float]:
    """The norm of d loss / d parameter for each network's parameters ('encoder.' or
    'decoder.' prefixes), 0 where the loss does not depend on it."""
    named = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True, retain_graph=True)
    return {
        name: 0.0 if grad is None else grad.norm().item()
        for name, grad in zip(named, grads, strict=True)
    }


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "linear_gaussian"])
def test_the_wake_term_trains_only_the_decoder_and_the_sleep_term_only_the_encoder(likelihood):
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 4, 4), 3, [8], "tanh", likelihood)
    x = torch.rand(5, 1, 4, 4)
    x = x.round() if likelihood == "bernoulli" else x
    result = wake_sleep_objective(vae, x, num_samples=2)
    wake, sleep = result.phases["wake"], result.phases["sleep"]
    torch.testing.assert_close(result.loss, wake + sleep)
    for phase, trained in ((wake, "decoder."), (sleep, "encoder.")):
        norms = gradient_norms(vae, phase)
        assert all(norm > 0 for name, norm in norms.items() if name.startswith(trained)), norms
        assert all(norm == 0 for name, norm in norms.items() if not name.startswith(trained))
    # One backward pass of the sum gives each network its own phase's gradient.
    total = gradient_norms(vae, result.loss)
    alone = gradient_norms(vae, wake) | {
        name: norm for name, norm in gradient_norms(vae, sleep).items() if "encoder." in name
    }
    assert total == pytest.approx(alone)


def test_the_reported_terms_are_the_true_elbo_of_the_wake_draws():
    torch.manual_seed(1)
    vae = VariationalAutoencoder((1, 4, 4), 3, [8], "tanh", "bernoulli")
    x = torch.rand(7, 1, 4, 4).round()
    torch.manual_seed(2)
    result = wake_sleep_objective(vae, x, num_samples=3)
    torch.manual_seed(2)
    elbo = vae.elbo(x, num_samples=3)  # the same draws of z from q(z|x)
    torch.testing.assert_close(result.terms.recon, elbo.recon)
    torch.testing.assert_close(result.terms.kl, gaussian_kl(*vae.encoder(x)))
    assert result.bound is None and result.posterior[0].shape == (7, 3)
    with pytest.raises(ValueError, match="no KL term"):
        wake_sleep_objective(vae, x, kl_weight=0.5)


class LinearEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag exp(v)): the exact PPCA posterior's family where the posterior
    covariance is diagonal."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(D, L)
        self.logvar = nn.Parameter(torch.zeros(L))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = self.mean(x.flatten(1))
        return mu, self.logvar.expand_as(mu)


def ppca_model(params: PPCAParameters | None = None) -> VariationalAutoencoder:
    """A PPCA decoder (with ``params`` if given) and a linear encoder."""
    vae = VariationalAutoencoder((1, D), L, [8], "tanh", "linear_gaussian")
    vae.encoder = LinearEncoder()
    if params is not None:
        with torch.no_grad():
            vae.decoder.linear.weight.copy_(params.weight)
            vae.decoder.linear.bias.copy_(params.bias)
            vae.decoder.raw_log_variance.copy_((params.variance - 1e-4).log())
    return vae


@pytest.fixture
def ppca_data() -> tuple[PPCAParameters, Tensor]:
    """PPCA with orthogonal columns of W (so the exact posterior is diagonal) and 500 draws."""
    generator = torch.Generator().manual_seed(3)
    basis, _ = torch.linalg.qr(torch.randn(D, L, generator=generator))
    params = PPCAParameters(basis * torch.tensor([2.0, 1.0]), torch.randn(D, generator=generator),
                            torch.tensor(0.1))  # fmt: skip
    z, noise = torch.randn(500, L, generator=generator), torch.randn(500, D, generator=generator)
    return params, z @ params.weight.T + params.bias + params.variance.sqrt() * noise


def exact_elbo_and_gap(vae: VariationalAutoencoder, x: Tensor) -> tuple[float, float]:
    """The model's expected ELBO on x (exact, no Monte Carlo) and its gap to log p(x), the mean
    KL(q(z|x) || p(z|x)) under the current decoder."""
    params = PPCAParameters(*(t.detach() for t in vae.decoder.parameters_ppca()))
    with torch.no_grad():
        mu, logvar = vae.encoder(x)
    elbo = expected_elbo(x, params, mu, logvar.exp()).mean().item()
    return elbo, ppca_log_likelihood(x, params).mean().item() - elbo


def train_wake_sleep(vae: VariationalAutoencoder, x: Tensor, steps: int) -> None:
    """``steps`` Adam steps on wake-sleep's loss, minibatches of 100, the rate cut tenfold for
    the last third (the dreams make the gradients noisy)."""
    optimizer = torch.optim.Adam([p for p in vae.parameters() if p.requires_grad], lr=0.05)
    for step in range(steps):
        if step == 2 * steps // 3:
            optimizer.param_groups[0]["lr"] /= 10
        batch = x[(step * 100) % len(x) :][:100]
        optimizer.zero_grad()
        wake_sleep_objective(vae, batch).loss.backward()
        optimizer.step()


@pytest.fixture
def one_thread():
    """Tiny matrices: threads only add overhead (tenfold on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_sleep_phase_fits_q_to_the_exact_posterior_of_a_fixed_ppca_model(
    seed, ppca_data, one_thread
):
    params, x = ppca_data
    torch.manual_seed(seed)
    vae = ppca_model(params)
    vae.decoder.requires_grad_(False)
    _, gap_before = exact_elbo_and_gap(vae, x)
    train_wake_sleep(vae, x, 300)
    _, gap_after = exact_elbo_and_gap(vae, x)
    assert gap_before > 10 and gap_after < 0.05, (gap_before, gap_after)
    projection, _, covariance = posterior(x, params)
    weight = vae.encoder.mean.weight.detach()
    torch.testing.assert_close(weight, projection.float(), atol=0.06, rtol=0)
    variances = vae.encoder.logvar.detach().exp()
    torch.testing.assert_close(variances, covariance.diagonal().float(), atol=0, rtol=0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_wake_sleep_training_raises_the_elbo_of_a_ppca_model_to_log_p_x(
    seed, ppca_data, one_thread
):
    """Both networks from scratch: the exact ELBO rises to about the data's log-likelihood
    under the true parameters, and q(z|x) comes to the new model's exact posterior."""
    params, x = ppca_data
    torch.manual_seed(seed)
    vae = ppca_model()
    elbo_before, gap_before = exact_elbo_and_gap(vae, x)
    train_wake_sleep(vae, x, 900)
    elbo_after, gap_after = exact_elbo_and_gap(vae, x)
    truth = ppca_log_likelihood(x, params).mean().item()
    assert elbo_before < truth - 5 and elbo_after > truth - 0.1, (elbo_before, elbo_after, truth)
    assert gap_before > 0.5 and gap_after < 0.05, (gap_before, gap_after)


@pytest.mark.parametrize("data", ["mnist", "frey_face"])
def test_the_experiments_train_through_the_entry_point_and_log_a_finite_true_elbo(
    data, tiny_data, tmp_path
):
    """Two epochs of experiment=wake_sleep_<data> on the tiny data (small network), validated
    at each: the Bernoulli and the Gaussian decoder's dreams."""
    args = [f"experiment=wake_sleep_{data}", *tiny_overrides(tiny_data, tmp_path, data)]
    args += ["test=false", "logger=csv", "trainer.max_epochs=2"]
    metrics = train(compose_run([*args, "trainer.check_val_every_n_epoch=1"], tmp_path))
    assert math.isfinite(metrics["val/elbo"])
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val = [float(row["val/elbo"]) for row in rows if row.get("val/elbo")]
    assert len(val) == 2 and all(map(math.isfinite, val))
    assert not any(key.startswith("val/iwae") for key in rows[0])
    model = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert isinstance(model, VAE) and model.hparams.objective == "wake_sleep"
    assert model._objective is OBJECTIVES["wake_sleep"] and BOUND_NAMES["wake_sleep"] is None


def test_the_ppca_decoder_gives_its_likelihood_as_a_distribution():
    """What the sleep phase samples dreams from: p(x|z) of log_likelihood."""
    torch.manual_seed(6)
    vae = VariationalAutoencoder((1, D), L, [8], "tanh", "linear_gaussian")
    z, x = torch.randn(3, 5, L), torch.randn(5, D)
    with torch.no_grad():
        expected = vae.decoder.log_likelihood(x, z)
        torch.testing.assert_close(vae.decode_distribution(z).log_prob(x), expected)


@pytest.mark.parametrize("override", ["model.kl_weight=0.5", "model.kl_warmup_steps=10"])
def test_a_kl_weight_with_wake_sleep_is_refused(override, tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "model.objective=wake_sleep", override]
    with pytest.raises(ConfigError, match="wake_sleep, which has no KL term"):
        train(compose_run(args, tmp_path))


@pytest.mark.parametrize(("experiment", "paper"), [("mnist", "aevb_mnist"),
                                                   ("frey_face", "aevb_frey_face")])  # fmt: skip
def test_the_wake_sleep_experiments_are_the_papers_aevb_settings_but_the_objective(
    experiment, paper, tmp_path
):
    ours = compose_run([f"experiment=wake_sleep_{experiment}"], tmp_path)
    aevb = compose_run([f"experiment={paper}"], tmp_path)
    assert ours.model.objective == "wake_sleep" and aevb.model.objective == "elbo"
    ours.model.objective = "elbo"
    for group in ("model", "data", "trainer"):
        assert ours[group] == aevb[group], group
