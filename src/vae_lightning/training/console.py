"""What a run prints: Lightning's and PyTorch's notices that are no news to our users are dropped.

Each is named by its text, so any other warning still shows:
- Lightning's "Tip" to install litlogger, printed by every Trainer, and its lines on which
  accelerators are available ("GPU available: False, used: False", TPU, HPU): the run's
  config.yaml and summary.json say what it ran on;
- Lightning's warning that the checkpoint folder "exists and is not empty", which is the
  expected case of every resume, and its lines on which checkpoint it restores (train.py
  logs which one it resumes from and which one it tests);
- PyTorch's deprecation of `isinstance(treespec, LeafSpec)`, raised by Lightning's own code;
- Lightning's "does not have many workers": our data sets are tensors in memory, which a
  data loader serves without worker processes;
- alembic's "setup plugin ..." lines, logged at import by Optuna's storage code in a
  `hparams_search=optuna` sweep;
- Optuna's info lines ("A new study created in memory with name: ..."), by `QuietOptuna`:
  Hydra's sweeper already logs the study's name, storage and sampler.
"""

import logging
import warnings
from typing import Any

from hydra.experimental.callback import Callback
from lightning.pytorch.callbacks import TQDMProgressBar
from omegaconf import DictConfig

_DROPPED_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"The '\w+_dataloader' does not have many workers",
    r"Checkpoint directory .* exists and is not empty",
)
_DROPPED_LOG_RECORDS = (
    "💡 Tip: For seamless cloud logging",
    "GPU available: ",
    "TPU available: ",
    "HPU available: ",
    # Which checkpoint is restored or tested: our own lines say it once.
    "Restoring states from the checkpoint path at ",
    "Restored all states from the checkpoint at ",
    "Loaded model weights from the checkpoint at ",
)
# Where Lightning's rank_zero_info writes.
_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DROPPED_LOG_RECORDS)


def drop_third_party_notices() -> None:
    """Silence the notices above in this process (and the processes it starts the same way)."""
    for message in _DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices())


class QuietOptuna(Callback):
    """Hydra callback of `hparams_search=optuna`: Optuna logs its warnings only.

    Set as the sweep starts, in the process that runs the study (importing Optuna in every
    run would cost seconds)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


class ProgressBarAwareHandler(logging.StreamHandler):
    """The console's log handler: a line logged while a progress bar is drawn clears the bar,
    takes a line of its own and the bar is drawn again below it (tqdm's external write mode),
    instead of being glued onto the end of the bar's line."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


class ProgressBar(TQDMProgressBar):
    """Lightning's progress bar without the logger's version (``v_num``, a W&B run id here,
    which the run's one log line already names)."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
