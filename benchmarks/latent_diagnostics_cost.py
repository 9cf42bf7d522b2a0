"""What the latent diagnostics add to a validation epoch of the paper's MNIST model.

Kingma & Welling's MNIST network (784-500-latent, tanh, Bernoulli decoder; experiment=aevb_mnist)
is validated by Lightning's `Trainer.validate` on 10,000 binary 28 x 28 images in batches of
1,000 (MNIST's validation split and eval_batch_size), once as trained (the diagnostics: the
posteriors gathered, active units, KL per dimension, the mutual information over 1,000 points,
and their logging) and once with the diagnostics left out, alternately, `--repeats` times each.
Prints the median seconds of each and the relative cost of the diagnostics, per latent size.

    python benchmarks/latent_diagnostics_cost.py --repeats 15
"""

import argparse
import statistics
import time

import lightning as L
import torch
from torch import nn

from vae_lightning.models.lit_vae import VAE


class NoDiagnostics(nn.Module):
    """Stands in for LatentDiagnostics: gathers nothing, computes nothing."""

    def update(self, mu, logvar) -> None:
        pass

    def compute(self) -> dict:
        return {"active_units": 0, "mutual_info": 0.0, "marginal_kl": 0.0, "kl_per_dim": [1.0]}

    def reset(self) -> None:
        pass


class Images(L.LightningDataModule):
    def __init__(self, images: torch.Tensor, batch_size: int) -> None:
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.images, batch_size=self.batch_size)


def seconds_per_epoch(model: VAE, data: Images) -> float:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.validate(model, datamodule=data, verbose=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    images = torch.bernoulli(torch.rand(args.points, 1, 28, 28))
    data = Images(images, batch_size=1000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.points} images")
    print(f"{'latent':>6} {'with (s)':>9} {'without (s)':>11} {'added':>7}")
    for latent in (20, 200):
        torch.manual_seed(0)
        model = VAE(image_shape=[1, 28, 28], latent_dim=latent, hidden_dims=[500])
        bare = VAE(image_shape=[1, 28, 28], latent_dim=latent, hidden_dims=[500])
        bare.latent = nn.ModuleDict({"val": NoDiagnostics(), "test": NoDiagnostics()})
        times = {"with": [], "without": []}
        for repeat in range(args.repeats + 1):
            order = [("with", model), ("without", bare)]
            for name, module in order if repeat % 2 else order[::-1]:
                seconds = seconds_per_epoch(module, data)
                if repeat:  # the first round warms up
                    times[name].append(seconds)
        with_, without = (statistics.median(times[k]) for k in ("with", "without"))
        print(f"{latent:>6} {with_:9.4f} {without:11.4f} {with_ / without - 1:7.1%}")


if __name__ == "__main__":
    main()
