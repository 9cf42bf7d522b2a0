"""One row per epoch on the console and in train.log: the ELBOs, KL, speed and time so far."""

import logging
import math
import time

import lightning as L

log = logging.getLogger(__name__)

HEADER = (
    f"{'epoch':>6} {'train ELBO':>11} {'val ELBO':>11} {'val KL':>8} {'active':>6} "
    f"{'samples/s':>10} {'elapsed':>9}  (nats per data point; active: latent units in use; "
    "* best validation ELBO so far)"
)
# The validation metrics a row shows.
VAL_COLUMNS = ("elbo", "kl", "active_units")


class EpochTable(L.Callback):
    """Logs a row per training epoch (rank 0 only), in nats per data point:

    epoch, train ELBO (the mean over the epoch's data points), validation ELBO, KL and
    active units of that epoch (blank when validation did not run), training samples per
    second and the time since training started; ``*`` marks the best validation ELBO so far.
    An epoch's row is written once Lightning has logged its means: when the next epoch
    starts, or training ends. The time and the best ELBO are saved in checkpoints, so a
    resumed run counts the time of every process that trained it (up to the checkpoint each
    resumed from) and marks only what beats its whole history.
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._best = -math.inf
        self._pending: int | None = None
        self._val: dict[str, float] = {}
        self._header_written = False
        self.earlier_seconds = 0.0  # training time of the processes before this one
        self._restored_seconds = 0.0

    def elapsed(self) -> float:
        """Seconds of training so far, over every process of the run."""
        return self.earlier_seconds + time.perf_counter() - self._start

    def state_dict(self) -> dict[str, float]:
        return {"elapsed_s": self.elapsed(), "best_val_elbo": self._best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        # Taken up when training starts: testing a checkpoint restores its state too.
        self._restored_seconds = float(state.get("elapsed_s", 0.0))
        self._best = float(state.get("best_val_elbo", -math.inf))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self.earlier_seconds = self._restored_seconds

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        self._val = {k: float(metrics[f"val/{k}"]) for k in VAL_COLUMNS if f"val/{k}" in metrics}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_row(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_row(trainer)

    def _write_row(self, trainer: L.Trainer) -> None:
        epoch, val, self._pending, self._val = self._pending, self._val, None, {}
        if epoch is None or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        best = "elbo" in val and val["elbo"] > self._best
        self._best = max(self._best, val.get("elbo", -math.inf))
        row = [
            f"{epoch:>6}",
            _cell(metrics.get("train/elbo"), ".2f", 11),
            _cell(val.get("elbo"), ".2f", 11),
            _cell(val.get("kl"), ".2f", 8),
            _cell(val.get("active_units"), ".0f", 6),
            _cell(metrics.get("train/samples_per_sec"), ".0f", 10),
            f"{_clock(self.elapsed()):>9}",
        ]
        if not self._header_written:
            log.info("%s", HEADER)
            self._header_written = True
        log.info("%s%s", " ".join(row), " *" if best else "")


def _cell(value: float | None, spec: str, width: int) -> str:
    return " " * width if value is None else f"{value:>{width}{spec}}"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
