"""A resumed run's W&B record made whole from metrics.csv, which nothing can lose.

A killed process may never have delivered its last rows to W&B (an offline run file can be
empty), and the rows it did deliver after its last checkpoint are logged again by the run
that resumes from that checkpoint. So, resuming from a checkpoint of ``resume_step`` steps:

- offline, the W&B runs of the earlier processes (``<run>/wandb/offline-run-*-<id>``) are
  moved to ``<run>/wandb/superseded/``, kept as they were, and the resumed process's run,
  which has the same id, starts with every row of metrics.csv logged before ``resume_step``:
  it alone holds the whole history, each (step, metric) once (`wandb sync` of it uploads it);
- online, the server's history goes on: the rows of metrics.csv after the last step the
  server holds and before ``resume_step`` are sent. Rows a killed process delivered after its
  last checkpoint are on the server already and are logged again (W&B's rewind, in preview,
  would drop them): the limit stated in the README.

Images (samples, reconstructions) are not in metrics.csv: those of the earlier processes stay
in their superseded runs.
"""

import logging
import shutil
from pathlib import Path
from typing import Any

from vae_lightning.tracking.csv_logger import read_rows

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"
# metrics.csv's columns that are not metrics.
_NOT_METRICS = ("step",)


def earlier_offline_runs(wandb_dir: Path, run_id: str, current: Path) -> list[Path]:
    """The offline W&B runs of this id other than the current one, oldest first."""
    return sorted(
        p for p in wandb_dir.glob(f"offline-run-*-{run_id}") if p.resolve() != current.resolve()
    )


def set_aside(runs: list[Path], wandb_dir: Path) -> None:
    """Move earlier runs into wandb/superseded/ (a rename: nothing is copied or lost)."""
    if not runs:
        return
    folder = wandb_dir / SUPERSEDED
    folder.mkdir(exist_ok=True)
    for run in runs:
        target = folder / run.name
        if target.exists():  # set aside before, by a resume that was itself stopped
            shutil.rmtree(run)
        else:
            run.rename(target)


def rows_before(metrics_csv: Path, resume_step: int, after: int = -1) -> list[dict[str, Any]]:
    """The rows of metrics.csv with after < step < resume_step, as {metric: value} and step."""
    if not metrics_csv.is_file():
        return []
    _, rows = read_rows(metrics_csv)
    kept = []
    for row in rows:
        step = int(row["step"])
        if after < step < resume_step:
            values = {k: float(v) for k, v in row.items() if k not in _NOT_METRICS and v != ""}
            kept.append({"step": step, "metrics": values})
    return kept


def replay(logger: Any, run_dir: Path, resume_step: int, samples_per_step: int) -> int:
    """Complete the W&B record of a run resumed at ``resume_step`` (see the module); returns
    the number of rows sent. ``logger``: the started WandbLogger."""
    from vae_lightning.tracking.wandb_run import SAMPLES_SEEN

    experiment = logger.experiment
    after = -1
    if experiment.offline:
        wandb_dir = Path(experiment.dir).parent.parent  # <run>/wandb/offline-run-.../files
        current = Path(experiment.dir).parent
        set_aside(earlier_offline_runs(wandb_dir, experiment.id, current), wandb_dir)
    else:
        last = experiment.summary.get("trainer/global_step")
        after = int(last) if last is not None else -1
    rows = rows_before(run_dir / "metrics.csv", resume_step, after)
    for row in rows:
        step = row["step"]
        # As WandbLogger.log_metrics logs them: the step, and the samples seen at its end.
        extra = {"trainer/global_step": step, SAMPLES_SEEN: (step + 1) * samples_per_step}
        experiment.log({**row["metrics"], **extra})
    if rows:
        log.info("W&B: %d rows of metrics.csv before step %d replayed.", len(rows), resume_step)
    return len(rows)
