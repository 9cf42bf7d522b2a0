"""Evaluation pinned to exact numbers: PPCA, whose log p(x) is known in closed form.

A PPCA checkpoint is written whose decoder is the closed-form maximum-likelihood fit of the
tiny training images (rotated, so the posterior is correlated) and whose MLP encoder computes
the exact posterior mean (ReLU units: relu(u) - relu(-u) = u), shifted by SHIFT posterior
standard deviations, with INFLATION times the posterior variances. Then, per data point,

    log p(x)                     exact (Woodbury),
    E[ELBO] = log p(x) - KL(q || p(z|x))   exact too, about 4 nats lower here,

and the importance-sampled estimate must go from E[ELBO] at K = 1 to log p(x) at large K.
Everything is checked against eval.json as `python -m vae_lightning.eval` writes it.
"""

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
from composing import compose_run
from conftest import run_cli, tiny_overrides
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from ppca_oracle import expected_elbo, posterior

from vae_lightning.config import config_dir
from vae_lightning.eval import evaluate
from vae_lightning.models.ppca import PPCAParameters, fit_ppca, ppca_log_likelihood
from vae_lightning.train import train

LATENT = 2
ANGLE = 0.3  # rotation of W: p(x) unchanged, p(z|x) correlated, q(z|x) diagonal
INFLATION = 4.0  # q's variances / the exact posterior's (an over-dispersed proposal)
SHIFT = 1.5  # q's mean - the posterior mean, in posterior standard deviations
K_LARGE = 5000


class Oracle:
    """The PPCA checkpoint's model and the exact quantities it implies (float64)."""

    def __init__(self, train_x: torch.Tensor) -> None:
        fit = fit_ppca(train_x, LATENT)
        c, s = math.cos(ANGLE), math.sin(ANGLE)
        rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        # Rounded to the float32 the checkpoint stores, so both sides use the same model.
        self.params = PPCAParameters(
            *(t.float().double() for t in (fit.weight @ rotation, fit.bias, fit.variance))
        )
        self.projection, _, cov = posterior(train_x[:1], self.params)
        self.shift = SHIFT * cov.diagonal().sqrt()
        self.q_var = INFLATION * cov.diagonal()

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return ppca_log_likelihood(x, self.params)

    def expected_elbo(self, x: torch.Tensor) -> torch.Tensor:
        _, means, _ = posterior(x, self.params)
        return expected_elbo(x, self.params, means + self.shift, self.q_var.expand_as(means))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The VAE's weights: encoder Linear(D, 4) -> ReLU -> heads, linear decoder."""
        weight, bias, variance = self.params
        p, offset = self.projection, self.shift - self.projection @ bias
        eye = torch.eye(LATENT)
        weights = {
            "encoder.body.0.weight": torch.cat([p, -p]),
            "encoder.body.0.bias": torch.cat([offset, -offset]),
            "encoder.mu.weight": torch.cat([eye, -eye], dim=1),
            "encoder.mu.bias": torch.zeros(LATENT),
            "encoder.logvar.weight": torch.zeros(LATENT, 2 * LATENT),
            "encoder.logvar.bias": self.q_var.log(),
            "decoder.linear.weight": weight,
            "decoder.linear.bias": bias,
            # s^2 = exp(raw) + min_variance (1e-4): the floor is added back.
            "decoder.raw_log_variance": (variance - 1e-4).log(),
        }
        return {f"vae.{k}": v.float() for k, v in weights.items()}


@pytest.fixture(scope="module")
def ppca_checkpoint(tiny_data, tmp_path_factory):
    """(checkpoint of the oracle inside a real run folder, the Oracle, the test images)."""
    tmp_path = tmp_path_factory.mktemp("ppca_exact")
    overrides = [
        *tiny_overrides(tiny_data, tmp_path),
        "model=ppca",
        "data.binarize=none",
        f"model.latent_dim={LATENT}",
        f"model.hidden_dims=[{2 * LATENT}]",
        "model.activation=relu",
        "trainer.max_epochs=1",
        "test=false",
        "logger=csv",
        "~callbacks.media",
    ]
    cfg = compose_run(overrides, tmp_path)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    datamodule = instantiate(OmegaConf.load(run / "config.yaml").data)
    datamodule.setup("test")
    oracle = Oracle(datamodule.splits["train"])
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    weights = {k for k in checkpoint["state_dict"] if k.startswith("vae.")}  # not epoch sums
    assert weights == set(oracle.state_dict())
    checkpoint["state_dict"].update(oracle.state_dict())
    path = run / "checkpoints" / "oracle.ckpt"
    torch.save(checkpoint, path)
    return path, oracle, datamodule.splits["test"]


def _eval_record(run: Path) -> dict:
    [eval_json] = (run / "eval").rglob("eval.json")
    return json.loads(eval_json.read_text())


def _sem(values: torch.Tensor) -> float:
    return statistics.stdev(values.tolist()) / math.sqrt(len(values))


def test_cli_evaluation_gives_the_exact_log_likelihood(ppca_checkpoint, tmp_path):
    path, oracle, test_x = ppca_checkpoint
    args = [f"ckpt_path={path}", f"num_importance_samples={K_LARGE}", "chunk_size=250"]
    result = run_cli("vae_lightning.eval", args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = _eval_record(path.parents[1])
    metrics = record["metrics"]
    assert record["num_importance_samples"] == K_LARGE
    assert record["num_data_points"] == len(test_x) == 100

    exact = oracle.log_likelihood(test_x)
    expected_elbo = oracle.expected_elbo(test_x)
    assert (exact - expected_elbo).mean() > 3.0  # the proposal is visibly poor
    # The closed form, its standard error std / sqrt(n), computed here independently.
    assert metrics["log_likelihood_exact"]["mean"] == pytest.approx(exact.mean().item(), abs=1e-3)
    assert metrics["log_likelihood_exact"]["sem"] == pytest.approx(_sem(exact), rel=1e-4)
    # The decoder is the closed-form fit (rotated): the evaluation's own fit agrees.
    closed_form = metrics["log_likelihood_ppca_closed_form"]["mean"]
    assert closed_form == pytest.approx(exact.mean().item(), abs=0.05)
    # Importance sampling with K = 5000 reaches log p(x) within 0.05 nats, point by point
    # close enough that its standard error is the exact one's.
    assert metrics["log_likelihood_is"]["mean"] == pytest.approx(exact.mean().item(), abs=0.05)
    assert metrics["log_likelihood_is"]["sem"] == pytest.approx(_sem(exact), rel=0.02)
    # The single-sample ELBO estimates E[ELBO]: s.e. of its noise about 0.5 nats here.
    assert metrics["elbo"]["mean"] == pytest.approx(expected_elbo.mean().item(), abs=2.0)
    elbo, recon, kl = (metrics[k]["mean"] for k in ("elbo", "recon", "kl"))
    assert elbo == pytest.approx(-(recon + kl))


def test_importance_sampling_uses_the_k_it_reports(ppca_checkpoint, tmp_path):
    """K = 1 is the ELBO, about 4 nats below log p(x); K = 100 is within 0.05 of it.

    Measured: K = 1, 10, 100, 5000 fall short of log p(x) by 3.39, 0.38, 0.005, -0.004 nats.
    """
    path, oracle, test_x = ppca_checkpoint
    exact, expected_elbo = oracle.log_likelihood(test_x).mean(), oracle.expected_elbo(test_x).mean()
    results = {}
    for k in (1, 100):
        overrides = [f"ckpt_path={path}", f"num_importance_samples={k}", "chunk_size=50"]
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            record = evaluate(compose("eval", overrides=overrides))
        assert record["num_importance_samples"] == k
        results[k] = record["metrics"]["log_likelihood_is"]["mean"]
    assert results[1] == pytest.approx(expected_elbo.item(), abs=2.0)
    assert exact - results[1] > 2.0
    assert results[100] == pytest.approx(exact.item(), abs=0.05)
