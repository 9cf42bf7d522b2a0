"""`metrics.csv`: a record that is only ever added to, across kills and resumes.

Lightning's CSV logger deletes an existing `metrics.csv` when it starts in a non-empty
folder, rewrites the file in place when a new column appears, and keeps rows in memory until
it flushes. This one never deletes a row, rewrites only through a temporary file that is
renamed into place, and writes every row as it is logged, so a kill loses nothing written
before it.

Resuming from a checkpoint taken after `resume_step` optimiser steps, the rows logged after
that checkpoint by the process that was stopped (``step >= resume_step``; a row's step is the
index of the last optimiser step it covers) are moved to `metrics_superseded.csv`, with the
step they were superseded at: the resumed run logs those steps again. A row the resumed run
logs again for the checkpoint's own last step (the epoch-end means Lightning recomputes after
an end-of-epoch checkpoint) is written once only.
"""

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from vae_lightning.atomic_files import atomic_write

SUPERSEDED_FILE = "metrics_superseded.csv"


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV file."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def write_rows_atomically(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Write a whole CSV file through a temporary file renamed into place."""
    with atomic_write(path, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _signature(row: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """What identifies a logged row: its step and the metrics it holds."""
    names = frozenset(k for k, v in row.items() if k != "step" and v not in ("", None))
    return str(row["step"]), names


class AppendOnlyWriter(ExperimentWriter):
    """Lightning's experiment writer, made append-only and resumable (see the module)."""

    def __init__(self, log_dir: str, resume_step: int | None = None) -> None:
        self.resume_step = resume_step
        self._written_at_resume: set[tuple[str, frozenset[str]]] = set()
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep an existing metrics.csv (Lightning deletes it here); set superseded rows aside."""
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        fields, rows = read_rows(path)
        self.metrics_keys = sorted(fields)
        if self.resume_step is None:
            return
        kept = [r for r in rows if int(r["step"]) < self.resume_step]
        superseded = [r for r in rows if int(r["step"]) >= self.resume_step]
        last = str(self.resume_step - 1)
        self._written_at_resume = {s for r in kept if (s := _signature(r))[0] == last}
        if superseded:
            self._append_superseded(path.parent / SUPERSEDED_FILE, fields, superseded)
            write_rows_atomically(path, fields, kept)

    def _append_superseded(self, path: Path, fields: list[str], rows: list[dict]) -> None:
        old_fields, old_rows = read_rows(path) if path.is_file() else ([], [])
        marked = [{**r, "superseded_at_step": self.resume_step} for r in rows]
        all_fields = list(dict.fromkeys([*old_fields, *fields, "superseded_at_step"]))
        write_rows_atomically(path, all_fields, old_rows + marked)

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics_dict, step)
        if _signature(self.metrics[-1]) in self._written_at_resume:
            self.metrics.pop()  # logged before the resume already

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        _, rows = read_rows(Path(self.metrics_file_path))
        write_rows_atomically(Path(self.metrics_file_path), fieldnames, rows)


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger writing `metrics.csv` through `AppendOnlyWriter`, row by row.

    ``resume_step``: the optimiser steps of the checkpoint training resumes from, if any.
    """

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("flush_logs_every_n_steps", 1)
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendOnlyWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendOnlyWriter(self.log_dir, self.resume_step)
        return self._experiment
