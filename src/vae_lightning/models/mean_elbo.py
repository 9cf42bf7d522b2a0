"""The mean ELBO and its two terms over an epoch's data points, as one torchmetrics Metric."""

import torch
from torchmetrics import Metric

from vae_lightning.models.elbo import Elbo


class MeanElbo(Metric):
    """Running means of ``recon`` and ``kl`` over data points, and ``elbo = -(recon + kl)``.

    Sums and counts are float64 tensors on the module's device, summed over processes under
    DDP, so the means are exact over all data points of all processes. `update` is one
    device-side accumulation per batch (no host synchronisation); NaNs are kept, so they show.
    The running sums are saved in checkpoints, so a run resumed mid-epoch reports the same
    epoch means as one that never stopped (checkpoints without them load too).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state(
            "sums", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum", persistent=True
        )
        self.add_state(
            "count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum", persistent=True
        )

    def update(self, terms: Elbo) -> None:
        self.sums += torch.stack([terms.recon.detach(), terms.kl.detach()], dim=-1).sum(0)
        self.count += terms.recon.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        recon, kl = (self.sums / self.count).float()
        return {"elbo": -(recon + kl), "recon": recon, "kl": kl}
