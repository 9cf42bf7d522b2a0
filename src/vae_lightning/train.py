"""Train a VAE: `python -m vae_lightning.train [key=value ...]` (Hydra app, conf/train.yaml)."""

import logging
import os
import platform
import resource
import shlex
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from vae_lightning.cli import exit_with_message, run_app
from vae_lightning.config import (
    apply_dataset_defaults,
    check_networks,
    check_train_config,
    config_dir,
    data_dir_key,
    processes_of,
)
from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.errors import ConfigError, RunInterrupted, UserError
from vae_lightning.models.networks import DEFAULT_DECODER, DEFAULT_ENCODER
from vae_lightning.schema import check_schema
from vae_lightning.tracking.wandb_options import check_wandb_config
from vae_lightning.tracking.wandb_run import (
    WandbLogger,
    create_loggers,
    finish_wandb,
    wandb_run_id,
)
from vae_lightning.training.budget import check_budget
from vae_lightning.training.callbacks import EpochTimer
from vae_lightning.training.checkpointing import resume_point
from vae_lightning.training.console import drop_third_party_notices
from vae_lightning.training.cuda_check import pytorch_cuda_check
from vae_lightning.training.distributed import launched_rank, use_job_command_for_ddp_children
from vae_lightning.training.epoch_table import EpochTable
from vae_lightning.training.interrupts import GracefulInterrupt
from vae_lightning.training.run_folder import RunFolder, refuse_to_overwrite

log = logging.getLogger(__name__)
# Nodes that take any key: wandb.init's options, checked by check_wandb_config.
OPEN_NODES = ("logger.wandb",)
NETWORKS = (("encoder", DEFAULT_ENCODER), ("decoder", DEFAULT_DECODER))


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Objects of a config group whose entries each have a `_target_` (callbacks, loggers)."""
    return [instantiate(node) for node in (group or {}).values() if node and "_target_" in node]


def check_devices(trainer_cfg: DictConfig) -> None:
    """Refuse a GPU trainer on a machine without a CUDA GPU, before anything is created."""
    if trainer_cfg.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={trainer_cfg.accelerator} needs a CUDA GPU, and none is visible "
            "here. Train on the CPU with trainer=cpu (or trainer=ddp_cpu for DDP on the CPU)."
        )


def check_config(cfg: DictConfig) -> None:
    """The checks of a training config that need no data: its keys and types, its values and
    the rules between them, W&B's options, the devices. Fills in the data set's defaults.
    A sweep runs them on every job's config before the first job starts (launch_checks)."""
    check_schema(cfg, "train", config_dir(), open_nodes=OPEN_NODES)
    apply_dataset_defaults(cfg)
    check_train_config(cfg)
    check_wandb_config(cfg)
    check_devices(cfg.trainer)


def train(cfg: DictConfig) -> dict[str, float]:
    """Check the input, train, test the best checkpoint; returns the final metrics.

    Everything that can be checked is checked before this process writes anything: the
    config, the devices, the data files and the checkpoint to resume from. Then rank 0 claims
    the run folder (one process at a time) and marks it running in `summary.json`. A run that
    fails before it has written anything leaves no folder behind.
    """
    run = RunFolder(cfg.paths.output_dir)
    rank_zero = launched_rank() == 0  # other ranks share rank 0's folder, which rank 0 keeps
    try:
        check_config(cfg)
        if rank_zero and not cfg.get("auto_resume"):
            refuse_to_overwrite(run)
        if run.state() == "completed" and cfg.get("auto_resume"):
            log.info("%s already holds a completed run; nothing to do.", run.path)
            return run.read_summary().get("metrics", {})
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        if HydraConfig.initialized():
            datamodule.data_dir_key = data_dir_key(HydraConfig.get().overrides.task)
        ckpt_path, resumed = resume_point(cfg, run)
        if rank_zero:
            datamodule.prepare_data()  # missing or corrupt files fail here, before any training
            check_networks(cfg.model, datamodule.image_shape)
            sizes = datamodule.split_sizes()
            # A run resumed in its own folder may have trained its whole budget before it was
            # stopped: it still has its test and summary to write.
            resumed_step = 0 if cfg.get("auto_resume") else resumed.get("step", 0)
            check_budget(cfg, sizes, processes_of(cfg.trainer) or 1, resumed_step)
        if rank_zero:
            run.claim()
    except UserError:
        if rank_zero:
            run.remove_if_empty()
        raise
    if ckpt_path is not None:
        log.info("Resuming from %s (step %d)", ckpt_path, resumed["step"])
    try:
        return train_in(run, cfg, datamodule, ckpt_path, resumed, rank_zero)
    finally:
        run.release()


def train_in(
    run: RunFolder,
    cfg: DictConfig,
    datamodule: Any,
    ckpt_path: Path | None,
    resumed: dict[str, Any],
    rank_zero: bool,
) -> dict[str, float]:
    """Train into the claimed run folder, keeping its summary.json's status true."""
    if isinstance(datamodule, InMemoryDataModule):
        datamodule.start_loading()  # read while the loggers and the Trainer start
    if rank_zero:
        # A run resumed after a failure or an interrupt is running again: the old error or
        # interrupt no longer describes it (resumed_from keeps where it went on from).
        stale = ("error", "interrupted")
        summary = {k: v for k, v in run.read_summary().items() if k not in stale}
        started = datetime.now().isoformat(timespec="seconds")
        history = summary.get("resumed_from", []) + ([resumed] if resumed else [])
        run.write_summary(
            {
                **summary,
                "status": "running",
                "started_at": summary.get("started_at", started),
                "resumed_from": history,
            }
        )
    model = instantiate(cfg.model, image_shape=list(datamodule.image_shape))
    loggers = create_loggers(
        cfg,
        resume_step=resumed.get("step", 0) if cfg.get("auto_resume") or resumed else None,
        wandb_run_id=resumed.get("wandb_run_id") or run.read_summary().get("wandb_run_id"),
    )
    if rank_zero and (run_id := wandb_run_id(loggers)):
        run.update_summary(wandb_run_id=run_id)
    failed = True
    try:
        metrics = fit_and_test(cfg, datamodule, model, loggers, run, ckpt_path)
        failed = False
        return metrics
    except RunInterrupted as err:
        if rank_zero:
            run.update_summary(
                status="interrupted",
                interrupted={"signal": err.signal_name, "step": err.step},
                last_checkpoint=err.checkpoint,
            )
        raise
    except BaseException as err:
        if rank_zero:
            run.update_summary(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        finish_wandb(loggers, failed)  # each job of a multirun is a W&B run of its own


def fit_and_test(
    cfg: DictConfig,
    datamodule: Any,
    model: L.LightningModule,
    loggers: list,
    run: RunFolder,
    ckpt_path: Path | None,
) -> dict[str, float]:
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False
    )
    samples_per_step = cfg.data.batch_size * trainer.world_size
    parameters = sum(p.numel() for p in model.parameters())
    log.info("Training %s: %s parameters", model_description(cfg.model), f"{parameters:,}")
    for logger in loggers:
        logger.log_hyperparams({"num_params": parameters})
        if isinstance(logger, WandbLogger):  # optimiser steps x the global minibatch
            logger.samples_seen = lambda: trainer.global_step * samples_per_step
    if trainer.is_global_zero:
        OmegaConf.save(cfg, run.path / "config.yaml", resolve=True)

    if HydraConfig.initialized():
        use_job_command_for_ddp_children()
    start = time.perf_counter()
    with pytorch_cuda_check(trainer):
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException as err:
            raise interrupted(trainer) from err
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.get("test"):
            best = trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path
            if best:
                score = trainer.checkpoint_callback.best_model_score
                shown = f", validation ELBO {float(score):.2f}" if score is not None else ""
                log.info("Testing the best checkpoint%s: %s", shown, best)
            else:
                log.info("No best checkpoint (no validation ran): testing the final weights.")
            # The test metrics are in the summary below; Lightning's table would repeat them.
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if trainer.is_global_zero:
        write_summary(cfg, trainer, metrics, time.perf_counter() - start, run)
    return metrics


def model_description(model: DictConfig) -> str:
    """The model in a few words, e.g. 'a VAE (elbo, bernoulli decoder, hidden [500], latent
    20)', or with other networks 'a VAE (elbo, bernoulli decoder, ConvEncoder + conv_decoder,
    latent 20)'."""
    targets = [(model.get(role) or default)["_target_"] for role, default in NETWORKS]
    if targets == [default["_target_"] for _, default in NETWORKS]:
        networks = f"hidden {list(model.hidden_dims)}"
    else:
        networks = " + ".join(target.rsplit(".", 1)[-1] for target in targets)
    return (
        f"a VAE ({model.objective}, {model.likelihood} decoder, {networks}, "
        f"latent {model.latent_dim})"
    )


def interrupted(trainer: L.Trainer) -> RunInterrupted:
    """The interruption of training by a signal, with the checkpoint written at its step."""
    stop = next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)
    signum = stop.signal if stop is not None and stop.signal else signal.SIGTERM
    checkpoint = str(stop.checkpoint) if stop is not None and stop.checkpoint else None
    return RunInterrupted(signum.name, 128 + signum.value, trainer.global_step, checkpoint)


def resume_command(run: Path) -> str:
    """The command that continues this run in its folder: its overrides and auto_resume."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    kept = [
        o for o in overrides if not o.lstrip("+~").startswith(("hydra.run.dir=", "auto_resume="))
    ]
    args = [*kept, f"hydra.run.dir={run}", "auto_resume=true"]
    return " ".join(["python -m vae_lightning.train", *map(shlex.quote, args)])


def machine(device: torch.device) -> str:
    """The hardware a run used, as reports quote it: the GPU, else the CPU model and count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
        if line.startswith("model name")
    ]
    return f"{os.cpu_count()} x {models[0] if models else platform.machine()} CPU"


def write_summary(
    cfg: DictConfig, trainer: L.Trainer, metrics: dict[str, float], seconds: float, run: RunFolder
) -> None:
    """`summary.json` of the completed run (atomically) and a short table in the log."""
    timer = next((c for c in trainer.callbacks if isinstance(c, EpochTimer)), EpochTimer())
    table = next((c for c in trainer.callbacks if isinstance(c, EpochTable)), EpochTable())
    rates = timer.samples_per_sec
    checkpoint = trainer.checkpoint_callback
    last = run.path / "checkpoints" / "last.ckpt"
    summary = run.update_summary(
        status="completed",
        finished_at=datetime.now().isoformat(timespec="seconds"),
        data=trainer.datamodule.name,
        binarize=cfg.data.get("binarize", "none"),
        # The digest of a user's own images or tensor file as read (data/own_data.py).
        data_sha256=getattr(trainer.datamodule, "sha256", None),
        latent_dim=cfg.model.latent_dim,
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        # Optimiser steps x the global minibatch (per-device batch size x processes).
        samples_seen=trainer.global_step * cfg.data.batch_size * trainer.world_size,
        machine=machine(trainer.strategy.root_device),
        train_samples_per_sec_median=statistics.median(rates) if rates else None,
        # This process's time and the training time of the processes before it, up to the
        # checkpoint each resumed from (saved in the checkpoints).
        wall_time_s=round(seconds + table.earlier_seconds, 2),
        process_wall_time_s=round(seconds, 2),
        first_step_unix_time=timer.first_step_unix_time,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        best_checkpoint=checkpoint.best_model_path if checkpoint else None,
        last_checkpoint=str(last) if last.is_file() else None,
        metrics={k: metrics[k] for k in sorted(metrics) if not k.endswith("_step")},
    )
    # The epochs' median speed, as summary.json holds it, not the last epoch's.
    rows = [(k, f"{v:.3f}") for k, v in summary["metrics"].items() if k != "train/samples_per_sec"]
    if rates:
        median = summary["train_samples_per_sec_median"]
        rows.append(("train samples/s (median epoch)", f"{median:.0f}"))
    rows.append(("wall time (s)", f"{summary['wall_time_s']:.1f}"))
    width = max(len(k) for k, _ in rows)
    log.info(
        "Summary (nats per data point; ELBO higher is better):\n%s\nRun folder: %s",
        "\n".join(f"  {k:<{width}}  {v:>12}" for k, v in rows),
        run.path,
    )


# Set by Lightning's DDP launcher in the process that starts the others.
_LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def end_distributed_run(environ_before: set[str]) -> None:
    """Close the DDP process group and drop the launcher's environment variables, so the next
    job of a multirun starts its own processes instead of waiting for the last job's ones."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name in _LAUNCHER_VARIABLES:
        if name not in environ_before:
            os.environ.pop(name, None)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Train; returns the validation ELBO, the objective of sweepers such as Optuna.

    A single run that fails on a `UserError` exits with status 2 and its message. In a
    multirun, a failing job is logged with its number and overrides and its exception is
    handed to Hydra, which marks the job failed and goes on with the other jobs (the basic
    sweeper raises the first failure once its batch of jobs is done, and `run_app` exits
    with status 2 if it is a `UserError`; Optuna records the trial as failed).
    """
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    drop_third_party_notices()  # again: a launcher may run this job in a process of its own
    environ_before = set(os.environ)
    try:
        metrics = train(cfg)
    except RunInterrupted as err:
        end_distributed_run(environ_before)
        log.warning(
            "Interrupted by %s at step %d%s. Resume with: %s",
            err.signal_name,
            err.step,
            f"; checkpoint {err.checkpoint}" if err.checkpoint else "",
            resume_command(Path(cfg.paths.output_dir)),
        )
        sys.exit(err.exit_code)
    except Exception as err:
        end_distributed_run(environ_before)
        if multirun:
            job = HydraConfig.get().job
            log.error("Job %s (%s) failed: %s", job.num, job.override_dirname or "-", err)
        elif isinstance(err, UserError):
            exit_with_message(err)
        raise
    end_distributed_run(environ_before)
    return metrics.get("val/elbo")


def main() -> None:
    """`python -m vae_lightning.train` and `vae-train`."""
    run_app(hydra_main)


if __name__ == "__main__":
    main()
