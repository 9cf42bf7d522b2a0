"""The Python API: a trained model, and the data it was trained on, in one call each.

    import vae_lightning
    model = vae_lightning.load("docs/runs/mnist_latent50_1.3e8")    # run or record folder, .ckpt
    data = vae_lightning.load_data("docs/runs/mnist_latent50_1.3e8")
    test = data.splits["test"]                 # the run's test images, binarised as it was
    model.log_likelihood(test[:100], num_samples=5000, seed=0)   # nats per image

Checkpoints are read as weights only (no code in the file is run); bad input raises
vae_lightning.errors.UserError subclasses whose message names the path and the fix.
"""

import os
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.errors import ConfigError, UserError
from vae_lightning.evaluation.checkpoint import (
    CheckpointError,
    load_model,
    resolve_checkpoint,
    run_folder_of,
)
from vae_lightning.evaluation.run_data import load_data as load_run_data
from vae_lightning.models.vae import VariationalAutoencoder


def load(path: str | Path, device: str | torch.device = "cpu") -> VariationalAutoencoder:
    """The trained model of a run folder, a record folder (docs/runs/<name>) or a .ckpt file,
    in eval mode on ``device``; of a folder, its best checkpoint.

    The model's ``config`` is the config it was trained with: the run's config.yaml where the
    checkpoint lies in a run or record folder, else the model's settings from the checkpoint
    (as ``config.model``). ``checkpoint`` is the file it was read from.
    """
    device = _device(device)
    checkpoint = resolve_checkpoint(path, key="path")
    module = load_model(checkpoint)
    model = module.vae.to(device).eval()
    try:
        config = OmegaConf.load(run_folder_of(checkpoint) / "config.yaml")
    except CheckpointError:  # a checkpoint file outside its run folder
        config = OmegaConf.create({"model": dict(module.hparams)})
    model.config, model.checkpoint = config, checkpoint.resolve()
    return model


def load_data(
    path: str | Path, data_dir: str | Path | None = None, **settings: object
) -> InMemoryDataModule:
    """The data module of the run (or record) folder ``path``, or of the run folder holding the
    checkpoint file ``path``, from its config.yaml: the same splits, the same fixed
    binarisations of the validation and test images, loaded (``.splits[split]``, images of
    shape (n, *image_shape) in [0, 1]; ``.labels[split]``).

    The data files are looked up in ``data_dir`` if given, else in $VAE_DATA_DIR if set, else
    where the run found them; ``settings`` override other keys of the run's data config.
    """
    folder = Path(path).expanduser()
    run = folder if folder.is_dir() else _run_of(resolve_checkpoint(folder, key="path"))
    if not (run / "config.yaml").is_file():
        raise UserError(
            f"{run} has no config.yaml: give a run folder of `python -m vae_lightning.train`, a "
            "record folder (docs/runs/<name>) or a checkpoint file inside one."
        )
    data_dir = data_dir or os.environ.get("VAE_DATA_DIR")
    overrides = {**settings, **({"data_dir": str(data_dir)} if data_dir else {})}
    return load_run_data(run, OmegaConf.create(overrides))


def _run_of(checkpoint: Path) -> Path:
    """The run or record folder holding the checkpoint file, whose config.yaml names its data."""
    try:
        return run_folder_of(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(
            f"{checkpoint} is not inside a run or record folder (<run>/checkpoints/*.ckpt next "
            "to <run>/config.yaml), so the data it was trained on are not known: give its run "
            "or record folder, or build the data module yourself (vae_lightning.data)."
        ) from err


def _device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} needs a CUDA GPU, and none is visible; use 'cpu'.")
    return device


__all__ = ["load", "load_data"]
