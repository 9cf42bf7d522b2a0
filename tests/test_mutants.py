"""Tests aimed at bugs a mutation run (mutmut, README "Mutation testing") showed no other fast
test would catch: the data loaders' sharding and shuffling, the arguments and the log weights
of importance sampling, the Gaussian decoders' variance floor, mean and broadcasting."""

import math
from types import SimpleNamespace

import pytest
import torch
from test_data import mnist

from vae_lightning.evaluation import log_importance_weights, log_marginal_likelihood
from vae_lightning.models.decoders import GaussianDecoder
from vae_lightning.models.ppca import LinearGaussianDecoder
from vae_lightning.models.vae import VariationalAutoencoder


class Process:
    """What the data module reads of a trainer: this process's rank among world_size, and the
    batches trained in this epoch (for the loader's checkpointed position)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.global_rank, self.world_size = rank, world_size
        self.fit_loop = SimpleNamespace(
            epoch_loop=SimpleNamespace(
                batch_progress=SimpleNamespace(current=SimpleNamespace(processed=0))
            )
        )


@pytest.fixture(scope="module")
def datamodule(tiny_data, tmp_path_factory):
    dm = mnist(tiny_data, tmp_path_factory.mktemp("cache"), binarize="none", eval_batch_size=20)
    dm.setup()
    return dm


def _rows(batches) -> torch.Tensor:
    return torch.cat(list(batches)).flatten(1)


def test_evaluation_loaders_serve_every_point_once_in_order_without_a_trainer(datamodule):
    for split, loader in (("val", datamodule.val_dataloader), ("test", datamodule.test_dataloader)):
        assert torch.equal(_rows(loader()), datamodule.splits[split].flatten(1))


def test_evaluation_loaders_shard_blocks_over_processes(datamodule):
    """Process r of 2 gets the batches r, r + 2, ...: disjoint, together every point."""
    shards = []
    for rank in (0, 1):
        datamodule.trainer = Process(rank, 2)
        shards.append(_rows(datamodule.val_dataloader()))
    datamodule.trainer = None
    val = datamodule.splits["val"].flatten(1)
    assert len(shards[0]) + len(shards[1]) == len(val) == 50
    assert torch.equal(shards[0][:20], val[:20]) and torch.equal(shards[1][:20], val[20:40])
    assert torch.equal(shards[0][20:], val[40:])


def test_training_loader_gives_every_process_as_many_points(datamodule):
    """DDP steps in lockstep: 250 training points give 125 to each of 2 processes, disjoint."""
    shards = []
    for rank in (0, 1):
        datamodule.trainer = Process(rank, 2)
        shards.append(_rows(datamodule.train_dataloader()))
    datamodule.trainer = None
    assert len(shards[0]) == len(shards[1]) == 125
    rows = lambda x: set(map(tuple, x.tolist()))  # noqa: E731
    assert rows(shards[0]).isdisjoint(rows(shards[1]))


def test_training_loader_shuffles_differently_each_epoch(datamodule):
    loader = datamodule.train_dataloader()
    first = _rows(loader)
    loader.sampler.set_epoch(1)
    second = _rows(loader)
    train = datamodule.splits["train"].flatten(1)
    assert len(first) == len(train) and not torch.equal(first, train)
    assert not torch.equal(first, second)
    order = lambda rows: sorted(map(tuple, rows.tolist()))  # noqa: E731
    assert order(first) == order(second) == order(train)  # the same points, reordered


@pytest.fixture
def vae_and_x():
    torch.manual_seed(0)
    return VariationalAutoencoder((1, 6), 2, [8], "tanh", "bernoulli"), torch.rand(5, 1, 6).round()


@pytest.mark.parametrize(("num_samples", "chunk_size"), [(0, 10), (10, 0), (-1, -1)])
def test_importance_sampling_refuses_fewer_than_one_sample_or_chunk(
    vae_and_x, num_samples, chunk_size
):
    vae, x = vae_and_x
    with pytest.raises(ValueError, match=r"num_samples and chunk_size must be >= 1"):
        log_marginal_likelihood(vae, x, num_samples, chunk_size)


def test_log_importance_weights_are_the_draws_of_the_estimate(vae_and_x):
    """log (1/K) sum_k w_k of the K log weights is the estimate made from the same draws."""
    vae, x = vae_and_x
    torch.manual_seed(1)
    weights = log_importance_weights(vae, x, 3)
    torch.manual_seed(1)
    in_one_chunk = log_marginal_likelihood(vae, x, 3, chunk_size=3)
    assert weights.shape == (3, 5)
    torch.testing.assert_close(in_one_chunk, torch.logsumexp(weights, 0) - math.log(3))


def test_log_importance_weights_of_images_are_those_of_their_pixel_rows():
    """Images of several channels (2 x 3 here) are weighed as the rows of their pixels."""
    torch.manual_seed(0)
    vae, images = VariationalAutoencoder((2, 3), 2, [8], "tanh", "bernoulli"), torch.rand(5, 2, 3)
    torch.manual_seed(1)
    of_images = log_importance_weights(vae, images.round(), 4)
    torch.manual_seed(1)
    of_rows = log_importance_weights(vae, images.round().flatten(1), 4)
    assert of_images.shape == (4, 5)
    torch.testing.assert_close(of_images, of_rows)


def test_importance_sampling_in_chunks_of_one_sample(vae_and_x):
    """Chunks of a single sample are allowed; K = 2000 in either way agree to about 0.03."""
    vae, x = vae_and_x
    torch.manual_seed(2)
    in_ones = log_marginal_likelihood(vae, x, 2000, chunk_size=1)
    in_one = log_marginal_likelihood(vae, x, 2000, chunk_size=2000)
    assert in_ones.shape == (5,)
    torch.testing.assert_close(in_ones, in_one, atol=0.1, rtol=0)


@pytest.mark.parametrize("decoder", ["gaussian", "linear_gaussian"])
def test_gaussian_decoders_floor_the_variance_at_1e_4_by_default(decoder):
    """A learned variance far below the floor comes out as the floor, s^2 = 1e-4."""
    if decoder == "gaussian":
        model = GaussianDecoder(2, [8], 6, "tanh")
        torch.nn.init.zeros_(model.logvar.weight)
        torch.nn.init.constant_(model.logvar.bias, -30.0)
        log_variance = model(torch.zeros(3, 2))[1]
    else:
        model = LinearGaussianDecoder(2, 6)
        model.raw_log_variance.data.fill_(-30.0)
        log_variance = model.log_variance()
    torch.testing.assert_close(log_variance.exp(), torch.full_like(log_variance, 1e-4))


def test_gaussian_decoder_mean_is_where_the_likelihood_peaks():
    """E[x|z] is the point of greatest log p(x|z), a grey level in (0, 1)."""
    torch.manual_seed(0)
    model = GaussianDecoder(2, [8], 6, "tanh", variance=0.01)
    z = torch.randn(4, 2)
    mean = model.mean(z)
    assert ((mean > 0) & (mean < 1)).all()
    best = model.log_likelihood(mean, z)
    for shift in (-0.05, 0.05):
        assert (model.log_likelihood(mean + shift, z) < best).all()


def test_linear_gaussian_log_likelihood_broadcasts_over_leading_dimensions():
    """x of shape (1, batch, D) against z (K, batch, L): each of the K draws, as for (batch, D)."""
    torch.manual_seed(0)
    model = LinearGaussianDecoder(2, 6)
    x, z = torch.randn(3, 6), torch.randn(5, 3, 2)
    torch.testing.assert_close(model.log_likelihood(x[None], z), model.log_likelihood(x, z))


def test_the_training_loaders_state_counts_the_batches_the_trainer_trained(datamodule):
    """Lightning fetches a batch ahead; the checkpointed position is the trainer's count of
    batches trained this epoch, not the batches the loader has served."""
    trainer = Process(0, 1)
    datamodule.trainer = trainer
    loader = datamodule.train_dataloader()
    batches = iter(loader)
    next(batches), next(batches)  # served 2, trained 1
    trainer.fit_loop.epoch_loop.batch_progress.current.processed = 1
    assert loader.state_dict() == {"epoch": 0, "batches": 1}
    datamodule.trainer = None
