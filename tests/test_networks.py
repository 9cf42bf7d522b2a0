"""The encoder and decoder networks as config groups: the MLPs, the convolutional pair, and a
user's own classes by import path, checked against the protocol before anything is written."""

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from composing import compose_run
from conftest import run_cli, tiny_overrides

from vae_lightning.config import apply_dataset_defaults, check_networks
from vae_lightning.errors import ConfigError
from vae_lightning.evaluation.checkpoint import load_model
from vae_lightning.evaluation.importance_sampling import log_marginal_likelihood
from vae_lightning.models.vae import VariationalAutoencoder
from vae_lightning.train import train

CONV = ["model/encoder=conv", "model/decoder=conv"]
SMALL_CONV = [
    *CONV,
    "model.encoder.channels=[4,8]",
    "model.decoder.channels=[4,8]",
    "model.encoder.hidden_dim=16",
    "model.decoder.hidden_dim=16",
]
ENCODER = {"_target_": "vae_lightning.models.encoders.ConvEncoder", "channels": [4, 8]}
DECODER = {"_target_": "vae_lightning.models.decoders.conv_decoder", "channels": [4, 8]}


def conv_vae(image_shape, likelihood="bernoulli", variance=None) -> VariationalAutoencoder:
    return VariationalAutoencoder(
        image_shape, 3, [8], "tanh", likelihood, variance, encoder=ENCODER, decoder=DECODER
    )


@pytest.mark.parametrize(
    ("image_shape", "likelihood", "variance"),
    [
        ((1, 28, 28), "bernoulli", None),  # MNIST
        ((1, 28, 20), "gaussian", None),  # Frey Face
        ((3, 32, 32), "gaussian", 0.05),  # colour, fixed variance
        ((3, 32, 32), "bernoulli", None),
    ],
)
def test_the_convolutional_pair_gives_the_likelihood_of_its_distribution(
    image_shape, likelihood, variance
):
    """log p(x|z) of the conv decoders equals torch's log_prob of the distribution they give,
    for one z per image and for K samples of z (K, batch, latent); the means are images."""
    torch.manual_seed(0)
    vae = conv_vae(image_shape, likelihood, variance)
    x = torch.rand(5, *image_shape)
    if likelihood == "bernoulli":
        x = torch.bernoulli(x)
    posterior = vae.encode(x)
    assert posterior.mean.shape == posterior.variance.shape == (5, 3)
    z = posterior.sample((4,))  # (K, batch, latent)
    expected = vae.decode_distribution(z).log_prob(x.flatten(1))
    torch.testing.assert_close(vae.decoder.log_likelihood(x.flatten(1), z), expected)
    assert vae.decode(z[0]).shape == (5, *image_shape)
    assert vae.elbo(x, num_samples=2).elbo.shape == (5,)
    if variance is not None:  # fixed: no log-variance maps
        assert vae.decoder.network.deconv[-1].out_channels == image_shape[0]


def test_conv_sizes_that_do_not_halve_are_refused_naming_the_key(compose_train):
    cfg = compose_train([*CONV, "model.encoder.channels=[8,8,8]"])
    apply_dataset_defaults(cfg)
    with pytest.raises(ConfigError) as err:
        check_networks(cfg.model, (1, 28, 28))
    message = str(err.value)
    assert message.startswith("model.encoder._target_=vae_lightning.models.encoders.ConvEncoder")
    assert "divide by 8; these are 28 x 28" in message


OWN_NETWORKS = '''
"""A user's own networks, outside the package."""
import math
import torch
from torch import nn
from vae_lightning.models.likelihoods import BernoulliLikelihood


class TwoLayerEncoder(nn.Module):
    def __init__(self, image_shape, latent_dim, width=24):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), width), nn.ELU())
        self.heads = nn.Linear(width, 2 * latent_dim)

    def forward(self, x):
        return self.heads(self.body(x)).chunk(2, dim=-1)


class LinearDecoder(BernoulliLikelihood):
    def __init__(self, image_shape, latent_dim):
        super().__init__()
        self.linear = nn.Linear(latent_dim, math.prod(image_shape))

    def forward(self, z):
        return self.linear(z)


class OneHeadEncoder(TwoLayerEncoder):
    def forward(self, x):
        return self.heads(self.body(x))


class NoMeanDecoder(nn.Module):
    def __init__(self, image_shape, latent_dim):
        super().__init__()
        self.linear = nn.Linear(latent_dim, math.prod(image_shape))

    def log_likelihood(self, x, z):
        return -(x - self.linear(z)).pow(2).sum(-1)
'''


@pytest.fixture
def own_networks(tmp_path) -> Path:
    """A folder holding my_networks.py, to put on PYTHONPATH."""
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "my_networks.py").write_text(textwrap.dedent(OWN_NETWORKS))
    return folder


def test_own_networks_train_in_ddp_with_bf16_and_evaluate(tiny_data, tmp_path, own_networks):
    """A user's encoder and decoder, by import path, through the real entry points: the IWAE
    objective on two DDP processes in bf16-mixed, then the evaluation's IS estimate, figures
    and latent diagnostics."""
    args = [
        *tiny_overrides(tiny_data, tmp_path),
        "model.encoder._target_=my_networks.TwoLayerEncoder",
        "+model.encoder.width=16",
        "model.decoder._target_=my_networks.LinearDecoder",
        "model.objective=iwae",
        "model.num_samples=3",
        "trainer=ddp_cpu",
        "trainer.precision=bf16-mixed",
        "data.eval_batch_size=25",
        "logger=csv",
    ]
    pythonpath = {"PYTHONPATH": str(own_networks)}
    result = run_cli("vae_lightning.train", args, cwd=tmp_path, **pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TwoLayerEncoder + LinearDecoder" in result.stdout + result.stderr
    [summary] = (tmp_path / "outputs").rglob("summary.json")
    metrics = json.loads(summary.read_text())["metrics"]
    assert math.isfinite(metrics["test/iwae_bound"]) and metrics["test/elbo"] < 0
    run = summary.parent
    evaluation = ["num_importance_samples=20", "chunk_size=10", f"ckpt_path={run}"]
    result = run_cli("vae_lightning.eval", evaluation, cwd=tmp_path, **pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    [record] = (run / "eval").rglob("eval.json")
    record = json.loads(record.read_text())
    assert record["metrics"]["log_likelihood_is"]["mean"] >= record["metrics"]["elbo"]["mean"]
    assert {"samples.png", "reconstructions.png", "manifold.png"} <= set(record["figures"])
    assert len(record["latent"]["kl_per_dim"]) == 2


BROKEN = [
    (
        "encoder",
        "my_networks.OneHeadEncoder",
        "model.encoder._target_=my_networks.OneHeadEncoder: the encoder must return (mu, logvar), "
        "each of shape (batch, 2); for a batch of 2 it returned a tensor of shape (2, 4).",
    ),
    (
        "decoder",
        "my_networks.NoMeanDecoder",
        "model.decoder._target_=my_networks.NoMeanDecoder: the decoder has no method mean(...).",
    ),
    (
        "decoder",
        "my_networks.Missing",
        "model.decoder._target_=my_networks.Missing: the decoder target 'my_networks.Missing' "
        "cannot be imported",
    ),
    (
        "encoder",
        "torch.nn.Identity",
        "model.encoder._target_=torch.nn.Identity: the encoder must return (mu, logvar)",
    ),
]


@pytest.mark.parametrize(("role", "target", "said"), BROKEN)
def test_networks_that_break_the_protocol_are_refused_naming_the_key(
    compose_train, own_networks, monkeypatch, role, target, said
):
    monkeypatch.syspath_prepend(str(own_networks))
    cfg = compose_train(["model.hidden_dims=[8]", "model.latent_dim=2"])
    apply_dataset_defaults(cfg)
    cfg.model[role] = {"_target_": target}
    with pytest.raises(ConfigError) as err:
        check_networks(cfg.model, (1, 28, 28))
    assert said in str(err.value)
    assert str(err.value).endswith('See the README\'s "Your own networks".')


def test_the_train_command_refuses_a_broken_network_before_anything_is_written(
    tiny_data, tmp_path, own_networks
):
    """Exit 2 and one paragraph, no traceback, no run folder (a new interpreter: the check
    runs the networks, which a fork of this process could deadlock on)."""
    run = tmp_path / "run"
    args = [
        *tiny_overrides(tiny_data, tmp_path),
        f"model.encoder._target_={BROKEN[0][1]}",
        f"hydra.run.dir={run}",
    ]
    result = run_cli("vae_lightning.train", args, tmp_path, PYTHONPATH=str(own_networks))
    assert result.returncode == 2, result.stderr[-2000:]
    assert BROKEN[0][2] in result.stderr and "Traceback" not in result.stderr
    assert not run.exists()


def test_a_conv_vae_trains_and_its_checkpoint_loads_for_evaluation(tiny_data, tmp_path):
    cfg = compose_run([*tiny_overrides(tiny_data, tmp_path), *SMALL_CONV, "logger=csv"], tmp_path)
    metrics = train(cfg)
    assert math.isfinite(metrics["test/elbo"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    module = load_model(Path(summary["best_checkpoint"]))
    assert module.hparams.encoder["_target_"].endswith("ConvEncoder")
    # The evaluation functions take the Lightning module and the bare model alike.
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    torch.manual_seed(0)
    from_module = log_marginal_likelihood(module, x, 10)
    torch.manual_seed(0)
    torch.testing.assert_close(log_marginal_likelihood(module.vae, x, 10), from_module)


def test_the_start_up_check_leaves_the_seeded_generators_as_they_were(compose_train):
    """The check builds the networks on a fork of torch's generators: a run's model is drawn
    from its seed as it was before the check existed (the committed records retrain alike)."""
    cfg = compose_train([*CONV])
    apply_dataset_defaults(cfg)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    check_networks(cfg.model, (1, 28, 28))
    assert torch.equal(torch.get_rng_state(), state)
