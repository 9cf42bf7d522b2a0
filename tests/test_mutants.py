"""Tests aimed at bugs a mutation run (mutmut, README "Mutation testing") showed no other fast
test would catch: the data loaders' sharding and shuffling, the arguments and the log weights
of importance sampling."""

import math
from types import SimpleNamespace

import pytest
import torch
from test_data import mnist

from vae_lightning.evaluation import log_importance_weights, log_marginal_likelihood
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


def test_importance_sampling_in_chunks_of_one_sample(vae_and_x):
    """Chunks of a single sample are allowed; K = 2000 in either way agree to about 0.03."""
    vae, x = vae_and_x
    torch.manual_seed(2)
    in_ones = log_marginal_likelihood(vae, x, 2000, chunk_size=1)
    in_one = log_marginal_likelihood(vae, x, 2000, chunk_size=2000)
    assert in_ones.shape == (5,)
    torch.testing.assert_close(in_ones, in_one, atol=0.1, rtol=0)
