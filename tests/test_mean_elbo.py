"""MeanElbo: exact epoch means over data points, summed over processes, kept in checkpoints."""

import pytest
import torch

from vae_lightning.models.elbo import Elbo
from vae_lightning.models.mean_elbo import MeanElbo


def batches(*sizes: int) -> list[tuple[Elbo, torch.Tensor]]:
    torch.manual_seed(0)
    return [(Elbo(torch.rand(n) * 100, torch.rand(n) * 10), -torch.rand(n) * 120) for n in sizes]


def test_means_are_over_the_data_points_of_all_batches_with_the_optimised_bound():
    metric = MeanElbo("iwae_bound")
    data = batches(50, 7, 1)
    for terms, bound in data:
        metric.update(terms, bound)
    means = metric.compute()
    recon, kl, bound = (
        torch.cat(column) for column in zip(*[(t.recon, t.kl, b) for t, b in data], strict=True)
    )
    assert set(means) == {"elbo", "recon", "kl", "iwae_bound"}
    assert means["recon"].item() == pytest.approx(recon.mean().item(), rel=1e-6)
    assert means["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-6)
    assert means["elbo"].item() == pytest.approx(-(recon + kl).mean().item(), rel=1e-6)
    assert means["iwae_bound"].item() == pytest.approx(bound.mean().item(), rel=1e-6)
    assert all(value.dtype == torch.float32 and value.shape == () for value in means.values())


def test_without_a_bound_there_are_the_elbo_and_its_two_terms_only():
    metric = MeanElbo()
    terms, bound = batches(3)[0]
    metric.update(terms, bound)  # a bound given to a metric without one is not kept
    assert set(metric.compute()) == {"elbo", "recon", "kl"}
    assert metric.sums.shape == (2,)


def test_sums_are_float64_so_the_mean_of_many_batches_is_exact():
    """In float32, 2**24 + 1 is 2**24: the later batches' terms would be lost from the sum."""
    metric = MeanElbo()
    metric.update(Elbo(torch.tensor([2.0**24]), torch.zeros(1)))
    for _ in range(4):
        metric.update(Elbo(torch.ones(1), torch.zeros(1)))
    assert metric.sums.dtype == metric.count.dtype == torch.float64
    assert metric.compute()["recon"].item() == (2**24 + 4) / 5  # 3355444.0, in float32 too


def test_update_keeps_no_autograd_graph_and_nans_show():
    metric = MeanElbo()
    recon = torch.tensor([1.0, 2.0], requires_grad=True)
    metric.update(Elbo(recon * 2, recon.detach()))
    assert not metric.sums.requires_grad
    metric.update(Elbo(torch.tensor([float("nan")]), torch.zeros(1)))
    assert metric.compute()["recon"].isnan()
    assert metric.count.item() == 3


# Restored sums are not updates in torchmetrics' count: a resumed epoch goes on updating them.
@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric MeanElbo")
def test_the_running_sums_are_saved_and_restored_with_the_module():
    metric = MeanElbo("iwae_bound")
    for terms, bound in batches(4, 6):
        metric.update(terms, bound)
    state = metric.state_dict()
    assert set(state) == {"sums", "count"}
    restored = MeanElbo("iwae_bound")
    restored.load_state_dict(state)
    assert {k: v.item() for k, v in restored.compute().items()} == {
        k: v.item() for k, v in metric.compute().items()
    }
    restored.reset()
    assert restored.count.item() == 0 and not restored.sums.any()


def test_sums_and_counts_of_all_processes_are_added_before_the_means():
    """A gather from two processes, as torchmetrics' DDP sync hands it to the reduction."""
    metrics = [MeanElbo(), MeanElbo()]
    data = batches(5, 11)
    for metric, (terms, _) in zip(metrics, data, strict=True):
        metric.update(terms)
    states = [{"sums": m.sums.clone(), "count": m.count.clone()} for m in metrics]
    gathered = iter([[s["sums"] for s in states], [s["count"] for s in states]])

    metrics[0].sync(
        dist_sync_fn=lambda *_, **__: next(gathered), distributed_available=lambda: True
    )
    assert metrics[0].count.item() == 16
    assert torch.equal(metrics[0].sums, states[0]["sums"] + states[1]["sums"])
