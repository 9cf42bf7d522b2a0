"""Ctrl-C (SIGINT) and SIGTERM stop training cleanly and keep the work.

Either signal stops training at the end of the optimiser step under way (Lightning's own
SIGTERM mechanism: its handler flags the trainer, which raises `SIGTERMException` at the end
of the step and on every process under DDP), and a checkpoint of that step is written to
``last.ckpt``, from which `auto_resume=true` continues. A second Ctrl-C stops at once, without
a checkpoint. The training entry point then marks the run ``interrupted`` and exits with
128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells do.
"""

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
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
        lightning_sigterm = self._previous.get(signal.SIGTERM)
        if callable(lightning_sigterm):
            lightning_sigterm(signal.SIGTERM, frame)  # flags the trainer, tells DDP processes

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
