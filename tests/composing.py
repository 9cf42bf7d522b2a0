"""Composing the real configs in-process for module-scoped runs (one training, many checks)."""

import sys
from pathlib import Path

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from vae_lightning.config import apply_dataset_defaults, config_dir


def compose_run(
    overrides: list[str], folder: Path, config_name: str = "train", run_dir: Path | None = None
) -> DictConfig:
    """conf/<config_name>.yaml composed as the CLI would, run from ``folder``; its run folder
    is ``run_dir``, by default ``folder / "run"``."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir or folder / "run")
        cfg.hydra.runtime.cwd = str(folder)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def untrained_val_elbo(cfg: DictConfig) -> float:
    """Validation ELBO of the model a training run starts from: same seed, same init."""
    apply_dataset_defaults(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, image_shape=list(datamodule.image_shape))
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    return trainer.validate(model, datamodule=datamodule, verbose=False)[0]["val/elbo"]


def console_script(name: str) -> str:
    """The path of an installed console script (vae-train, ...) of this interpreter's venv."""
    return str(Path(sys.executable).parent / name)
