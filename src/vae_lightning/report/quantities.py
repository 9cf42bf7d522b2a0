"""Quantities of one record, by the names the discussion's placeholders call them.

Each function takes a record and the placeholder's further arguments (strings) and returns a
number in nats (shown to two decimals) or the text to show. ``${mean(mnist_latent20_1e7,
elbo)}`` is ``mean(record, "elbo")``; given a pattern that matches several records, a
placeholder shows their common value and fails if they differ (text.py).
"""

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scipy import stats

from vae_lightning.errors import UserError
from vae_lightning.literature import LITERATURE, PAPER_BANDS, TRAINING_IMAGES
from vae_lightning.report.formats import parse_power, powers_of_ten, setting, with_sem
from vae_lightning.report.frey_split import cut, split_of
from vae_lightning.report.records import Record, points, read_curve, shown, training_hours
from vae_lightning.report.statistics import slope as fitted_slope
from vae_lightning.report.variants import method, networks, optimiser


def eval_value(r: Record, path: str) -> Any:
    """The value of the evaluation's eval.json at a dotted path (list items by position)."""
    value = r.evaluation
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else (value or {}).get(key)
    if value is None:
        raise UserError(f"{r.name}: its eval.json has no {path!r}.")
    return value


def evaluated(r: Record, path: str) -> str:
    """eval_value, a number to three significant digits."""
    value = eval_value(r, path)
    return f"{value:.3g}" if isinstance(value, float) else setting(value)


def kl_above(r: Record, nats: str) -> str:
    """How many latent dimensions carry more than ``nats`` of KL(q(z_i|x) || p(z_i)) each, on
    average over the test images: '14 of 20 dimensions above 0.1 nats'."""
    per_dimension = eval_value(r, "latent.kl_per_dim")
    above = sum(kl > float(nats) for kl in per_dimension)
    return f"{above} of {len(per_dimension)} dimensions above {nats} nats"


def ratio(r: Record, a: str, b: str, power: str = "1") -> float:
    """(a / b)^power of two numbers of eval.json (dotted paths)."""
    return (eval_value(r, a) / eval_value(r, b)) ** int(power)


def coverage_percentiles(r: Record) -> tuple[list[str], list[list[float]]]:
    """The percentile levels of latent_coverage (from its key, mean_percentiles_1_50_99) and
    the latent means' percentiles at them, one row per level."""
    coverage = eval_value(r, "latent_coverage")
    [key] = [k for k in coverage if k.startswith("mean_percentiles_")]
    return key.removeprefix("mean_percentiles_").split("_"), coverage[key]


def percentiles(r: Record, axis: str) -> str:
    """The lowest and highest recorded percentiles of latent coordinate ``axis`` (from 0) of
    the test images' latent means, as '-1.73 (1st percentile) to 4.73 (99th)'."""
    levels, values = coverage_percentiles(r)
    low, high = values[0][int(axis)], values[-1][int(axis)]
    return f"{low:.2f} ({ordinal(levels[0])} percentile) to {high:.2f} ({ordinal(levels[-1])})"


def prior_percentiles(r: Record) -> str:
    """The standard normal's quantiles at the lowest and highest levels of ``percentiles``."""
    levels, _ = coverage_percentiles(r)
    low, high = (stats.norm.ppf(int(level) / 100) for level in (levels[0], levels[-1]))
    return f"{low:.2f} to {high:.2f}"


def ordinal(n: str) -> str:
    """'1' -> '1st', '99' -> '99th'."""
    suffix = {"1": "st", "2": "nd", "3": "rd"}.get(n[-1], "th") if n[-2:-1] != "1" else "th"
    return n + suffix


def checkpoint_epoch(r: Record) -> str:
    """The epoch of the evaluated checkpoint: eval.json's checkpoint_epoch, or for older
    evaluations the epoch in the checkpoint's file name (best-epoch<N>.ckpt)."""
    epoch = r.evaluation.get("checkpoint_epoch")
    if epoch is None and (found := re.search(r"epoch(\d+)", Path(r.evaluation["checkpoint"]).name)):
        epoch = int(found[1])
    if epoch is None:
        raise UserError(f"{r.name}: its evaluation does not say the checkpoint's epoch.")
    return f"{epoch:,}"


def metric(r: Record, name: str) -> str:
    """An evaluation metric's mean over the test images ± its standard error."""
    if (value := r.metric(name)) is None:
        raise UserError(f"{r.name}: its evaluation has no metric {name!r}.")
    return with_sem(value)


def mean(r: Record, name: str) -> float:
    """An evaluation metric's mean over the test images."""
    if (value := r.metric(name)) is None:
        raise UserError(f"{r.name}: its evaluation has no metric {name!r}.")
    return value["mean"]


def rise(r: Record) -> float:
    """IS(K) - IS(K/2): how much the last doubling of the importance samples added."""
    return mean(r, "log_likelihood_is") - mean(r, "log_likelihood_is_half_k")


def logged(r: Record, key: str) -> float:
    """A metric of summary.json as training last logged it, e.g. train/elbo (the mean over
    the last epoch) or val/elbo."""
    return r.summary["metrics"][key]


def gap(r: Record) -> float:
    """Train ELBO of the last epoch minus the test ELBO: the generalisation gap."""
    return logged(r, "train/elbo") - mean(r, "elbo")


def val_at(r: Record, budget: str) -> str:
    """The validation ELBO at the first epoch end with at least ``budget`` training samples,
    and the budget, as '-116.38 at 10^6 samples'."""
    samples = parse_power(budget)
    curve = read_curve(r, "val/elbo")
    value = next((v for s, v in curve if s * r.batch_size >= samples), None)
    if value is None:
        raise UserError(f"{r.name} did not reach {budget} training samples.")
    return f"{value:.2f} at {powers_of_ten(samples)} samples"


def final_slope(r: Record, window: str) -> str:
    """The least-squares slope of the validation ELBO over the epoch ends in the last
    ``window`` training samples, per ``window`` samples, ± its s.e."""
    width = parse_power(window)
    curve = [(s * r.batch_size, v) for s, v in read_curve(r, "val/elbo")]
    last = [(s / width, v) for s, v in curve if s >= curve[-1][0] - width]
    fit = fitted_slope(*zip(*last, strict=True))
    return f"{fit.value:+.2f} ± {fit.se:.2f}"


def slope_unit(window: str) -> str:
    """The unit of final_slope."""
    return f"nats per {window} samples over the last {window}"


def slope(r: Record, window: str) -> str:
    """final_slope with its unit."""
    return f"{final_slope(r, window)} {slope_unit(window)}"


def best_val(r: Record) -> str:
    """The highest validation ELBO and the epoch it was logged at."""
    best = max((float(row["val/elbo"]), int(row["epoch"])) for row in r.rows if row.get("val/elbo"))
    return f"{best[0]:.2f} at epoch {best[1]:,}"


def repeated_epochs(r: Record) -> str:
    """The epochs whose end-of-epoch training row metrics.csv holds twice, or 'none'."""
    counts = Counter(row["epoch"] for row in r.rows if row.get("train/elbo"))
    twice = [f"epoch {int(e):,}" for e, n in counts.items() if n > 1]
    return ", ".join(twice) or "none"


def resumes(r: Record) -> str:
    """The steps a run was resumed at, each with the epoch whose end it follows or, for an
    interrupt's checkpoint, the epoch it was saved within."""
    ends = sorted(
        (int(row["step"]) + 1, int(row["epoch"])) for row in r.rows if row.get("train/elbo")
    )
    steps = sorted({resume["step"] for resume in r.summary.get("resumed_from", [])})
    return ", ".join(resume_point(s, ends) for s in steps) or "none"


def resume_point(step: int, ends: list[tuple[int, int]]) -> str:
    """'step 50,150 (the end of epoch 84)' or 'step 88,997 (within epoch 150)', from the
    steps that follow each epoch's end, ascending."""
    for end, epoch in ends:
        if end == step:
            return f"step {step:,} (the end of epoch {epoch:,})"
        if end > step:
            return f"step {step:,} (within epoch {epoch:,})"
    raise UserError(f"step {step:,} is after the last epoch end that metrics.csv holds.")


def collapsed(r: Record) -> str:
    """The validation epochs at which every latent dimension's validation KL was below
    ``model.collapse_threshold`` (training's posterior-collapse line) and the training samples
    at the last, as '560 of 625 validation epochs, the last at 9,040,000 samples'."""
    threshold = float(r.setting("model.collapse_threshold"))
    per_dimension = [
        (row, [float(v) for k, v in row.items() if k.startswith("val/kl_dim_") and v])
        for row in r.rows
    ]
    ends = [(row, kl) for row, kl in per_dimension if kl]
    if not ends:
        raise UserError(f"{r.name}: its metrics.csv has no validation KL per dimension.")
    below = [row for row, kl in ends if max(kl) < threshold]
    if not below:
        return f"none of {len(ends):,} validation epochs"
    last = (int(float(below[-1]["step"])) + 1) * r.batch_size
    return f"{len(below):,} of {len(ends):,} validation epochs, the last at {last:,} samples"


def hours(r: Record) -> float:
    """Hours of training steps, summed over the epochs (training_hours)."""
    return training_hours(r)[-1][0]


def median_hours(r: Record) -> float:
    """The hours its training samples take at the run's median rate of samples a second."""
    return r.samples_seen / r.summary["train_samples_per_sec_median"] / 3600


def final_lr(r: Record) -> str:
    """The learning rate after the scheduler's last drop (MultiStepLR: lr * gamma^drops)."""
    schedule = r.setting("model.scheduler")
    return setting(
        r.setting("model.optimizer.lr") * schedule["gamma"] ** len(schedule["milestones"])
    )


def training_images(r: Record) -> str:
    """The images it trained on: the published training split less the validation images
    (MNIST), or the frames of its split (Frey Face)."""
    if r.data == "FreyFaceDataModule":
        return f"{len(split_of(r)['train']):,}"
    return f"{TRAINING_IMAGES[r.data] - r.setting('data.val_size'):,}"


def to_band(r: Record) -> str:
    """Where the test ELBO lies against the paper's band for its panel: the distance to the
    nearer edge, inside or outside."""
    low, high = PAPER_BANDS[r.data, r.latent_dim]
    value = mean(r, "elbo")
    if value < low:
        return f"{low - value:.2f} nats below the band's lower edge"
    if value > high:
        return f"{value - high:.2f} nats above the band's upper edge"
    edge, name = min((value - low, "lower"), (high - value, "upper"))
    return f"{edge:.2f} nats inside the band's {name} edge"


def minus(r: Record, name: str, reference: str) -> str:
    """An evaluation metric's mean minus a value of the literature module, signed."""
    return f"{mean(r, name) - float(LITERATURE[reference][0]):+.2f}"


def weights(r: Record) -> str:
    """The committed checkpoint(s) of the record and their size."""
    files = sorted(r.folder.glob("checkpoints/*.ckpt"))
    if not files:
        raise UserError(f"{r.name} holds no checkpoint.")
    return ", ".join(f"`{shown(f)}` ({f.stat().st_size / 1e6:.1f} MB)" for f in files)


def snapshots(r: Record) -> str:
    """The test images of its evaluated snapshots and the epochs of the first and last."""
    epochs = [e["checkpoint_epoch"] for e in r.snapshots]
    return f"{points(r.snapshots[0])} test images, epochs {min(epochs):,} to {max(epochs):,}"


# name -> function(record, *arguments), as the placeholders call them.
PER_RECORD: dict[str, Callable[..., float | str]] = {
    "best_val": best_val,
    "checkpoint_epoch": checkpoint_epoch,
    "collapsed": collapsed,
    "cut": cut,
    "evaluated": evaluated,
    "experiment": lambda r: f"`experiment={r.experiment}`",
    "final_lr": final_lr,
    "folder": lambda r: shown(r.folder),
    "gap": gap,
    "hours": hours,
    "k": lambda r: f"{r.evaluation['num_importance_samples']}",
    "kl_above": kl_above,
    "logged": logged,
    "mean": mean,
    "median_hours": median_hours,
    "median_rate": lambda r: f"{r.summary['train_samples_per_sec_median']:,.0f}",
    "method": method,
    "metric": metric,
    "minus": minus,
    "networks": networks,
    "optimiser": optimiser,
    "percentiles": percentiles,
    "points": lambda r: points(r.evaluation),
    "prior_percentiles": prior_percentiles,
    "ratio": ratio,
    "record": lambda r: f"`{r.name}`",
    "repeated_epochs": repeated_epochs,
    "resumes": resumes,
    "rise": rise,
    "samples": lambda r: powers_of_ten(r.samples_seen),
    "samples_seen": lambda r: f"{r.samples_seen:,}",
    "setting": lambda r, path: setting(r.setting(path)),
    "slope": slope,
    "snapshots": snapshots,
    "steps": lambda r: f"{r.summary['steps']:,}",
    "to_band": to_band,
    "training_images": training_images,
    "val_at": val_at,
    "weights": weights,
}
