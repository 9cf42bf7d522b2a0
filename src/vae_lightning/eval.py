"""Evaluate a trained VAE: `python -m vae_lightning.eval ckpt_path=PATH` (Hydra, conf/eval.yaml).

Writes ``eval.json`` and PNG figures to a new folder ``<run>/eval/<time>_<split>/``.
"""

import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vae_lightning.cli import exit_with_message, run_app
from vae_lightning.config import check_data_config, check_eval_config, config_dir
from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.errors import UserError
from vae_lightning.evaluation import figures
from vae_lightning.evaluation.checkpoint import load_model, resolve_checkpoint, run_folder_of
from vae_lightning.evaluation.metrics import (
    elbo_terms,
    exact_log_likelihood,
    importance_sampled_log_likelihood,
    latent_means,
    mean_and_sem,
)
from vae_lightning.models.ppca import fit_ppca, ppca_log_likelihood
from vae_lightning.models.vae import VariationalAutoencoder
from vae_lightning.schema import check_schema

log = logging.getLogger(__name__)


def load_data(run: Path, overrides: DictConfig) -> InMemoryDataModule:
    """The run's data module from its saved config.yaml, with the non-null overrides on top."""
    data_cfg = OmegaConf.load(run / "config.yaml").data
    data_cfg.merge_with({k: v for k, v in overrides.items() if v is not None})
    check_data_config(data_cfg)
    datamodule = instantiate(data_cfg)
    datamodule.prepare_data()  # missing or corrupt files fail here
    datamodule.setup("test")
    return datamodule


def split_data(datamodule: InMemoryDataModule, cfg: DictConfig) -> tuple[Tensor, Tensor | None]:
    """The images and labels (or None) of the split, its first ``num_points`` if that is set."""
    images, labels = datamodule.splits[cfg.split], datamodule.labels[cfg.split]
    end = cfg.num_points or len(images)
    return images[:end], None if labels is None else labels[:end]


def new_eval_folder(run: Path, split: str) -> Path:
    """A fresh ``<run>/eval/<time with microseconds>_<split>``; never an existing one."""
    folder = run / "eval" / f"{datetime.now():%Y-%m-%d_%H-%M-%S-%f}_{split}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def save_figures(
    cfg: DictConfig, vae: VariationalAutoencoder, datamodule: InMemoryDataModule, folder: Path
) -> list[str]:
    """The paper's figures that apply to this model and data; returns their file names."""
    images, labels = split_data(datamodule, cfg)
    device = next(vae.parameters()).device
    torch.manual_seed(cfg.seed)
    figures.save_reconstructions(
        vae, images[: cfg.num_reconstructions].to(device), folder / "reconstructions.png"
    )
    figures.save_prior_samples(vae, folder / "samples.png")
    names = ["reconstructions.png", "samples.png"]
    if vae.latent_dim == 2:
        figures.save_manifold(vae, folder / "manifold.png", cfg.manifold_size)
        names.append("manifold.png")
    if labels is not None:
        means = latent_means(vae, images, cfg.batch_size)
        figures.save_latent_scatter(means, labels, folder / "latent_means.png")
        names.append("latent_means.png")
    run = folder.parents[1]  # <run>/eval/<folder>
    if (metrics_csv := run / "metrics.csv").is_file():
        figures.save_training_curves(metrics_csv, folder / "training_curves.png")
        names.append("training_curves.png")
    return names


def compute_metrics(
    cfg: DictConfig, vae: VariationalAutoencoder, datamodule: InMemoryDataModule, num_samples: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """({metric: {mean, sem}} in nats per data point, {part: seconds})."""
    images, _ = split_data(datamodule, cfg)
    seconds, per_point = {}, {}
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    per_point.update(elbo_terms(vae, images, cfg.batch_size, num_samples))
    seconds["elbo"] = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    per_point["log_likelihood_is"] = importance_sampled_log_likelihood(
        vae, images, cfg.num_importance_samples, cfg.batch_size, cfg.chunk_size
    )
    seconds["importance_sampling"] = time.perf_counter() - start

    if (exact := exact_log_likelihood(vae, images)) is not None:
        per_point["log_likelihood_exact"] = exact
        closed_form = fit_ppca(datamodule.splits["train"], vae.latent_dim)
        per_point["log_likelihood_ppca_closed_form"] = ppca_log_likelihood(images, closed_form)
    return {k: mean_and_sem(v) for k, v in per_point.items()}, seconds


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Check the input, evaluate the checkpoint, write eval.json and the figures."""
    start = time.perf_counter()
    check_eval_config(cfg)
    checkpoint = resolve_checkpoint(cfg.ckpt_path)
    module = load_model(checkpoint).to(cfg.device)
    run = run_folder_of(checkpoint)
    datamodule = load_data(run, cfg.data)
    folder = new_eval_folder(run, cfg.split)  # all input checks have passed

    metrics, seconds = compute_metrics(cfg, module.vae, datamodule, module.hparams.num_samples)
    figure_names = save_figures(cfg, module.vae, datamodule, folder)
    seconds["total"] = time.perf_counter() - start
    record = {
        "checkpoint": str(checkpoint.resolve()),
        "run_dir": str(run),
        "data": datamodule.name,
        "split": cfg.split,
        "num_data_points": len(split_data(datamodule, cfg)[0]),
        "binarize": datamodule.binarize,
        "likelihood": module.hparams.likelihood,
        "latent_dim": module.hparams.latent_dim,
        "num_importance_samples": cfg.num_importance_samples,
        "elbo_samples": module.hparams.num_samples,
        "seed": cfg.seed,
        "device": cfg.device,
        "metrics": metrics,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "figures": figure_names,
        "evaluated_at": datetime.now().isoformat(timespec="seconds"),
    }
    (folder / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    OmegaConf.save(cfg, folder / "eval_config.yaml")
    log.info("%s", summary_table(record, folder))
    return record


def summary_table(record: dict[str, Any], folder: Path) -> str:
    """A one-screen table of the metrics (nats per data point) and the times."""
    metrics, seconds = record["metrics"], record["seconds"]
    title = (
        f"{record['data']} {record['split']} ({record['num_data_points']} points, "
        f"binarize={record['binarize']}), {record['likelihood']} decoder, "
        f"latent {record['latent_dim']}, K={record['num_importance_samples']}"
    )
    rows = [f"  {'metric (nats per data point)':<34} {'mean':>11} {'s.e.':>8}"]
    rows += [f"  {k:<34} {v['mean']:>11.3f} {v['sem']:>8.3f}" for k, v in metrics.items()]
    rows.append(
        f"  time: ELBO {seconds['elbo']:.1f} s, importance sampling "
        f"{seconds['importance_sampling']:.1f} s, total {seconds['total']:.1f} s"
    )
    return "\n".join([f"Evaluation of {record['checkpoint']}", title, *rows, f"Folder: {folder}"])


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    # `data` takes any key of the run's data config; K is the literature's name of the samples.
    try:
        check_schema(cfg, "eval", config_dir(), ("data",), {"K": "num_importance_samples"})
        evaluate(cfg)
    except UserError as err:
        exit_with_message(err)


def main() -> None:
    """`python -m vae_lightning.eval` and `vae-eval`: a user error exits 2 (`run_app`)."""
    run_app(hydra_main)


if __name__ == "__main__":
    main()
