"""Latent diagnostics pinned to closed forms: PPCA's exact posterior, a collapsed model, a unit
switched off by hand, the mutual-information estimator on a Gaussian model; and where they
appear (the training log, metrics.csv, eval.json)."""

import csv
import json
import logging
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import run_cli, tiny_overrides

from vae_lightning.models.elbo import gaussian_kl
from vae_lightning.models.latent_diagnostics import (
    LatentDiagnostics,
    kl_per_dimension,
    latent_diagnostics,
    log_aggregate_posterior,
    mutual_information,
)
from vae_lightning.models.lit_vae import VAE


def ppca_posteriors(column_norms: torch.Tensor, variance: float, n: int, seed: int = 0):
    """Data from PPCA with orthogonal columns of norms |w_j| (noise variance s^2), and the
    exact posterior of each point: N(w_j^T x / (|w_j|^2 + s^2), s^2 / (|w_j|^2 + s^2)) per j."""
    generator = torch.Generator().manual_seed(seed)
    latent, features = len(column_norms), len(column_norms) + 3
    directions, _ = torch.linalg.qr(torch.randn(features, latent, generator=generator))
    weight = (directions * column_norms).double()
    z = torch.randn(n, latent, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, features, generator=generator, dtype=torch.float64)
    x = z @ weight.T + math.sqrt(variance) * noise
    shrink = column_norms.double().pow(2) + variance
    mu = x @ weight / shrink
    logvar = torch.log(variance / shrink).expand(n, latent)
    return mu, logvar


def test_the_kl_per_dimension_adds_up_to_the_elbos_kl():
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    torch.testing.assert_close(kl_per_dimension(mu, logvar).sum(1).float(), gaussian_kl(mu, logvar))


def test_ppca_exact_posterior_gives_the_closed_form_activity_kl_and_information():
    """With orthogonal columns, A_j = |w_j|^2 / (|w_j|^2 + s^2), KL_j = -1/2 log(1 - A_j), and
    q(z) = p(z), so I_q = sum_j KL_j and KL(q(z) || p(z)) = 0."""
    norms, variance = torch.tensor([3.0, 1.0, 0.08, 0.0]), 0.25
    mu, logvar = ppca_posteriors(norms, variance, n=20_000)
    result = latent_diagnostics(mu, logvar, threshold=0.01, mutual_info_points=4000)
    activity = norms.double().pow(2) / (norms.double().pow(2) + variance)
    kl = -0.5 * torch.log1p(-activity)
    for name, exact in (("unit_activity", activity), ("kl_per_dim", kl)):
        estimate = torch.tensor(result[name], dtype=torch.float64)
        torch.testing.assert_close(estimate, exact, atol=1e-3, rtol=0.03)
    assert result["active_units"] == 3  # A = 0.973, 0.8, 0.025 and 0, against 0.01
    assert result["mutual_info"] == pytest.approx(kl.sum().item(), abs=0.05)
    assert abs(result["marginal_kl"]) < 0.05
    assert result["kl"] == pytest.approx(sum(result["kl_per_dim"]))


def test_the_mutual_information_is_within_its_bias_and_never_above_log_n():
    """Two latent units carrying 1 nat each: the mixture over N points estimates 2 nats
    within a few hundredths for N = 4000, and never exceeds log N even for tiny N."""
    norm = math.sqrt(0.25 * (math.e**2 - 1))  # 1/2 log(1 + |w|^2 / s^2) = 1 nat per unit
    mu, logvar = ppca_posteriors(torch.tensor([norm, norm]), 0.25, n=4000, seed=1)
    estimate = mutual_information(mu, logvar, torch.Generator().manual_seed(0))
    assert estimate == pytest.approx(2.0, abs=0.05)
    for n in (2, 5, 20):
        tiny = mutual_information(mu[:n], logvar[:n], torch.Generator().manual_seed(0))
        assert tiny <= math.log(n) + 1e-9


def test_scoring_a_subset_of_the_draws_keeps_the_mixture_and_its_ceiling():
    """Rows of the first M points against the mixture of all N: rows=N is the full estimate,
    fewer rows estimate the same 2 nats within their larger noise and never exceed log N."""
    norm = math.sqrt(0.25 * (math.e**2 - 1))
    mu, logvar = ppca_posteriors(torch.tensor([norm, norm]), 0.25, n=1500, seed=1)

    def estimate(rows, seed=0):
        return mutual_information(mu, logvar, torch.Generator().manual_seed(seed), rows)

    assert estimate(1500) == estimate(None)
    subsets = torch.tensor([estimate(150, seed) for seed in range(20)])
    assert subsets.mean().item() == pytest.approx(2.0, abs=0.1)
    assert subsets.std().item() > 0
    assert estimate(3, seed=1) <= math.log(1500) + 1e-9


def test_the_epoch_metric_gathered_batch_by_batch_is_the_whole_splits_diagnostics():
    """Active units and the KL per dimension from the float32 batch sums equal those of all
    the points at once; the mutual information is `mutual_information` of the kept points."""
    mu, logvar = ppca_posteriors(torch.tensor([3.0, 1.0, 0.08, 0.0]), 0.25, n=3000)
    mu, logvar = mu.float() + 0.5, logvar.float()  # a mean away from 0, as trained models have
    metric = LatentDiagnostics(threshold=0.01, mutual_info_points=700, mutual_info_rows=50)
    for rows in torch.arange(3000).split(256):
        metric.update(mu[rows], logvar[rows])
    ours, whole = metric.summary(), latent_diagnostics(mu, logvar, threshold=0.01)
    assert ours["active_units"] == whole["active_units"] == 3
    for name in ("unit_activity", "kl_per_dim"):
        assert ours[name] == pytest.approx(whole[name], rel=1e-5, abs=1e-7), name
    generator = torch.Generator().manual_seed(0)
    assert ours["mutual_info"] == mutual_information(mu[:700], logvar[:700], generator, 50)
    assert ours["mutual_info_points"] == 700


def test_the_aggregate_posterior_is_the_mixture_of_the_posteriors():
    mu, logvar, z = torch.randn(6, 3), torch.randn(6, 3), torch.randn(4, 3)
    components = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    densities = components.log_prob(z[:, None, :].double()).sum(-1)  # (4, 6)
    expected = torch.logsumexp(densities, 1) - math.log(6)
    torch.testing.assert_close(log_aggregate_posterior(z, mu, logvar), expected)


def tiny_model(latent_dim: int = 4) -> VAE:
    torch.manual_seed(0)
    return VAE(image_shape=[1, 28, 28], latent_dim=latent_dim, hidden_dims=[32])


class Images(L.LightningDataModule):
    def __init__(self, n: int = 200) -> None:
        super().__init__()
        self.x = torch.bernoulli(
            torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        )

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.x, batch_size=50)


def validate(model: VAE) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    return trainer.validate(model, datamodule=Images(), verbose=False)[0]


def test_a_collapsed_model_has_no_active_unit_no_information_and_says_so(caplog):
    """An encoder that returns the prior for every x and a decoder that ignores z."""
    model = tiny_model()
    with torch.no_grad():
        for head in (model.vae.encoder.mu, model.vae.encoder.logvar):
            head.weight.zero_()
            head.bias.zero_()
        model.vae.decoder.body[0].weight.zero_()
    with caplog.at_level(logging.WARNING, logger="vae_lightning"):
        metrics = validate(model)
    assert metrics["val/active_units"] == 0
    assert metrics["val/mutual_info"] == pytest.approx(0, abs=1e-9)
    assert metrics["val/kl"] == pytest.approx(0, abs=1e-6)
    [line] = [r.getMessage() for r in caplog.records if "collapse" in r.getMessage()]
    assert line.startswith("Posterior collapse at epoch 0: every latent dimension's")


def test_a_unit_switched_off_by_hand_is_the_one_reported_inactive(caplog):
    model = tiny_model()
    with torch.no_grad():
        model.vae.encoder.mu.weight.mul_(20)  # every unit clearly active ...
        model.vae.encoder.mu.weight[2].zero_()  # ... but unit 2, whose mean no longer moves
    with caplog.at_level(logging.WARNING, logger="vae_lightning"):
        metrics = validate(model)
    assert metrics["val/active_units"] == 3
    mu, logvar = model.vae.encoder(Images().x)
    result = latent_diagnostics(mu.detach(), logvar.detach())
    inactive = [j for j, a in enumerate(result["unit_activity"]) if a <= 0.01]
    assert inactive == [2]
    assert not [r for r in caplog.records if "collapse" in r.getMessage()]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A tiny run of `python -m vae_lightning.train` (latent 2, CSV logger only)."""
    tmp_path = tmp_path_factory.mktemp("latent_run")
    args = [*tiny_overrides(tiny_data, tmp_path), "logger=csv"]
    result = run_cli("vae_lightning.train", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [summary] = (tmp_path / "outputs").rglob("summary.json")
    return summary.parent


def test_training_logs_the_diagnostics_of_every_validation_and_test_epoch(trained):
    merged: dict[str, dict[str, str]] = {}  # one row per step: its values from every line
    with open(trained / "metrics.csv", newline="") as f:
        for line in csv.DictReader(f):
            row = merged.setdefault(line["step"], {})
            row.update({k: v for k, v in line.items() if v != ""})
    rows = list(merged.values())
    for split, epochs in (("val", 2), ("test", 1)):
        logged = [r for r in rows if r.get(f"{split}/active_units")]
        assert len(logged) == epochs
        for row in logged:
            per_dim = [float(row[f"{split}/kl_dim_{j}"]) for j in range(2)]
            assert sum(per_dim) == pytest.approx(float(row[f"{split}/kl"]), rel=1e-5)
            assert 0 <= float(row[f"{split}/active_units"]) <= 2
            information = float(row[f"{split}/mutual_info"])
            # At most log N (50 validation, 100 test points); a Monte Carlo estimate of a
            # nearly untrained model's small information, so about 0, either side.
            assert -0.1 < information <= math.log({"val": 50, "test": 100}[split])
            marginal = float(row[f"{split}/marginal_kl"])
            assert marginal == pytest.approx(float(row[f"{split}/kl"]) - information, abs=1e-4)
    summary = json.loads((trained / "summary.json").read_text())
    assert "test/active_units" in summary["metrics"]


def test_the_evaluation_records_the_diagnostics_of_the_evaluated_points(trained, tmp_path):
    args = [f"ckpt_path={trained}", "num_importance_samples=4", "active_unit_threshold=0.05"]
    result = run_cli("vae_lightning.eval", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [eval_json] = (trained / "eval").glob("*/eval.json")
    latent = json.loads(eval_json.read_text())["latent"]
    assert latent["active_unit_threshold"] == 0.05
    assert latent["active_units"] == sum(a > 0.05 for a in latent["unit_activity"])
    assert latent["mutual_info_points"] == 100 and len(latent["kl_per_dim"]) == 2
    assert latent["mutual_info_bound"] == pytest.approx(math.log(100))
    assert latent["kl"] == pytest.approx(sum(latent["kl_per_dim"]))
    assert "active units" in result.stdout and "mutual information" in result.stdout
