"""Callbacks that inject faults into a training run, for tests (added with +callbacks.X=...)."""

import os
import signal

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig


class KillAtStep(L.Callback):
    """SIGKILLs this process when training reaches global step `step` (mid-epoch); with
    `job`, only in that job of a multirun."""

    def __init__(self, step: int, job: int | None = None) -> None:
        self.step, self.job = step, job

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.job is not None and HydraConfig.get().job.num != self.job:
            return
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalInValidationAtStep(L.Callback):
    """Sends this process `signal` (default SIGKILL) as validation starts at global step
    `step`: after the training batches of an epoch (and a checkpoint saved at the last of
    them), before its end."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step, self.signal = step, signal

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class PoisonAtStep(L.Callback):
    """Fills the model's first parameter with NaN at global step `step`: the loss turns NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


class KillDuringCheckpointWrite(L.Callback):
    """SIGKILLs this process halfway through writing the first checkpoint at or after `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.global_step < self.step:
            return
        from vae_lightning.training import checkpointing

        def dies_mid_write(obj, file, *args, **kwargs):
            file.write(b"the first bytes of a checkpoint")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        checkpointing.torch.save = dies_mid_write


class SignalAtStep(L.Callback):
    """Sends this process `signal` (default SIGUSR1, SLURM's pre-emption warning) as training
    starts global step `step`."""

    def __init__(self, step: int, signal: str = "SIGUSR1") -> None:
        self.step, self.signal = step, signal

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))
