"""Callbacks that inject faults into a training run, for tests (added with +callbacks.X=...)."""

import os
import signal

import lightning as L
import torch


class KillAtStep(L.Callback):
    """SIGKILLs this process when training reaches global step `step` (mid-epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonAtStep(L.Callback):
    """Fills the model's first parameter with NaN at global step `step`: the loss turns NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
