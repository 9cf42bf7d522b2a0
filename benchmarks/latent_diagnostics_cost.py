"""What the latent diagnostics add to a validation epoch of the paper's MNIST model.

Kingma & Welling's MNIST network (784-500-latent, tanh, Bernoulli decoder; experiment=aevb_mnist)
is validated by Lightning's `Trainer.validate` on 10,000 binary 28 x 28 images in batches of
1,000 (MNIST's validation split and eval_batch_size), once as trained (the diagnostics: the
posteriors gathered, active units, KL per dimension, the mutual information with the model's
defaults, and their logging) and once with the diagnostics left out, alternately, `--repeats`
times each. The epoch is timed from its start to the end of validation (its end-of-epoch
hooks and logging included; the Trainer's construction and set-up, which a training run
pays once, not). Prints, per latent size, the median seconds of each, the mean paired
difference (with - without, the two epochs of one repeat) with its standard error, and the
diagnostics' own time inside the epochs with them: the metric's updates and the epoch-end
computation and logging, timed where they run, as a share of the epoch. The paired
difference includes everything; the own time is the steadier figure, since single epochs
here spread by more than the diagnostics cost.

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

    def summary(self) -> dict:
        return {"active_units": 0, "mutual_info": 0.0, "marginal_kl": 0.0, "kl_per_dim": [1.0]}

    def reset(self) -> None:
        pass


class Images(L.LightningDataModule):
    def __init__(self, images: torch.Tensor, batch_size: int) -> None:
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.images, batch_size=self.batch_size)


class EpochTimer(L.Callback):
    """Seconds from the validation epoch's start to the end of validation."""

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


class OwnTime:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, function) -> None:
        self.function, self.seconds = function, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def seconds_per_epoch(model: VAE, data: Images) -> float:
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[timer],
    )  # fmt: skip
    trainer.validate(model, datamodule=data, verbose=False)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    images = torch.bernoulli(torch.rand(args.points, 1, 28, 28))
    data = Images(images, batch_size=1000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.points} images")
    print(
        f"{'latent':>6} {'with (s)':>9} {'without (s)':>11} {'paired diff (ms)':>17} "
        f"{'added':>7} {'own time':>9} {'of epoch':>9} {'updates':>8} {'epoch end':>9}"
    )
    for latent in (20, 200):
        torch.manual_seed(0)
        model = VAE(image_shape=[1, 28, 28], latent_dim=latent, hidden_dims=[500])
        bare = VAE(image_shape=[1, 28, 28], latent_dim=latent, hidden_dims=[500])
        bare.latent = nn.ModuleDict({"val": NoDiagnostics(), "test": NoDiagnostics()})
        update = model.latent["val"].update = OwnTime(model.latent["val"].update)
        epoch_end = model._log_latent_diagnostics = OwnTime(model._log_latent_diagnostics)
        times, own = {"with": [], "without": []}, {"update": [], "epoch end": []}
        for repeat in range(args.repeats + 1):
            order = [("with", model), ("without", bare)]
            for name, module in order if repeat % 2 else order[::-1]:
                update.seconds = epoch_end.seconds = 0.0
                seconds = seconds_per_epoch(module, data)
                if repeat:  # the first round warms up
                    times[name].append(seconds)
                    if name == "with":
                        own["update"].append(update.seconds)
                        own["epoch end"].append(epoch_end.seconds)
        with_, without = (statistics.median(times[k]) for k in ("with", "without"))
        differences = [a - b for a, b in zip(times["with"], times["without"], strict=True)]
        mean = statistics.mean(differences)
        error = statistics.stdev(differences) / len(differences) ** 0.5
        own_time = statistics.median(map(sum, zip(*own.values(), strict=True)))
        parts = [1e3 * statistics.median(seconds) for seconds in own.values()]
        print(
            f"{latent:>6} {with_:9.4f} {without:11.4f} {1e3 * mean:>9.1f} +- {1e3 * error:<4.1f} "
            f"{with_ / without - 1:7.1%} {1e3 * own_time:>6.1f} ms {own_time / with_:9.1%} "
            f"{parts[0]:5.1f} ms {parts[1]:6.1f} ms"
        )


if __name__ == "__main__":
    main()
