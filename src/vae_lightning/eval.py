"""Evaluate a trained VAE: `python -m vae_lightning.eval ckpt_path=PATH` (Hydra, conf/eval.yaml).

Writes ``eval.json`` and PNG figures to a new folder ``<run>/eval/<time>_<split>/``.
"""

import csv
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vae_lightning.cli import exit_with_message, run_app
from vae_lightning.config import check_eval_config, config_dir
from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.errors import ConfigError, UserError
from vae_lightning.evaluation import figures
from vae_lightning.evaluation.checkpoint import (
    checkpoint_epoch,
    load_checkpoint_file,
    model_from_checkpoint,
    resolve_checkpoint,
    run_folder_of,
)
from vae_lightning.evaluation.metrics import (
    combine_estimates,
    elbo_terms,
    exact_log_likelihood,
    importance_sampled_log_likelihood,
    mean_and_sem,
    posteriors,
)
from vae_lightning.evaluation.run_data import load_data
from vae_lightning.models.latent_diagnostics import latent_diagnostics
from vae_lightning.models.ppca import fit_ppca, ppca_log_likelihood
from vae_lightning.models.vae import VariationalAutoencoder
from vae_lightning.schema import check_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Points:
    """The data points one evaluation uses: every metric and figure is computed on these."""

    images: Tensor
    labels: Tensor | None
    indices: Tensor  # positions in the split, increasing
    split_size: int
    seed: int

    def record(self) -> dict[str, Any]:
        """For eval.json: the count, the seed and the sha256 of the sorted indices written as
        decimal numbers joined by commas ("0,5,17"), or "all" for the whole split."""
        whole = len(self.indices) == self.split_size
        text = ",".join(str(i) for i in self.indices.tolist())
        return {
            "num_points": len(self.indices),
            "split_size": self.split_size,
            "seed": None if whole else self.seed,
            "indices_sha256": "all" if whole else hashlib.sha256(text.encode()).hexdigest(),
        }


def subset_indices(split_size: int, num_points: int | None, seed: int) -> Tensor:
    """All indices of the split, or ``num_points`` of them drawn uniformly without replacement
    by a generator seeded with ``seed``, sorted. Never the first N: the files are not in random
    order (the first 1,000 MNIST test digits are easier than the rest)."""
    if num_points is None or num_points == split_size:
        return torch.arange(split_size)
    if num_points > split_size:
        raise ConfigError(
            f"num_points={num_points} is more than the {split_size} data points of the split. "
            "Set num_points=null to evaluate the whole split, or a smaller number."
        )
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(split_size, generator=generator)[:num_points].sort().values


def choose_points(datamodule: InMemoryDataModule, cfg: DictConfig) -> Points:
    """The split's data points that the evaluation uses (see subset_indices)."""
    images, labels = datamodule.splits[cfg.split], datamodule.labels[cfg.split]
    indices = subset_indices(len(images), cfg.num_points, cfg.subset_seed)
    return Points(
        images=images[indices],
        labels=None if labels is None else labels[indices],
        indices=indices,
        split_size=len(images),
        seed=cfg.subset_seed,
    )


def new_eval_folder(run: Path, split: str) -> Path:
    """A fresh ``<run>/eval/<time with microseconds>_<split>``; never an existing one."""
    folder = run / "eval" / f"{datetime.now():%Y-%m-%d_%H-%M-%S-%f}_{split}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def latent_coverage(means: Tensor, manifold_size: int) -> dict:
    """Where the evaluated points' latent means mu(x) lie against the prior's manifold grid
    (`manifold_grid=prior`, the paper's): the 1st, 50th and 99th percentiles of each
    coordinate and the fraction of the means inside the grid's square. Where the means do
    not match the prior, that grid decodes latents no image maps to and misses others."""
    edge = figures.manifold_axes(manifold_size).max().item()
    quantiles = torch.quantile(means, torch.tensor([0.01, 0.5, 0.99]), dim=0)
    return {
        "grid_half_width": round(edge, 4),
        "mean_percentiles_1_50_99": [[round(v, 4) for v in q] for q in quantiles.tolist()],
        "fraction_inside_grid": (means.abs() <= edge).all(1).float().mean().item(),
    }


def manifold_spread(
    vae: VariationalAutoencoder, means: Tensor, images: Tensor, manifold_size: int
) -> dict[str, float]:
    """How much the manifold figure varies: the standard deviation of E[x|z] across the cells
    of each grid (`manifold_grid` prior and latent_means), per pixel and averaged over the
    pixels, beside that of the evaluated images themselves (pixel values in [0, 1])."""
    device = next(vae.parameters()).device
    spread = {}
    for grid, grid_means in (("prior_grid", None), ("latent_means_grid", means)):
        z = figures.manifold_latents(manifold_size, grid_means).to(device)
        spread[grid] = vae.decode(z).flatten(1).std(0).mean().item()
    spread["points"] = images.flatten(1).float().std(0).mean().item()
    return {k: round(v, 4) for k, v in spread.items()}


def save_figures(
    cfg: DictConfig,
    vae: VariationalAutoencoder,
    points: Points,
    means: Tensor,
    folder: Path,
    title: str,
) -> list[str]:
    """The paper's figures that apply to this model and data; returns their file names.

    Reconstructions and latent means are of the evaluated points; `title` names the model
    (`figures.model_title`)."""
    device = next(vae.parameters()).device
    torch.manual_seed(cfg.seed)
    x = points.images[: cfg.num_reconstructions].to(device)
    figures.save_reconstructions(vae, x, folder / "reconstructions.png", title)
    figures.save_prior_samples(vae, folder / "samples.png", title)
    names = ["reconstructions.png", "samples.png"]
    if vae.latent_dim == 2:
        grid_means = means if cfg.manifold_grid == "latent_means" else None
        figures.save_manifold(vae, folder / "manifold.png", title, cfg.manifold_size, grid_means)
        names.append("manifold.png")
    if points.labels is not None:
        figures.save_latent_scatter(means, points.labels, folder / "latent_means.png")
        names.append("latent_means.png")
    run = folder.parents[1]  # <run>/eval/<folder>
    if (metrics_csv := run / "metrics.csv").is_file():
        figures.save_training_curves(metrics_csv, folder / "training_curves.png")
        names.append("training_curves.png")
    return names


def compute_metrics(
    cfg: DictConfig, vae: VariationalAutoencoder, points: Points, train_images: Tensor, elbo_k: int
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """({metric: value of every evaluated point} in nats, {part: seconds}).

    The importance-sampled estimate at K is the combination of two independent estimates at
    K/2 (exactly the K-sample estimator); their difference shows the estimator's own noise
    and their mean the bias left at K/2.
    """
    images, seconds, per_point = points.images, {}, {}
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    per_point.update(elbo_terms(vae, images, cfg.batch_size, elbo_k))
    seconds["elbo"] = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    halves = [cfg.num_importance_samples // 2, cfg.num_importance_samples // 2]
    halves[0] += cfg.num_importance_samples % 2
    estimates = [
        importance_sampled_log_likelihood(vae, images, k, cfg.batch_size, cfg.chunk_size)
        for k in halves
        if k > 0
    ]
    per_point["log_likelihood_is"] = combine_estimates(estimates, [k for k in halves if k])
    if len(estimates) == 2:
        per_point["log_likelihood_is_half_k"] = (estimates[0] + estimates[1]) / 2
        per_point["is_half_k_difference"] = estimates[0] - estimates[1]
    per_point["is_minus_elbo"] = per_point["log_likelihood_is"] - per_point["elbo"]
    seconds["importance_sampling"] = time.perf_counter() - start

    if (exact := exact_log_likelihood(vae, images)) is not None:
        per_point["log_likelihood_exact"] = exact
        closed_form = fit_ppca(train_images, vae.latent_dim)
        per_point["log_likelihood_ppca_closed_form"] = ppca_log_likelihood(images, closed_form)
    return per_point, seconds


def write_per_point(path: Path, indices: Tensor, per_point: dict[str, Tensor]) -> None:
    """``per_point.csv``: the split index of each evaluated point and its metrics (nats)."""
    names = list(per_point)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", *names])
        columns = [per_point[name].tolist() for name in names]
        for i, index in enumerate(indices.tolist()):
            writer.writerow([index, *(f"{column[i]:.6f}" for column in columns)])


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Check the input, evaluate the checkpoint, write eval.json and the figures."""
    start = time.perf_counter()
    check_eval_config(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    checkpoint = resolve_checkpoint(cfg.ckpt_path)
    saved = load_checkpoint_file(checkpoint)
    module = model_from_checkpoint(saved, checkpoint).to(cfg.device)
    run = run_folder_of(checkpoint)
    datamodule = load_data(run, cfg.data)
    points = choose_points(datamodule, cfg)
    folder = new_eval_folder(run, cfg.split)  # all input checks have passed

    train_images = datamodule.splits["train"]
    per_point, seconds = compute_metrics(
        cfg, module.vae, points, train_images, module.hparams.num_samples
    )
    write_per_point(folder / "per_point.csv", points.indices, per_point)
    epoch = checkpoint_epoch(saved)
    title = figures.model_title(module.hparams, epoch)
    started = time.perf_counter()
    means, logvars = posteriors(module.vae, points.images, cfg.batch_size)
    diagnostics = latent_diagnostics(
        means, logvars, cfg.active_unit_threshold, cfg.mutual_info_points, cfg.seed
    )
    seconds["latent_diagnostics"] = time.perf_counter() - started
    figure_names = save_figures(cfg, module.vae, points, means, folder, title)
    latent = module.hparams.latent_dim
    seconds["total"] = time.perf_counter() - start
    record = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_epoch": epoch,
        "checkpoint_step": saved.get("global_step"),
        "run_dir": str(run),
        "data": datamodule.name,
        "split": cfg.split,
        "num_data_points": len(points.indices),
        "subset": points.record(),
        "binarize": datamodule.binarize,
        "likelihood": module.hparams.likelihood,
        "latent_dim": module.hparams.latent_dim,
        "num_importance_samples": cfg.num_importance_samples,
        "elbo_samples": module.hparams.num_samples,
        "seed": cfg.seed,
        "device": cfg.device,
        "threads": torch.get_num_threads(),
        "metrics": {name: mean_and_sem(values) for name, values in per_point.items()},
        "latent": diagnostics,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "figures": figure_names,
        "manifold_size": cfg.manifold_size,
        "manifold_grid": cfg.manifold_grid if latent == 2 else None,
        "latent_coverage": latent_coverage(means, cfg.manifold_size) if latent == 2 else None,
        "manifold_spread": manifold_spread(module.vae, means, points.images, cfg.manifold_size)
        if latent == 2
        else None,
        "evaluated_at": datetime.now().isoformat(timespec="seconds"),
    }
    (folder / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    OmegaConf.save(cfg, folder / "eval_config.yaml")
    log.info("%s", summary_table(record, folder))
    return record


def latent_rows(latent: dict[str, Any]) -> list[str]:
    """The latent diagnostics as lines of the evaluation's table (nats)."""
    kl = sorted(latent["kl_per_dim"], reverse=True)
    largest = ", ".join(f"{v:.2f}" for v in kl[:5]) + (", ..." if len(kl) > 5 else "")
    return [
        f"  {'active units':<34} {latent['active_units']:>11} of {len(kl)} "
        f"(A_u > {latent['active_unit_threshold']:g})",
        f"  {'mutual information I_q(x; z)':<34} {latent['mutual_info']:>11.3f} "
        f"(over {latent['mutual_info_points']} points: a lower bound, at most log N = "
        f"{latent['mutual_info_bound']:.3f})",
        f"  {'KL(q(z) || p(z)) = KL - MI':<34} {latent['marginal_kl']:>11.3f} (an upper bound)",
        f"  {'KL per dimension, largest first':<34} {largest}",
    ]


def summary_table(record: dict[str, Any], folder: Path) -> str:
    """A one-screen table of the metrics (nats per data point) and the times."""
    metrics, seconds = record["metrics"], record["seconds"]
    title = (
        f"{record['data']} {record['split']} ({record['num_data_points']} points, "
        f"binarize={record['binarize']}), {record['likelihood']} decoder, "
        f"latent {record['latent_dim']}, K={record['num_importance_samples']}"
    )
    rows = [f"  {'metric (nats per data point)':<34} {'mean':>11} {'s.e.':>8}"]
    rows.append("  (s.e.: the standard error of the mean over the data points)")
    rows += [f"  {k:<34} {v['mean']:>11.3f} {v['sem']:>8.3f}" for k, v in metrics.items()]
    if latent := record.get("latent"):
        rows += latent_rows(latent)
    rows.append(
        f"  time: ELBO {seconds['elbo']:.1f} s, importance sampling "
        f"{seconds['importance_sampling']:.1f} s, total {seconds['total']:.1f} s"
    )
    return "\n".join([f"Evaluation of {record['checkpoint']}", title, *rows, f"Folder: {folder}"])


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    # `data` takes any key of the run's data config; K is the literature's name of the samples.
    try:
        try:
            check_schema(cfg, "eval", config_dir(), ("data",), {"K": "num_importance_samples"})
        except HydraException as err:  # a config group the evaluation has not (+data=mnist)
            exit_with_message(err)
        evaluate(cfg)
    except UserError as err:
        exit_with_message(err)


def main() -> None:
    """`python -m vae_lightning.eval` and `vae-eval`: a user error exits 2 (`run_app`)."""
    run_app(hydra_main)


if __name__ == "__main__":
    main()
