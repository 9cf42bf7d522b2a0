"""The LightningModule's settings reach the model it builds, and bad ones are refused."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import OmegaConf

from vae_lightning.models import VAE, Elbo
from vae_lightning.models.decoders import LIKELIHOODS
from vae_lightning.models.lit_vae import plain
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
    assert str(err.value) == (
        f"the decoder could not be built: ValueError: unknown likelihood 'poisson'; expected one "
        f"of {LIKELIHOODS}"
    )


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
    assert plain(config) == {"lr": 0.1, "base": 0.1, "betas": [0.9, 0.999]}
    assert plain({"lr": 0.1}) == {"lr": 0.1}


def _save_and_resume_the_epoch_sums(rank: int, folder: Path) -> None:
    """One of two gloo processes: update the train sums, save as Lightning does (every rank
    runs the hook, rank 0's dict is the file), load that file on each rank, then go on with
    the epoch in both the resumed module and the one never stopped, and compare."""
    init = f"file://{folder / 'rendezvous'}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        saving, resuming = (VAE([1, 4, 4], latent_dim=2, hidden_dims=[8]) for _ in range(2))
        for model in (saving, resuming):
            model._trainer = SimpleNamespace(strategy=DDPStrategy(), global_rank=rank)
        points = 3 + 2 * rank  # the processes hold different sums and counts
        recon = torch.arange(points, dtype=torch.float32) + 10.0 * rank
        saving.mean_elbo["train_elbo"].update(Elbo(recon=recon, kl=recon / 4))
        checkpoint = {"state_dict": saving.state_dict()}
        saving.on_save_checkpoint(checkpoint)
        file = [checkpoint]  # rank 0's dict reaches every rank, as the file it writes would
        dist.broadcast_object_list(file, src=0)
        resuming.on_load_checkpoint(file[0])
        resuming.load_state_dict(file[0]["state_dict"])
        saved = {k: v.item() for k, v in saving.mean_elbo["train_elbo"].compute().items()}
        later = torch.full((2,), 100.0 + rank)  # the rest of the epoch, seen by both modules
        for model in (saving, resuming):
            model.mean_elbo["train_elbo"].update(Elbo(recon=later, kl=later / 4))
        count = resuming.mean_elbo["train_elbo"].count.clone()
        dist.all_reduce(count)
        result = {
            "saved": saved,
            "never_stopped": saving.mean_elbo["train_elbo"].compute()["elbo"].item(),
            "resumed": resuming.mean_elbo["train_elbo"].compute()["elbo"].item(),
            "points": count.item(),
        }
        (folder / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric MeanElbo")
def test_a_ddp_checkpoint_resumes_the_epoch_sums_of_all_processes(tmp_path):
    """Saved mid-epoch under DDP and resumed, the epoch means are those of every process's
    points: the file holds the sums over processes, which only rank 0 restores."""
    torch.multiprocessing.spawn(_save_and_resume_the_epoch_sums, args=(tmp_path,), nprocs=2)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    recon = [*range(3), *(10.0 + i for i in range(5))]  # both processes' points when saved
    after = [*recon, 100.0, 100.0, 101.0, 101.0]
    for result in results:
        assert result["saved"]["elbo"] == pytest.approx(-sum(recon) / 8 * 1.25)  # kl = recon/4
        assert result["points"] == 12  # 8 saved over both processes, 2 more on each
        assert result["resumed"] == pytest.approx(-sum(after) / 12 * 1.25)
        assert result["resumed"] == pytest.approx(result["never_stopped"])


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_resumes_the_saved_epoch_sums(rank):
    """The saved sums are those of all processes: rank 0 restores them, the others start at
    zero; the weights load on every rank."""
    saved = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8])
    recon = torch.tensor([1.0, 2.0, 4.0])
    saved.mean_elbo["train_elbo"].update(Elbo(recon=recon, kl=recon / 2))
    checkpoint = {"state_dict": saved.state_dict()}
    resumed = VAE([1, 4, 4], latent_dim=2, hidden_dims=[8])
    resumed._trainer = SimpleNamespace(global_rank=rank)
    resumed.on_load_checkpoint(checkpoint)
    resumed.load_state_dict(checkpoint["state_dict"])
    metric = resumed.mean_elbo["train_elbo"]
    if rank == 0:
        assert metric.count.item() == 3 and metric.sums.tolist() == [7.0, 3.5]
    else:
        assert metric.count.item() == 0 and metric.sums.tolist() == [0.0, 0.0]
    assert torch.equal(resumed.vae.encoder.mu.weight, saved.vae.encoder.mu.weight)
