"""Weights & Biases runs: a logger that never stops a run, started and finished once per job.

The `logger.wandb` config node is Lightning's WandbLogger (our subclass below) with a few keys
resolved before the run starts (see `wandb_options`): the mode, the run's name and group, and
``config``, the whole resolved Hydra config. A W&B run that cannot start (no service, no network,
bad credentials) falls back to offline, then to no W&B at all, each said once in the log; the
other loggers and checkpoints go on.
"""

import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vae_lightning.config import processes_of
from vae_lightning.tracking.csv_logger import CSVLogger
from vae_lightning.tracking.wandb_options import (
    HYDRA_KEYS,
    import_wandb,
    is_wandb_node,
    no_field_docstrings,
    resolve_mode,
    run_name_and_group,
)
from vae_lightning.tracking.wandb_replay import replay

log = logging.getLogger(__name__)

# W&B settings a run starts with, under those of `logger.wandb.settings`: wandb.init may wait
# INIT_TIMEOUT_S for the W&B server before the run goes on offline; W&B's info lines (its
# header and the end-of-run history and summary block) are left out, its warnings kept, and
# `start_wandb` logs one line saying where the run is.
INIT_TIMEOUT_S = 30
DEFAULT_SETTINGS = {"init_timeout": INIT_TIMEOUT_S, "show_info": False}
# Aggregates shown in the runs table: the best ELBO, not the last one.
SUMMARIES = {f"{split}/elbo": "max" for split in ("train", "val", "test")}
# Training samples seen (optimiser steps x the global minibatch): the x axis of the ELBO
# charts, as in Figure 2 of Kingma & Welling.
SAMPLES_SEEN = "trainer/samples_seen"
# W&B Launch's job inputs: staged only through this module, which wandb.init imports to apply
# them (about 0.4 s of imports, a third of what W&B adds before the first optimiser step).
LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, except that a failing W&B call never stops training.

    The first error is logged once and W&B is left off for the rest of the run; the other
    loggers (CSV) and the checkpoints are untouched.
    """

    _broken = False
    # Training samples seen so far, set once the trainer exists. (Lightning's logged step lags
    # the optimiser steps by one at validation, so it is not derived from `step`.)
    samples_seen: Callable[[], int] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns about anonymous=None
            self._wandb_init.pop("anonymous", None)

    def _guard(self, what: str, call, *args: Any, **kwargs: Any) -> Any:
        if self._broken:
            return None
        try:
            return call(*args, **kwargs)
        except Exception as err:  # W&B must never end the run
            self._broken = True
            log.warning(
                "W&B failed while %s (%s: %s); W&B logging is off for the rest of this run, "
                "the CSV log and the checkpoints go on.",
                what,
                type(err).__name__,
                err,
            )
            return None

    def log_hyperparams(self, params: Any) -> None:
        self._guard("logging hyperparameters", super().log_hyperparams, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.samples_seen is not None:
            metrics = {**metrics, SAMPLES_SEEN: self.samples_seen()}
        self._guard("logging metrics", super().log_metrics, metrics, step)

    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs) -> None:
        self._guard("logging images", super().log_image, key, images, step, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guard("logging a checkpoint", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guard("finalizing the run", super().finalize, status)


@contextmanager
def _no_launch_import_without_inputs() -> Iterator[None]:
    """Within: a W&B run starts without importing W&B Launch when no job inputs are staged.

    Inputs are staged only through `LAUNCH_INPUTS`; while it is not imported there are none,
    and the run skips the step of wandb.init that imports it to apply them.
    """
    from wandb.sdk.wandb_run import Run

    step = "_detect_and_apply_job_inputs"
    if LAUNCH_INPUTS in sys.modules or step not in vars(Run):
        yield
        return
    original = vars(Run)[step]
    setattr(Run, step, lambda run: None)
    try:
        yield
    finally:
        setattr(Run, step, original)


def _start(node: DictConfig, mode: str, extra: dict[str, Any]) -> WandbLogger:
    options = OmegaConf.to_container(node, resolve=True)
    target = options.pop("_target_")
    for key in HYDRA_KEYS:
        options.pop(key, None)
    # Not through hydra's instantiate: `config` (the run's config) is one of its own arguments.
    logger = get_class(target)(**{**options, **extra, "mode": mode})
    if rank_zero_only.rank == 0:
        with _no_launch_import_without_inputs(), no_field_docstrings():
            experiment = logger.experiment  # starts the W&B run now, so failures show up here
        for metric, summary in SUMMARIES.items():
            experiment.define_metric(metric, step_metric=SAMPLES_SEEN, summary=summary)
    return logger


def create_loggers(
    cfg: DictConfig, resume_step: int | None = None, wandb_run_id: str | None = None
) -> list[Logger]:
    """The loggers of `cfg.logger`; W&B ones started now, falling back to offline, then off.

    Resuming, the CSV logger continues `metrics.csv` from `resume_step` and the W&B logger
    continues the W&B run `wandb_run_id` (W&B's resume), first completed from metrics.csv
    (`wandb_replay`), so a training is one record however often it was interrupted.
    """
    loggers = []
    for key, node in (cfg.get("logger") or {}).items():
        if not node or "_target_" not in node:
            continue
        if is_wandb_node(node):
            if (logger := start_wandb(key, node, cfg, wandb_run_id)) is not None:
                if resume_step is not None and rank_zero_only.rank == 0:
                    samples_per_step = cfg.data.batch_size * (processes_of(cfg.trainer) or 1)
                    run_dir = Path(cfg.paths.output_dir)
                    logger._guard(
                        "replaying metrics.csv",
                        replay,
                        logger,
                        run_dir,
                        resume_step,
                        samples_per_step,
                    )
                loggers.append(logger)
        elif issubclass(get_class(node._target_), CSVLogger):
            loggers.append(instantiate(node, resume_step=resume_step))
        else:
            loggers.append(instantiate(node))
    return loggers


def wandb_run_id(loggers: list[Logger]) -> str | None:
    """The id of this process's W&B run, if one was started."""
    for logger in loggers:
        if isinstance(logger, LightningWandbLogger) and rank_zero_only.rank == 0:
            return logger.experiment.id
    return None


def start_wandb(
    key: str, node: DictConfig, cfg: DictConfig, run_id: str | None = None
) -> Logger | None:
    wandb = import_wandb()
    name, group = run_name_and_group()
    extra: dict[str, Any] = {
        "name": node.get("name") or name,
        "group": node.get("group") or group,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if run_id and not node.get("id"):
        extra.update(id=run_id, resume="allow")
    settings = node.get("settings")
    extra["settings"] = {
        **DEFAULT_SETTINGS,
        **(OmegaConf.to_container(settings, resolve=True) if settings else {}),
    }
    if rank_zero_only.rank == 0:  # W&B reads show_info from its process-wide settings only
        wandb.setup(settings=wandb.Settings(show_info=extra["settings"]["show_info"]))
    mode = resolve_mode(node.get("mode"))
    tries = [mode] if mode == "offline" else [mode, "offline"]
    for attempt in tries:
        try:
            logger = _start(node, attempt, extra)
        except Exception as err:
            if wandb.run is not None:
                wandb.finish(exit_code=1)
            then = "going on offline" if attempt != tries[-1] else "going on without W&B"
            log.warning(
                "W&B could not start a run in %s mode (%s: %s); %s.",
                attempt,
                type(err).__name__,
                err,
                then,
            )
            continue
        if rank_zero_only.rank == 0:
            if attempt == "offline":
                run_dir = Path(logger.experiment.dir).parent
                log.info("W&B run saved offline; upload it with `wandb sync %s`.", run_dir)
            elif logger.experiment.url:
                log.info("W&B run: %s", logger.experiment.url)
        return logger
    return None


def finish_wandb(loggers: list[Logger], failed: bool = False) -> None:
    """End this job's W&B run, so that each job of a multirun is a run of its own."""
    if not any(isinstance(lg, LightningWandbLogger) for lg in loggers):
        return
    if rank_zero_only.rank != 0:
        return
    wandb = import_wandb()
    try:
        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)
            # finish() returns before the service has written all of the run to disk; its
            # teardown waits for that, so the run is complete before the next job starts.
            wandb.teardown()
    except Exception as err:
        log.warning("W&B failed to finish the run (%s: %s).", type(err).__name__, err)
