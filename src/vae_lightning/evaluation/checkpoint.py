"""Finding and loading a trained model: run folder -> best checkpoint -> VAE, weights only."""

import inspect
import pickle
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch

from vae_lightning.errors import UserError
from vae_lightning.models.lit_vae import VAE

BEST_PATTERN = "best-*.ckpt"


class CheckpointError(UserError):
    """A checkpoint path that is missing, or a file that is not a checkpoint of this project."""


def resolve_checkpoint(path: str | Path, key: str = "ckpt_path") -> Path:
    """``path`` itself if it is a file; for a run folder, its ``checkpoints/best-*.ckpt``;
    ``key`` names the path in messages.

    If a run kept several best checkpoints (``save_top_k > 1``), the best of them is the one
    ModelCheckpoint recorded in ``last.ckpt``.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(
            f"{key}={str(path)!r} does not exist. Give a checkpoint file (e.g. "
            "outputs/train/runs/<run>/checkpoints/best-epoch009.ckpt) or a run folder."
        )
    folder = path / "checkpoints"
    candidates = sorted(folder.glob(BEST_PATTERN))
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1 and (best := _recorded_best(folder / "last.ckpt")) in candidates:
        return best
    found = ", ".join(p.name for p in candidates) or "none"
    raise CheckpointError(
        f"{key}={str(path)!r} is a folder, but no single best checkpoint could be chosen in "
        f"{folder} (best checkpoints found: {found}). Give a run folder of "
        "`python -m vae_lightning.train`, or the path of one checkpoint file."
    )


def _recorded_best(last: Path) -> Path | None:
    """The best_model_path that ModelCheckpoint saved in ``last.ckpt``, if any."""
    if not last.is_file():
        return None
    states = load_checkpoint_file(last).get("callbacks", {})
    paths = [s.get("best_model_path") for k, s in states.items() if "ModelCheckpoint" in k]
    best = [Path(p).name for p in paths if p and fnmatch(Path(p).name, BEST_PATTERN)]
    return last.parent / best[0] if best else None


def _load_failure(err: BaseException) -> str:
    """`Type: reason` of a failed torch.load, the reason the first sentence of the weights-only
    unpickler's own error (not torch's advice to load with weights_only=False) or else of the
    message; the type alone when there is no message."""
    text = str(err)
    if match := re.search(r"WeightsUnpickler error:\s*(.+)", text):
        text = match.group(1)
    reason = text.strip().split("\n")[0].split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {reason}" if reason else type(err).__name__


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True``: no code in the file is run."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project: it cannot be read as plain tensors "
            f"and numbers ({_load_failure(err)}). Give a .ckpt file written by "
            "`python -m vae_lightning.train`."
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint.")
    return checkpoint


def checkpoint_epoch(checkpoint: dict[str, Any]) -> int:
    """The epoch (counted from 0, as in the epoch table) whose training gave the weights.

    Lightning's ``epoch`` counts the epochs finished once a checkpoint is written at an
    epoch's end (`last.ckpt` of a 2-epoch run says 2); the fit loop's count of epochs started
    does not depend on when in the epoch the checkpoint was written."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    started = progress.get("current", {}).get("started")
    return started - 1 if started else checkpoint["epoch"]


def load_model(path: Path) -> VAE:
    """Rebuild the VAE from the checkpoint's saved hyperparameters and load its weights."""
    return model_from_checkpoint(load_checkpoint_file(path), path)


def model_from_checkpoint(checkpoint: dict[str, Any], path: Path) -> VAE:
    """The VAE of a checkpoint already read from ``path`` (named in errors), in eval mode."""
    hparams = checkpoint.get("hyper_parameters")
    accepted = set(inspect.signature(VAE).parameters)
    if (
        not isinstance(hparams, dict)
        or not isinstance(checkpoint.get("state_dict"), dict)
        or not {"image_shape", "latent_dim", "likelihood"} <= hparams.keys() <= accepted
    ):
        raise CheckpointError(
            f"{path} is not a checkpoint of this project: it lacks the VAE's hyperparameters "
            "or weights. Give a .ckpt file written by `python -m vae_lightning.train`."
        )
    try:
        model = VAE(**{**hparams, "compile": False})
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} does not match this project's VAE: its weights do not fit the network "
            f"that its saved settings describe ({type(err).__name__}: {_first_reason(err)}). "
            "Give a checkpoint written by `python -m vae_lightning.train` of this version of "
            "vae-lightning, unchanged."
        ) from err
    return model.eval()


def _first_reason(err: BaseException, limit: int = 300) -> str:
    """The first line of an error, with the first item under it when it ends in a colon (as
    load_state_dict's "Error(s) in loading state_dict for VAE:" does), cut at ``limit``."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_folder_of(checkpoint: Path) -> Path:
    """The training run folder holding ``checkpoints/<checkpoint>`` and its ``config.yaml``."""
    run = checkpoint.resolve().parent.parent
    if checkpoint.resolve().parent.name != "checkpoints" or not (run / "config.yaml").is_file():
        raise CheckpointError(
            f"{checkpoint} is not inside a run folder of `python -m vae_lightning.train` "
            "(<run>/checkpoints/*.ckpt next to <run>/config.yaml), whose data settings the "
            "evaluation uses. Evaluate it from its run folder."
        )
    return run
