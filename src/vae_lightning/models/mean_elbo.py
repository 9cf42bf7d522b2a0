"""The mean ELBO and its two terms over an epoch's data points, as one torchmetrics Metric."""

import torch
from torch import Tensor
from torchmetrics import Metric

from vae_lightning.models.elbo import Elbo


class MeanElbo(Metric):
    """Running means of ``recon`` and ``kl`` over data points, and ``elbo = -(recon + kl)``;
    with ``bound`` (a name, e.g. 'iwae_bound'), also the mean of the optimised bound.

    Sums and counts are float64 tensors on the module's device, summed over processes under
    DDP, so the means are exact over all data points of all processes. `update` is one
    device-side accumulation per batch (no host synchronisation); NaNs are kept, so they show.
    The running sums are saved in checkpoints, so a run resumed mid-epoch reports the same
    epoch means as one that never stopped (checkpoints without them load too).
    """

    full_state_update = False

    def __init__(self, bound: str | None = None) -> None:
        super().__init__()
        self.bound = bound
        sums = torch.zeros(3 if bound else 2, dtype=torch.float64)
        self.add_state("sums", sums, dist_reduce_fx="sum", persistent=True)
        count = torch.zeros((), dtype=torch.float64)
        self.add_state("count", count, dist_reduce_fx="sum", persistent=True)

    def update(self, terms: Elbo, bound: Tensor | None = None) -> None:
        columns = [terms.recon, terms.kl] + ([bound] if self.bound else [])
        self.sums += torch.stack([c.detach() for c in columns], dim=-1).sum(0)
        self.count += terms.recon.numel()

    def compute(self) -> dict[str, Tensor]:
        recon, kl, *bound = (self.sums / self.count).float()
        means = {"elbo": -(recon + kl), "recon": recon, "kl": kl}
        return means | ({self.bound: bound[0]} if self.bound else {})
