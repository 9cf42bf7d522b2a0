"""Fault tolerance: atomic checkpoint files, which checkpoint to resume from, and its checks."""

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vae_lightning.atomic_files import atomic_write
from vae_lightning.training.run_folder import RunFolder


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its folder, then renames it into place.

    A rename within one file system is atomic, so a process killed while writing (SIGKILL,
    preemption, a full disk) leaves the previous checkpoint of that name intact and at most a
    stray ``.<name>.*.tmp`` file, never a truncated ``.ckpt``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO does not take storage_options; got "
                f"{storage_options!r}. Use a CheckpointIO plugin that supports them."
            )
        with atomic_write(Path(path), "wb") as file:
            torch.save(checkpoint, file)


def resume_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint to continue the run in `output_dir` from, or None.

    Candidates: ``checkpoints/last.ckpt`` (written by ModelCheckpoint) and the
    ``hpc_ckpt_<n>.ckpt`` that Lightning writes before a SLURM requeue.
    """
    candidates = [output_dir / "checkpoints" / "last.ckpt"]
    hpc = [
        (int(m.group(1)), p)
        for p in output_dir.glob("hpc_ckpt_*.ckpt")
        if (m := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", p.name))
    ]
    if hpc:
        candidates.append(max(hpc)[1])
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


# Model settings a checkpoint's weights depend on: resuming with others cannot work.
ARCHITECTURE_KEYS = ("latent_dim", "hidden_dims", "activation", "likelihood")


def check_resume_checkpoint(path: Path, model_cfg: Any) -> int:
    """Refuse a checkpoint that cannot resume this config; returns its optimiser steps.

    The file is read with ``weights_only=True`` (a corrupt, truncated or foreign file is
    refused naming it), and the model settings it was trained with must be the config's.
    """
    from vae_lightning.evaluation.checkpoint import CheckpointError, load_checkpoint_file

    checkpoint = load_checkpoint_file(path)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise CheckpointError(
            f"{path} is not a training checkpoint of this project (it lacks the weights, the "
            "step or the model's settings). Resume from a .ckpt file written by "
            "`python -m vae_lightning.train`, e.g. <run>/checkpoints/last.ckpt."
        )
    for key in ARCHITECTURE_KEYS:
        saved, configured = hparams.get(key), model_cfg.get(key)
        if isinstance(configured, Sequence) and not isinstance(configured, str):
            configured = list(configured)
        if saved != configured:
            raise CheckpointError(
                f"{path} was trained with model.{key}={saved!r}, but this run's config has "
                f"model.{key}={configured!r}. Resume with the settings of the run it comes from "
                f"(model.{key}={saved!r}), or start a new run without ckpt_path."
            )
    return int(checkpoint["global_step"])


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint, writing `last.ckpt` at every epoch's end (Lightning writes
    it only with a new best checkpoint), with two fixes for resumed runs.

    - Resumed into a new folder (``ckpt_path=``), it keeps the best checkpoint: the best file
      is copied into the new folder and its score is ranked against, where Lightning would
      warn that the folder changed and start ranking afresh.
    - A step or time interval never saves after an epoch's last batch, the checkpoint that
      follows at once at the epoch's end is written instead. Lightning resumes a checkpoint
      saved there as a finished epoch, without that epoch's validation and end.
    - After any resume, the step at which metrics are logged is the optimiser step again.
      Lightning re-derives that counter assuming the checkpoint was saved at a batch's end; one
      saved elsewhere in a step (SLURM's SIGUSR1 handler saves wherever the signal lands)
      would shift every later logged step by one.
    """

    _restored = False

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_missing(trainer, at_train_epoch_end=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_if_missing(trainer, at_train_epoch_end=False)

    def _save_last_if_missing(self, trainer, at_train_epoch_end: bool) -> None:
        """Lightning writes last.ckpt only when it saves a best checkpoint; a run to resume
        needs it at every epoch's end, improved or not."""
        if (
            self.save_last
            and self._every_n_epochs >= 1
            and trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and self._last_global_step_saved != trainer.global_step
            and self._should_save_on_train_epoch_end(trainer) == at_train_epoch_end
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._restored = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 < trainer.num_training_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._restored:  # the first batch after a resume: one optimiser, one step a batch
            trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step
            self._restored = False

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and Path(old).resolve() != Path(self.dirpath).resolve():
            new = {}
            for path in state_dict.get("best_k_models", {}):
                here = Path(self.dirpath) / Path(path).name  # also where a moved folder has it
                if Path(path).is_file() or here.is_file():  # a copy already here is kept
                    new[path] = str(copy_atomically(Path(path), here))
            state_dict = {
                **state_dict,
                "dirpath": self.dirpath,
                "best_model_path": new.get(state_dict.get("best_model_path"), ""),
                "kth_best_model_path": new.get(state_dict.get("kth_best_model_path"), ""),
                "best_k_models": {
                    new[p]: s for p, s in state_dict.get("best_k_models", {}).items() if p in new
                },
                "last_model_path": "",
            }
        super().load_state_dict(state_dict)


def resume_point(cfg: Any, run: RunFolder) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint to resume from (checked) and the record of that resume, if any."""
    ckpt_path = Path(cfg.ckpt_path) if cfg.ckpt_path is not None else None
    if ckpt_path is None and cfg.get("auto_resume"):
        # A preempted or killed run continues in its own folder, from its newest checkpoint.
        ckpt_path = resume_checkpoint(run.path)
    if ckpt_path is None:
        return None, {}
    step = check_resume_checkpoint(ckpt_path, cfg.model)
    source = RunFolder(ckpt_path.resolve().parent.parent)
    return ckpt_path, {
        "checkpoint": str(ckpt_path),
        "step": step,
        "run_dir": str(source.path),
        "wandb_run_id": source.read_summary().get("wandb_run_id"),
    }


def copy_atomically(source: Path, target: Path) -> Path:
    """Copy `source` to `target` through a temporary file; an existing target is kept."""
    if target.exists():
        return target
    with open(source, "rb") as src, atomic_write(target, "wb") as out:
        shutil.copyfileobj(src, out)
    return target
