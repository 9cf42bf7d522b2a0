"""Callbacks of our own; the rest come from Lightning."""

import time

import lightning as L


class EpochTimer(L.Callback):
    """Logs `train/samples_per_sec`: training samples per second of each epoch.

    Timed from the epoch's start to its last training batch, so validation is not counted.
    Also keeps the wall-clock time (Unix seconds) at which the first optimiser step ended.
    """

    def __init__(self) -> None:
        self.samples_per_sec: list[float] = []
        self.first_step_unix_time: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch)
        self._end = time.perf_counter()
        if self.first_step_unix_time is None:
            self.first_step_unix_time = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rate = self._samples * trainer.world_size / (self._end - self._start)
        self.samples_per_sec.append(rate)
        pl_module.log("train/samples_per_sec", rate)


class LearningRate(L.Callback):
    """Logs `train/lr`: the learning rate of each epoch (first optimizer, first group).

    Unlike Lightning's LearningRateMonitor it needs no logger, and it goes through
    `pl_module.log`, so every logger gets it under the same key.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.optimizers:
            pl_module.log("train/lr", float(trainer.optimizers[0].param_groups[0]["lr"]))
