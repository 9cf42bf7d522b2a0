"""Binarisation x ~ Bernoulli(p) of grey levels p: unbiased draws, and fixed evaluation draws
that follow `data.split_seed` (and only it)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_data import mnist

DELTA = 1e-6


class Training:
    """What on_after_batch_transfer reads of the trainer: it draws only while training."""

    training = True


def _within_bernstein_bound(draws: torch.Tensor, p: torch.Tensor) -> bool:
    """|mean of n independent Bernoulli(p_i) draws - mean p| <= t, the Bernstein bound that
    fails with probability at most DELTA: t = sqrt(2 v log(2/DELTA) / n) + 2 log(2/DELTA) / (3n),
    v = mean p (1 - p). It shrinks as 1 / sqrt(n)."""
    p = p.double().expand_as(draws)
    n, log_term = p.numel(), math.log(2 / DELTA)
    variance = p.mul(1 - p).mean()
    bound = (2 * variance * log_term / n).sqrt() + 2 * log_term / (3 * n)
    return abs(draws.double().mean() - p.mean()).item() <= bound.item()


@pytest.fixture(scope="module")
def dynamic(tiny_data, tmp_path_factory):
    dm = mnist(tiny_data, tmp_path_factory.mktemp("cache"), binarize="dynamic")
    dm.setup()
    dm.trainer = Training()
    return dm


def test_dynamic_draws_preserve_the_mean_grey_level(dynamic):
    """1.6 M draws: the bound is about 0.001; a draw of p = 0.9 x grey level is off by 0.016."""
    torch.manual_seed(0)
    batch = dynamic.splits["train"][:50]
    draws = torch.stack([dynamic.on_after_batch_transfer(batch, 0) for _ in range(40)])
    assert ((draws == 0) | (draws == 1)).all()
    assert _within_bernstein_bound(draws, batch)


@pytest.mark.parametrize("split", ["val", "test"])
def test_fixed_evaluation_draws_preserve_the_mean_grey_level(tiny_data, tmp_path, split):
    grey = mnist(tiny_data, tmp_path, binarize="none")
    binary = mnist(tiny_data, tmp_path, binarize="dynamic")
    grey.setup(), binary.setup()
    assert _within_bernstein_bound(binary.splits[split], grey.splits[split])


def test_fixed_evaluation_draws_follow_split_seed_only(tiny_data, tmp_path):
    """The official test images are the same for every split_seed; their fixed binary draw
    is not, and a different training `seed` leaves it unchanged."""
    draws = {}
    for name, options in {
        "a": {"split_seed": 0},
        "a_again": {"split_seed": 0, "seed": 7},
        "b": {"split_seed": 1},
    }.items():
        for binarize in ("dynamic", "static"):
            dm = mnist(tiny_data, tmp_path, binarize=binarize, **options)
            dm.setup()
            draws[name, binarize] = dm.splits["test"]
    for binarize in ("dynamic", "static"):
        assert torch.equal(draws["a", binarize], draws["a_again", binarize])
        assert not torch.equal(draws["a", binarize], draws["b", binarize])
    # Static training data are one fixed draw too, also set by split_seed.
    static = [mnist(tiny_data, tmp_path, binarize="static", split_seed=s) for s in (0, 0, 1)]
    for dm in static:
        dm.setup()
    assert torch.equal(static[0].splits["train"], static[1].splits["train"])
    assert not torch.equal(static[0].splits["train"], static[2].splits["train"])


def test_fixed_draws_are_seeded_by_split_seed_and_the_order_of_the_splits(tiny_data, tmp_path):
    """Split i (train 0, val 1, test 2) is drawn with seed 10 * split_seed + i: the binary test
    images a committed record was measured on are drawn again the same."""
    grey = mnist(tiny_data, tmp_path, binarize="none", split_seed=3)  # the same split
    static = mnist(tiny_data, tmp_path, binarize="static", split_seed=3)
    grey.setup()
    static.setup()
    assert list(static.splits) == ["train", "val", "test"]
    for index, (split, images) in enumerate(grey.splits.items()):
        generator = torch.Generator().manual_seed(30 + index)
        assert torch.equal(static.splits[split], torch.bernoulli(images, generator=generator))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    num_points=st.integers(1, 20_000),
    scale=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_binarisation_is_unbiased_with_a_tolerance_shrinking_with_n(
    dynamic, num_points, scale, seed
):
    """For any grey levels and any number n of pixels, the draw's mean is within the
    Bernstein bound of the grey levels' mean."""
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(num_points, generator=generator) * scale
    torch.manual_seed(seed + 1)  # not `seed`: the draws would reuse p's uniforms
    draws = dynamic.on_after_batch_transfer(p, 0)
    assert draws.shape == p.shape and ((draws == 0) | (draws == 1)).all()
    assert _within_bernstein_bound(draws, p)


class Evaluating:
    training = False


@pytest.mark.parametrize(
    ("binarize", "trainer"),
    [("none", Training()), ("static", Training()), ("dynamic", Evaluating()), ("dynamic", None)],
)
def test_batches_are_drawn_only_by_dynamic_binarisation_in_training(
    tiny_data, tmp_path, binarize, trainer
):
    dm = mnist(tiny_data, tmp_path, binarize=binarize)
    dm.setup()
    dm.trainer = trainer
    grey = torch.rand(4, 1, 28, 28)
    assert dm.on_after_batch_transfer(grey, 0) is grey
