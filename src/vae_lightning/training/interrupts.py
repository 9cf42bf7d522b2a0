"""Ctrl-C (SIGINT) and SIGTERM stop training cleanly and keep the work.

Either signal stops training at the end of the optimiser step under way (Lightning's own
SIGTERM mechanism: its handler flags the trainer, which raises `SIGTERMException` at the end
of the step and on every process under DDP), and a checkpoint of that step is written to
``last.ckpt``, from which `auto_resume=true` continues. A signal that comes during a
validation, or just before one, stops training once the validation is done: Lightning
would stop it after its current batch, and a run resumed from there skips the rest of that
validation and logs the next ones over other batches. A second Ctrl-C stops at once, without
a checkpoint. The training entry point then marks the run ``interrupted`` and exits with
128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells do.
"""

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt(L.Callback):
    """Turns SIGINT into Lightning's SIGTERM stop and checkpoints the step it stopped at.

    After an interrupt, ``signal`` is the signal received and ``checkpoint`` the file written.
    """

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.checkpoint: Path | None = None
        self._previous: dict[int, Any] = {}
        self._validating = False  # a signal now waits for the validation's end
        self._deferred = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has installed its SIGTERM handler by now (it does so as fit starts).
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed again: stop now
        self.signal = signal.Signals(signum)
        if self._validating:
            self._deferred = True
        else:
            self._stop_lightning()

    def _stop_lightning(self) -> None:
        lightning_sigterm = self._previous.get(signal.SIGTERM)
        if callable(lightning_sigterm):
            lightning_sigterm(signal.SIGTERM, None)  # flags the trainer, tells DDP processes

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        self._validating = True
        if trainer.received_sigterm:  # came during the step before: wait for the validation
            trainer._signal_connector.received_sigterm = False
            self._deferred = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validating = False
        if self._deferred:
            self._deferred = False
            self._stop_lightning()  # training stops at the end of the step that validated

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.checkpoint_callback is None:
            return
        self.checkpoint = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
        trainer.save_checkpoint(self.checkpoint, weights_only=False)  # optimiser and loops too

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
