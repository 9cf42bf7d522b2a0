"""Callbacks of our own; the rest come from Lightning."""

import math
import time
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from vae_lightning.errors import NonFiniteLossError


class EpochTimer(L.Callback):
    """Logs `train/samples_per_sec`: training samples per second of each epoch.

    Timed from the epoch's start to its last training batch, so validation is not counted;
    on a CUDA device the last batch waits for the device's queued work (one synchronisation
    per epoch). Also keeps the wall-clock time (Unix seconds) at which the first optimiser
    step ended.
    """

    def __init__(self) -> None:
        self.samples_per_sec: list[float] = []
        self.first_step_unix_time: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._end = time.perf_counter()
        self._samples = 0

    # A run resumed mid-epoch starts training without starting an epoch: time from here.
    on_train_start = on_train_epoch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch)
        if batch_idx + 1 == trainer.num_training_batches and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._end = time.perf_counter()
        if self.first_step_unix_time is None:
            self.first_step_unix_time = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._samples == 0:  # resumed after the epoch's last batch: nothing timed here
            return
        rate = self._samples * trainer.world_size / (self._end - self._start)
        self.samples_per_sec.append(rate)
        pl_module.log("train/samples_per_sec", rate, sync_dist=True)  # mean over processes


class StopOnNonFiniteLoss(L.Callback):
    """Stops training at the first NaN or infinite loss, naming its step.

    Every step's loss is checked on its device; the host reads the result every
    `every_n_steps` steps, at the end of each epoch and before any checkpoint is written.
    ``None`` means every step on the CPU (where reading costs nothing) and every
    ``trainer.log_every_n_steps`` steps on accelerators, where a read per step would stall
    the device. Read at the bad step, the run stops before its gradients are applied; read
    later, the error still names the first bad step. Either way no checkpoint is written
    after it, so ``last.ckpt`` and the best checkpoint are the last good ones. Each process
    checks its own loss; when one stops, Lightning ends the others.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps
        self._every = every_n_steps or 1
        self._first_bad: torch.Tensor | None = None  # first non-finite step, -1 if none

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_steps is None:
            on_cpu = pl_module.device.type == "cpu"
            self._every = 1 if on_cpu else trainer.log_every_n_steps
        self._first_bad = torch.full((), -1, dtype=torch.long, device=pl_module.device)

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        step = trainer.global_step
        if self._every == 1:  # one read of the (scalar) loss: the cheapest check on the CPU
            if not math.isfinite(loss.item()):
                self._stop(trainer, step, loss)
            return
        # Remember the first bad step on the device, without reading it back.
        first, finite = self._first_bad, torch.isfinite(loss.detach()).all()
        self._first_bad = torch.where(~finite & (first < 0), step, first)
        if (step + 1) % self._every == 0:
            self._stop_if_bad(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_bad(trainer)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._stop_if_bad(trainer)

    def _stop_if_bad(self, trainer: L.Trainer) -> None:
        if self._first_bad is not None and (first := int(self._first_bad)) >= 0:
            self._stop(trainer, first)

    @staticmethod
    def _stop(trainer: L.Trainer, step: int, loss: torch.Tensor | None = None) -> None:
        now = trainer.global_step
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        value = "not finite" if loss is None else f"{loss.detach().float().item()}"
        raise NonFiniteLossError(
            f"The training loss is {value} at step {step} (epoch {trainer.current_epoch}, rank "
            f"{trainer.global_rank}); training stopped "
            + ("before applying it" if step == now else f"at step {now}")
            + ". The last good checkpoint is kept"
            + (f": {last}" if last else "")
            + ". Lower model.optimizer.lr, check the data, or use trainer.precision=32-true."
        )


class RngState(L.Callback):
    """Saves and restores torch's random number generators in checkpoints.

    Dynamic binarisation and the reparameterisation noise draw from the global generators,
    which Lightning does not checkpoint; with this callback a run resumed from a checkpoint
    draws the same numbers as one that never stopped. The state saved is the one at the end
    of the last completed training batch (a copy of a few kB per step), so a checkpoint taken
    while a batch is under way (SLURM's SIGUSR1 handler) resumes that batch with its own draws.
    Under DDP each rank's state is kept and restored to the same rank (when resumed on the
    same number of processes).
    """

    def __init__(self) -> None:
        self._after_last_batch: dict[str, Any] | None = None

    @staticmethod
    def _local_state() -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._after_last_batch = self._local_state()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._after_last_batch = None  # nothing drawn for this epoch yet

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        local = self._after_last_batch or self._local_state()
        states = [local]
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            states = [None] * trainer.world_size
            dist.all_gather_object(states, local)
        checkpoint["rng_states"] = states

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get("rng_states")
        if not states or len(states) != trainer.world_size:
            return  # saved by another number of processes: keep the seeded generators
        state = states[trainer.global_rank]
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
