"""The work a training config asks for, checked before anything is written.

A run that would train on no data (an empty training split, a zero step or epoch budget, a
limit that leaves no batch, a checkpoint that has already trained the whole budget) or test on
an empty split is refused with the keys and the sizes that fit, instead of running, doing
nothing and reporting success.
"""

import math
from typing import Any

from omegaconf import DictConfig

from vae_lightning.errors import ConfigError


def _limited(batches: int, limit: Any) -> int:
    """Batches per epoch under a Trainer limit: an int caps them, a float keeps that fraction
    (Lightning: int(batches x limit)), None keeps them all."""
    if limit is None:
        return batches
    if isinstance(limit, float):
        return int(batches * limit)
    return min(batches, int(limit))


def _held_out(data: DictConfig) -> str:
    keys = [f"data.{k}={data[k]}" for k in ("val_size", "test_size") if k in data]
    return " and ".join(keys) or "the split settings"


def check_budget(
    cfg: DictConfig, sizes: dict[str, int], processes: int, resumed_step: int = 0
) -> None:
    """Refuse a run that would do no work (see the module), naming the keys and what fits.

    ``sizes``: the data module's split sizes; ``processes``: the training processes;
    ``resumed_step``: the optimiser steps of the checkpoint training resumes from.
    """
    trainer, data = cfg.trainer, cfg.data
    if sizes["train"] < processes:
        # The images the held-out splits are cut from: MNIST's validation split comes from its
        # training file, Frey Face's validation and test splits from its one file.
        pool = sizes["train"] + sizes["val"] + (sizes["test"] if "test_size" in data else 0)
        held = _held_out(data)
        raise ConfigError(
            f"{held} {'leave' if ' and ' in held else 'leaves'} {sizes['train']} of the "
            f"{pool:,} images for training: hold out at most {pool - processes:,} in all."
        )
    batches = math.ceil(sizes["train"] // processes / data.batch_size)
    limit = trainer.get("limit_train_batches")
    if _limited(batches, limit) < 1:
        raise ConfigError(
            f"trainer.limit_train_batches={limit} leaves no training batch of the {batches} "
            f"per epoch ({sizes['train']:,} images, data.batch_size={data.batch_size}). Set it "
            f"to at least {1 if isinstance(limit, int) else round(1 / batches, 6)}, or null."
        )
    for key in ("max_epochs", "max_steps"):
        if trainer.get(key) == 0:
            raise ConfigError(
                f"trainer.{key}=0 trains nothing. Set a positive number (-1 for max_steps: "
                "no step limit), e.g. trainer.max_epochs=10."
            )
    if cfg.get("test"):
        test_limit = trainer.get("limit_test_batches")
        if sizes["test"] == 0 or _limited(1, test_limit) < 1:
            cause = (
                f"trainer.limit_test_batches={test_limit} leaves no test batch"
                if sizes["test"]
                else f"{_held_out(data)} leave no test images"
            )
            raise ConfigError(f"test=true, but {cause}. Set test=false, or keep a test batch.")
    per_epoch = _limited(batches, limit)
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    budget = math.inf if max_steps is None or max_steps < 0 else max_steps
    if max_epochs is not None and max_epochs >= 0:
        budget = min(budget, max_epochs * per_epoch)
    elif max_epochs is None and budget == math.inf:
        budget = 1000 * per_epoch  # Lightning's default of 1,000 epochs
    if resumed_step and resumed_step >= budget:
        epochs = resumed_step / per_epoch
        raise ConfigError(
            f"The checkpoint to resume from has trained {resumed_step:,} steps ({epochs:g} "
            f"epochs of {per_epoch}), all that trainer.max_epochs={max_epochs} and "
            f"trainer.max_steps={max_steps} allow: resuming would train nothing. Raise "
            f"trainer.max_epochs above {math.floor(epochs)} (or trainer.max_steps above "
            f"{resumed_step}) to train on."
        )
