"""Property-based tests (Hypothesis) of the estimators: the closed-form KL, the decoders'
log-likelihoods, the ELBO and importance sampling on the PPCA oracle, the mean and its
standard error. Examples are derandomised: the same on every run."""

import math
import statistics
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ppca_oracle import expected_elbo, oracle_vae
from torch import distributions as D

from vae_lightning.evaluation import log_marginal_likelihood
from vae_lightning.evaluation.metrics import mean_and_sem
from vae_lightning.models import BernoulliDecoder, GaussianDecoder, gaussian_kl, reparameterize
from vae_lightning.models.ppca import LinearGaussianDecoder, PPCAParameters, ppca_log_likelihood

FAST = settings(max_examples=40, deadline=None, derandomize=True)
SLOWER = settings(max_examples=25, deadline=None, derandomize=True)

shapes = st.lists(st.integers(1, 5), min_size=0, max_size=2)  # batch dimensions
seeds = st.integers(0, 2**31 - 1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@FAST
@given(
    batch=shapes,
    latent=st.integers(1, 8),
    mu_scale=st.floats(0.0, 10.0),
    logvar_range=st.floats(0.0, 10.0),
    seed=seeds,
)
def test_closed_form_kl_is_non_negative_and_equals_torch_distributions(
    batch, latent, mu_scale, logvar_range, seed
):
    g = _generator(seed)
    mu = torch.randn(*batch, latent, generator=g) * mu_scale
    logvar = (torch.rand(*batch, latent, generator=g) * 2 - 1) * logvar_range
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == tuple(batch) and kl.dtype == torch.float32
    q = D.Independent(D.Normal(mu.double(), (0.5 * logvar.double()).exp()), 1)
    p = D.Independent(D.Normal(torch.zeros(latent).double(), torch.ones(latent).double()), 1)
    reference = D.kl_divergence(q, p)
    assert (kl >= -1e-5).all()
    torch.testing.assert_close(kl.double(), reference, rtol=1e-5, atol=1e-5)


@FAST
@given(
    batch=shapes,
    latent=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    seed=seeds,
)
def test_reparameterised_samples_keep_shape_dtype_and_moments(batch, latent, dtype, seed):
    """z = mu + sigma * eps: one sample by default, in mu's dtype (bf16 under autocast), with
    mean mu and standard deviation sigma (4000 samples: within 0.1 sigma, about 6 s.e.)."""
    g = _generator(seed)
    mu = torch.randn(*batch, latent, generator=g).to(dtype)
    logvar = torch.randn(*batch, latent, generator=g).to(dtype)
    assert reparameterize(mu, logvar).shape == (1, *batch, latent)
    torch.manual_seed(seed)
    z = reparameterize(mu, logvar, num_samples=4000)
    assert z.shape == (4000, *batch, latent) and z.dtype == dtype
    sigma = (0.5 * logvar.double()).exp()
    assert ((z.double().mean(0) - mu.double()).abs() <= 0.1 * sigma).all()
    assert ((z.double().std(0) / sigma - 1).abs() <= 0.1).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_reparameterised_samples_are_drawn_on_the_device_of_mu():
    mu = torch.zeros(3, 2, device="cuda")
    assert reparameterize(mu, mu, num_samples=5).device == mu.device


def _returning(decoder: torch.nn.Module, output) -> torch.nn.Module:
    """The decoder with its network's output fixed, to test log_likelihood's formula alone."""
    decoder.forward = lambda z: output
    return decoder


@FAST
@given(
    batch=st.integers(1, 6),
    pixels=st.integers(1, 50),
    logit_scale=st.sampled_from([1.0, 10.0, 50.0, 100.0]),
    binary=st.booleans(),
    seed=seeds,
)
def test_bernoulli_log_likelihood_equals_torch_distributions_even_at_extreme_logits(
    batch, pixels, logit_scale, binary, seed
):
    g = _generator(seed)
    logits = torch.randn(3, batch, pixels, generator=g) * logit_scale
    x = torch.rand(batch, pixels, generator=g)
    x = x.round() if binary else x  # grey levels: the continuous Bernoulli-style objective
    decoder = _returning(BernoulliDecoder(2, [4], pixels, "tanh"), logits)
    log_lik = decoder.log_likelihood(x, torch.zeros(3, batch, 2))
    reference = D.Bernoulli(logits=logits.double(), validate_args=False).log_prob(x.double())
    assert log_lik.shape == (3, batch) and torch.isfinite(log_lik).all()
    # float32 with |logit| up to ~400: a few ulps of the largest term per pixel.
    atol = 1e-6 * pixels * (1 + logits.abs().max().item())
    torch.testing.assert_close(log_lik.double(), reference.sum(-1), rtol=1e-5, atol=atol)


@FAST
@given(
    batch=st.integers(1, 6),
    pixels=st.integers(1, 50),
    min_log_variance=st.sampled_from([-20.0, -10.0, -4.0, 0.0]),
    seed=seeds,
)
def test_gaussian_log_likelihood_equals_torch_distributions_even_at_tiny_variances(
    batch, pixels, min_log_variance, seed
):
    g = _generator(seed)
    mean = torch.rand(2, batch, pixels, generator=g)
    logvar = min_log_variance + torch.rand(2, batch, pixels, generator=g) * 3
    # Data within a few standard deviations of the mean, as a trained decoder sees them.
    x = mean[0] + (0.5 * logvar[0]).exp() * torch.randn(batch, pixels, generator=g)
    decoder = _returning(GaussianDecoder(2, [4], pixels, "tanh"), (mean, logvar))
    log_lik = decoder.log_likelihood(x, torch.zeros(2, batch, 2))
    normal = D.Normal(mean.double(), (0.5 * logvar.double()).exp())
    reference = normal.log_prob(x.double()).sum(-1)
    torch.testing.assert_close(log_lik.double(), reference, rtol=1e-5, atol=1e-4 * pixels)


@FAST
@given(
    batch=st.integers(1, 6),
    pixels=st.integers(1, 30),
    latent=st.integers(1, 4),
    variance=st.floats(1e-6, 10.0),
    seed=seeds,
)
def test_linear_gaussian_log_likelihood_equals_torch_distributions(
    batch, pixels, latent, variance, seed
):
    g = _generator(seed)
    decoder = LinearGaussianDecoder(latent, pixels, variance=variance)
    z = torch.randn(2, batch, latent, generator=g)
    mean = decoder(z).detach()
    x = mean[0] + math.sqrt(variance) * torch.randn(batch, pixels, generator=g)
    reference = D.Normal(mean.double(), math.sqrt(variance)).log_prob(x.double()).sum(-1)
    log_lik = decoder.log_likelihood(x, z).detach()
    torch.testing.assert_close(log_lik.double(), reference, rtol=1e-5, atol=1e-4 * pixels)


def _ppca(seed: int, dim: int, latent: int, variance: float) -> tuple[PPCAParameters, torch.Tensor]:
    """Random PPCA parameters and 64 draws from the model."""
    g = _generator(seed)
    params = PPCAParameters(
        torch.randn(dim, latent, generator=g), torch.randn(dim, generator=g), torch.tensor(variance)
    )
    z = torch.randn(64, latent, generator=g)
    x = z @ params.weight.T + params.bias + math.sqrt(variance) * torch.randn(64, dim, generator=g)
    return params, x


def _mean_and_sem(values: torch.Tensor) -> tuple[float, float]:
    return values.mean().item(), values.std().item() / math.sqrt(len(values))


@SLOWER
@given(
    dim=st.integers(2, 8),
    latent=st.integers(1, 3),
    variance=st.floats(0.05, 2.0),
    inflation=st.floats(1.0, 4.0),
    shift=st.floats(0.0, 1.5),
    seed=seeds,
)
def test_elbo_and_importance_sampling_on_the_ppca_oracle(
    dim, latent, variance, inflation, shift, seed
):
    """E[ELBO] <= E[IS_K] <= log p(x), E[IS_1] = E[ELBO], and the reparameterised ELBO's
    mean is E[ELBO] (each up to 4 standard errors of the Monte Carlo noise)."""
    latent = min(latent, dim - 1)
    params, x = _ppca(seed, dim, latent, variance)
    vae = oracle_vae(params, inflation, shift)
    exact = ppca_log_likelihood(x, params)
    q_mean, q_var = vae.encoder.q(x)
    target = expected_elbo(x, params, q_mean, q_var)
    assert (target <= exact + 1e-6).all()
    torch.manual_seed(seed)
    with torch.no_grad():
        elbo = vae.elbo(x, num_samples=200).elbo.double()
        estimates = {k: log_marginal_likelihood(vae, x, k).double() for k in (1, 10, 1000)}
    mean, sem = _mean_and_sem(elbo - target)
    assert abs(mean) <= 4 * sem + 1e-4
    mean, sem = _mean_and_sem(estimates[1] - target)
    assert abs(mean) <= 4 * sem + 1e-4
    for k, estimate in estimates.items():
        above_elbo, sem_elbo = _mean_and_sem(estimate - target)
        below_exact, sem_exact = _mean_and_sem(exact - estimate)
        assert above_elbo >= -4 * sem_elbo - 1e-4, k
        assert below_exact >= -4 * sem_exact - 1e-4, k
    # More samples, a tighter bound: K = 1000 is at least as close as K = 1 to log p(x).
    assert (exact - estimates[1000]).mean() <= (exact - estimates[1]).mean() + 1e-4


@FAST
@given(
    values=st.lists(
        st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), min_size=1, max_size=300
    )
)
def test_mean_and_standard_error_agree_with_the_statistics_module(values):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. the std of a single value: no s.e., no warning
        result = mean_and_sem(torch.tensor(values, dtype=torch.float64))
    assert math.isclose(result["mean"], statistics.fmean(values), rel_tol=1e-9, abs_tol=1e-9)
    if len(values) == 1:
        assert math.isnan(result["sem"])
    else:
        sem = statistics.stdev(values) / math.sqrt(len(values))
        assert math.isclose(result["sem"], sem, rel_tol=1e-9, abs_tol=1e-9)
