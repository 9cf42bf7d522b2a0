"""Published test log-likelihoods, and the training time of the record runs that chase them.

A record run is a record whose Hydra overrides name an experiment in ``PUBLISHED``; the report
sets its importance-sampled test log-likelihood (nats per data point, higher is better) beside
the published value, and draws its validation ELBO against hours of training steps
(`training_hours`: validation excluded, summed over the epochs of every process that resumed
the run).
"""

import csv
from pathlib import Path

from omegaconf import OmegaConf

# experiment -> (source, published test log p(x) in nats: MNIST dynamically binarised,
# importance sampling with K = 5000 over the whole test set).
PUBLISHED = {
    "burda_vae": ("Burda et al. (2016), Table 1, VAE, k = 1", -86.76),
    "burda_vae_fast": ("Burda et al. (2016), Table 1, VAE, k = 1", -86.76),
    "burda_vae_fast_warmup": ("Burda et al. (2016), Table 1, VAE, k = 1", -86.76),
    "burda_iwae": ("Burda et al. (2016), Table 1, IWAE, k = 50", -84.78),
}


def overrides(folder: Path) -> list[str]:
    """The command line's overrides of a record (overrides.yaml) or run folder (.hydra/)."""
    for path in (folder / "overrides.yaml", folder / ".hydra" / "overrides.yaml"):
        if path.is_file():
            return [str(item) for item in OmegaConf.load(path)]
    return []


def experiment(folder: Path) -> str | None:
    """The `experiment=` override of a record or run folder."""
    chosen = [o.split("=", 1)[1] for o in overrides(folder) if o.startswith("experiment=")]
    return chosen[-1] if chosen else None


def training_hours(metrics_csv: Path, batch_size: int) -> list[tuple[float, int]]:
    """[(hours of training steps so far, step)] at each epoch end: each epoch's samples over
    its `train/samples_per_sec`, summed (an epoch logged twice by a resume counts once)."""
    rates: dict[int, tuple[int, float]] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("train/samples_per_sec"):
                rates[int(row["epoch"])] = (int(row["step"]), float(row["train/samples_per_sec"]))
    hours, seconds, previous = [], 0.0, -1
    for _, (step, rate) in sorted(rates.items()):
        seconds += (step - previous) * batch_size / rate
        hours.append((seconds / 3600, step))
        previous = step
    return hours
