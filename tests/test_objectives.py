"""The training objectives: the ELBO, the IWAE bound L_k, KL weight and warm-up."""

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import lightning
import pytest
import torch
from composing import compose_run
from conftest import tiny_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_ppca import D, L, ppca_vae
from torch import Tensor
from torch import distributions as dist

from vae_lightning.config import apply_dataset_defaults
from vae_lightning.errors import ConfigError
from vae_lightning.evaluation.checkpoint import load_model
from vae_lightning.models import VAE, VariationalAutoencoder
from vae_lightning.models.lit_vae import EVAL_SEEDS
from vae_lightning.models.objectives import (
    elbo_objective,
    iwae_objective,
    kl_weight_at,
    log_weights,
)
from vae_lightning.models.ppca import PPCAParameters, ppca_log_likelihood
from vae_lightning.tracking.csv_logger import CSVLogger
from vae_lightning.train import train


def reference_log_terms(vae: VariationalAutoencoder, x: Tensor, eps: Tensor) -> tuple[Tensor, ...]:
    """(log p(x|z), log p(z) - log q(z|x)) of a Bernoulli VAE by torch.distributions."""
    mu, logvar = vae.encoder(x)
    sigma = torch.exp(0.5 * logvar)
    z = mu + sigma * eps
    log_px = dist.Independent(dist.Bernoulli(logits=vae.decoder(z)), 1).log_prob(x.flatten(1))
    log_pz = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = dist.Normal(mu, sigma).log_prob(z).sum(-1)
    return log_px, log_pz - log_qz


@pytest.fixture
def bernoulli_vae() -> tuple[VariationalAutoencoder, Tensor]:
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 6, 6), 3, [16], "tanh", "bernoulli")
    return vae, torch.bernoulli(torch.full((8, 1, 6, 6), 0.3))


def test_log_weights_and_iwae_terms_equal_torch_distributions(bernoulli_vae):
    vae, x = bernoulli_vae
    torch.manual_seed(1)
    result = iwae_objective(vae, x, num_samples=4, kl_weight=0.3)
    torch.manual_seed(1)
    eps = torch.randn(4, len(x), 3)  # the draws iwae_objective made
    log_px, ratio = reference_log_terms(vae, x, eps)
    mu, logvar = vae.encoder(x)
    torch.testing.assert_close(log_weights(vae.decoder, x, mu, logvar, eps), log_px + ratio)
    torch.testing.assert_close(result.bound, torch.logsumexp(log_px + ratio, 0) - math.log(4))
    warmed = torch.logsumexp(log_px + 0.3 * ratio, 0) - math.log(4)
    torch.testing.assert_close(result.loss, -warmed.mean())
    # The ELBO's terms come from the same draws: elbo = mean of the log-weights <= L_k.
    torch.testing.assert_close(result.terms.recon, -log_px.mean(0))
    torch.testing.assert_close(result.terms.elbo, (log_px + ratio).mean(0))
    assert (result.terms.elbo <= result.bound).all()


def test_iwae_with_one_sample_is_the_elbo_with_the_same_noise(bernoulli_vae):
    vae, x = bernoulli_vae
    torch.manual_seed(2)
    iwae = iwae_objective(vae, x, num_samples=1)
    torch.manual_seed(2)
    elbo = elbo_objective(vae, x, num_samples=1)
    # L_1 = log w_1, the single-sample ELBO; same noise, same reconstruction term.
    torch.testing.assert_close(iwae.bound, iwae.terms.elbo)
    torch.testing.assert_close(iwae.terms.recon, elbo.terms.recon)
    torch.testing.assert_close(iwae.loss, -iwae.bound.mean())
    # Its Monte Carlo KL, log q - log p at the draw, averages to the closed form.
    torch.manual_seed(3)
    many = iwae_objective(vae, x, num_samples=20_000)
    torch.testing.assert_close(many.terms.kl, elbo.terms.kl, atol=0.02, rtol=0)


def test_elbo_objective_is_the_unchanged_elbo_loss_and_weights_only_the_kl(bernoulli_vae):
    vae, x = bernoulli_vae
    torch.manual_seed(4)
    plain = vae.elbo(x, num_samples=3)
    torch.manual_seed(4)
    result = elbo_objective(vae, x, num_samples=3)
    assert torch.equal(result.loss, plain.loss) and result.bound is None
    torch.manual_seed(4)
    weighted = elbo_objective(vae, x, num_samples=3, kl_weight=0.25)
    torch.testing.assert_close(weighted.loss, (plain.recon + 0.25 * plain.kl).mean())
    assert torch.equal(weighted.terms.elbo, plain.elbo)  # the reported ELBO is unweighted


def test_iwae_terms_are_float32_under_bf16_autocast():
    model = VAE(image_shape=[28, 28], latent_dim=2, hidden_dims=[32], objective="iwae")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = model(torch.rand(4, 28, 28).round())
    assert result.bound.dtype == result.terms.elbo.dtype == result.loss.dtype == torch.float32


@pytest.fixture
def ppca_data() -> tuple[PPCAParameters, Tensor]:
    generator = torch.Generator().manual_seed(5)
    weight, bias = torch.randn(D, L, generator=generator), torch.randn(D, generator=generator)
    params = PPCAParameters(weight, bias, torch.tensor(0.2))
    z, noise = torch.randn(400, L, generator=generator), torch.randn(400, D, generator=generator)
    return params, z @ weight.T + bias + params.variance.sqrt() * noise


def test_iwae_bound_rises_with_k_to_the_exact_ppca_log_likelihood(ppca_data):
    params, x = ppca_data
    vae = ppca_vae(params, inflation=2.0)
    exact = ppca_log_likelihood(x, params).mean().item()
    torch.manual_seed(6)
    with torch.no_grad():
        bounds = {
            k: torch.stack([iwae_objective(vae, x, k).bound.mean() for _ in range(20)])
            for k in (1, 2, 5, 20, 100, 1000)
        }
    gaps = {k: exact - b.mean().item() for k, b in bounds.items()}
    errors = {k: 3 * b.std().item() / math.sqrt(len(b)) for k, b in bounds.items()}
    for small, large in zip(list(gaps)[:-1], list(gaps)[1:], strict=True):
        assert gaps[large] < gaps[small] + errors[small] + errors[large], gaps
    assert gaps[1] > 0.1  # the diagonal, inflated proposal leaves a visible ELBO gap ...
    assert gaps[1] > 10 * abs(gaps[1000])  # ... which L_k closes
    assert abs(gaps[1000]) < 0.01
    assert all(g > -errors[k] for k, g in gaps.items())  # never above log p(x)


@pytest.mark.parametrize(
    ("step", "kl_weight", "warmup_steps", "expected"),
    [
        (0, 1.0, 0, 1.0),
        (500, 0.5, 0, 0.5),
        (0, 1.0, 100, 0.0),
        (25, 1.0, 100, 0.25),
        (100, 1.0, 100, 1.0),
        (10_000, 1.0, 100, 1.0),
        (30, 0.5, 60, 0.25),
        (0, 1.0, 1, 0.0),  # a one-step warm-up still starts at 0
        (1, 1.0, 1, 1.0),
    ],
)
def test_kl_warmup_schedule(step, kl_weight, warmup_steps, expected):
    assert kl_weight_at(step, kl_weight, warmup_steps) == pytest.approx(expected)


def test_kl_weight_defaults_to_the_plain_elbo():
    assert kl_weight_at(0) == kl_weight_at(10**6) == 1.0  # weight 1, no warm-up
    assert kl_weight_at(0, 0.5) == 0.5


@pytest.mark.parametrize(("kl_weight", "warmup_steps", "expected"), [(0.5, 0, 0.5), (0.5, 10, 0.0)])
def test_the_model_trains_its_first_step_with_the_scheduled_kl_weight(
    kl_weight, warmup_steps, expected
):
    model = VAE((1, 4, 4), 2, [8], kl_weight=kl_weight, kl_warmup_steps=warmup_steps)
    assert model.global_step == 0 and model.kl_weight() == pytest.approx(expected)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("kl_weight", [1.0, 0.2])
def test_gradients_reach_encoder_and_decoder(objective, kl_weight):
    torch.manual_seed(0)
    model = VAE((1, 4, 4), 2, [8], objective=objective, num_samples=3, kl_weight=kl_weight)
    model(torch.rand(6, 1, 4, 4).bernoulli(), kl_weight).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def _metrics(run: Path) -> dict[str, list[float]]:
    """Each metric of metrics.csv, in the order its values were logged."""
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows if r.get(key)] for key in rows[0]}


def _val_elbo(vae: VariationalAutoencoder, run: Path) -> float:
    """The validation ELBO of `vae` (weight 1, one draw of z), by torch.distributions: the
    run's validation images in one batch, with the noise the training's validation used."""
    datamodule = instantiate(OmegaConf.load(run / "config.yaml").data)
    datamodule.prepare_data()
    datamodule.setup()
    x = datamodule.splits["val"]
    assert len(x) <= datamodule.eval_batch_size  # one batch: batch_idx 0
    torch.manual_seed(EVAL_SEEDS["val"])
    mu, logvar = vae.encoder(x)
    eps = torch.randn(1, *mu.shape)
    with torch.no_grad():
        log_px, _ = reference_log_terms(vae, x, eps)
        kl = dist.kl_divergence(
            dist.Normal(mu, torch.exp(0.5 * logvar)), dist.Normal(0.0, 1.0)
        ).sum(-1)
    return (log_px.mean(0) - kl).mean().item()


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.objective=iwae", "model.num_samples=3"],
        ["model.kl_weight=0.5", "model.kl_warmup_steps=20"],
    ],
    ids=["iwae", "warmup"],
)
def test_training_with_each_objective_logs_the_true_elbo(overrides, tiny_data, tmp_path):
    """2 epochs of 5 steps, the config composed as `python -m vae_lightning.train` does, in
    this process (so that mutation runs see it)."""
    args = [*tiny_overrides(tiny_data, tmp_path), "test=false", "logger=csv", *overrides]
    train(compose_run(args, tmp_path))
    run = tmp_path / "run"
    metrics = _metrics(run)
    untrained = instantiate(OmegaConf.load(run / "config.yaml").model, image_shape=[1, 28, 28])
    assert metrics["val/elbo"][-1] > _val_elbo(untrained.vae, run) + 10
    model = load_model(run / "checkpoints" / "last.ckpt")
    if "model.objective=iwae" in overrides:
        assert model.hparams.objective == "iwae" and model.hparams.num_samples == 3
        # L_k >= the mean of the same k log-weights, the logged ELBO.
        for split in ("train", "val"):
            bounds, elbos = metrics[f"{split}/iwae_bound"], metrics[f"{split}/elbo"]
            assert len(bounds) == 2 and all(b >= e for b, e in zip(bounds, elbos, strict=True))
        assert metrics["train/kl_weight"] == [1.0, 1.0]
    else:
        assert metrics["train/kl_weight"] == pytest.approx([0.5 * 5 / 20, 0.5 * 10 / 20])
        assert "val/iwae_bound" not in metrics
        # Validated at beta = 0.25, yet the logged val/elbo is the ELBO of weight 1.
        assert metrics["val/elbo"][-1] == pytest.approx(_val_elbo(model.vae, run), abs=1e-3)


def test_checkpoints_without_objective_hyperparameters_load_as_elbo(
    tiny_data, compose_train, tmp_path
):
    args = [*tiny_overrides(tiny_data, tmp_path), "test=false", "trainer.max_epochs=1"]
    args += ["model.objective=iwae", "model.num_samples=2", "model.kl_warmup_steps=7"]
    train(compose_train(args))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["hyper_parameters"]["kl_warmup_steps"] == 7
    for key in ("objective", "kl_weight", "kl_warmup_steps"):
        del checkpoint["hyper_parameters"][key]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = load_model(old)
    assert (model.hparams.objective, model.hparams.kl_weight, model.hparams.kl_warmup_steps) == (
        "elbo",
        1.0,
        0,
    )
    assert torch.equal(model.vae.encoder.mu.weight, load_model(last).vae.encoder.mu.weight)


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("model.objective=vimco", ["model.objective", "elbo, iwae"]),
        ("model.kl_weight=-0.5", ["model.kl_weight", ">= 0"]),
        ("model.kl_warmup_steps=-1", ["model.kl_warmup_steps", "integer >= 0"]),
        ("model.kl_warmup_steps=2.5", ["model.kl_warmup_steps"]),
    ],
)
def test_bad_objective_settings_are_refused(override, names, tiny_data, compose_train, tmp_path):
    with pytest.raises(ConfigError) as raised:
        train(compose_train([*tiny_overrides(tiny_data, tmp_path), override]))
    for name in names:
        assert name in str(raised.value)


def test_burda_experiments_compose_with_the_objectives(compose_train):
    iwae = compose_train(["experiment=burda_iwae"]).model
    assert (iwae.objective, iwae.num_samples, iwae.latent_dim, list(iwae.hidden_dims)) == (
        "iwae",
        50,
        50,
        [200, 200],
    )
    assert compose_train(["experiment=burda_vae"]).model.objective == "elbo"
    fast = compose_train(
        ["experiment=burda_vae_fast", "model.objective=iwae", "model.num_samples=5"]
    ).model
    assert (fast.objective, fast.num_samples, fast.optimizer.lr) == ("iwae", 5, 2.0e-3)


def test_a_training_step_weighs_the_kl_term_by_the_warm_up_schedule():
    model = VAE([1, 6], latent_dim=2, hidden_dims=[8], kl_warmup_steps=8)
    model._trainer = SimpleNamespace(global_step=2, log_every_n_steps=1000)  # no step logged
    x = torch.rand(5, 1, 6).round()
    torch.manual_seed(0)
    loss = model.training_step(x, 0)
    torch.manual_seed(0)
    expected = elbo_objective(model.vae, x, 1, kl_weight=kl_weight_at(2, 1.0, 8)).loss
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    assert kl_weight_at(2, 1.0, 8) == 0.25


def test_step_values_are_logged_when_lightning_writes_them_and_the_bar_shows_the_elbos(
    tiny_data, tmp_path
):
    """self.log is called only on the steps Lightning writes (every log_every_n_steps-th),
    with that step's values; the progress bar shows the step's ELBO and the validation ELBO,
    nothing else."""
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=2", "test=false"]
    cfg = compose_run(overrides, tmp_path)  # the model and data; the Trainer is built here
    apply_dataset_defaults(cfg)
    model = instantiate(cfg.model, image_shape=[1, 28, 28])
    losses = RecordLosses()
    trainer = lightning.Trainer(
        accelerator="cpu", max_epochs=2, log_every_n_steps=3, callbacks=[losses],
        logger=CSVLogger(tmp_path, name="", version=""), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=instantiate(cfg.data))
    assert set(trainer.progress_bar_metrics) == {"train/elbo_step", "val/elbo"}
    with open(tmp_path / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("train/elbo_step")]
    assert [int(row["step"]) for row in rows] == [2, 5, 8]  # steps 3, 6 and 9 of 10
    for row in rows:
        elbo, recon, kl = (float(row[f"train/{t}_step"]) for t in ("elbo", "recon", "kl"))
        assert elbo == pytest.approx(-losses.by_step[int(row["step"])], rel=1e-6)  # KL weight 1
        assert elbo == pytest.approx(-(recon + kl), rel=1e-5)


class RecordLosses(lightning.Callback):
    """The loss of each training step, by the step's index."""

    def __init__(self) -> None:
        self.by_step: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.by_step[trainer.global_step - 1] = outputs["loss"].item()


def test_an_evaluation_batch_draws_the_noise_of_its_index_among_all_processes_batches():
    """Batch b of process r of N is batch b N + r of one process: the same noise, seeded by
    that index, so the ELBO is the same on any number of processes."""
    x = torch.rand(5, 1, 6).round()

    def evaluated(batch_idx: int, trainer=None) -> dict:
        model = VAE([1, 6], latent_dim=2, hidden_dims=[8])
        model._trainer = trainer
        model._eval_step(x, batch_idx, "val")
        return model.mean_elbo["val_elbo"].compute()

    torch.manual_seed(0)
    one_process = evaluated(3)
    torch.manual_seed(0)  # the same weights
    rank_1_of_2 = evaluated(1, SimpleNamespace(global_rank=1, world_size=2))
    assert one_process == rank_1_of_2
    torch.manual_seed(0)
    assert evaluated(2)["elbo"] != one_process["elbo"]  # another batch index, other noise
    torch.manual_seed(0)
    model = VAE([1, 6], latent_dim=2, hidden_dims=[8])
    torch.manual_seed(EVAL_SEEDS["val"] + 3)
    torch.testing.assert_close(one_process["elbo"], model(x).terms.elbo.mean().detach())
