"""At the end of a sweep (`-m`), a table of its jobs on the console, best validation ELBO first."""

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def job_rows(sweep_dir: Path) -> list[tuple[str, float | None, str, str]]:
    """(overrides, validation ELBO or None, status, folder) of each job folder, best first."""
    rows = []
    for summary_file in sweep_dir.glob("*/summary.json"):
        job = summary_file.parent
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, ValueError):
            continue
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
        elbo = summary.get("metrics", {}).get("val/elbo")
        rows.append((" ".join(overrides), elbo, summary.get("status", "?"), str(job)))
    return sorted(rows, key=lambda row: (row[1] is None, -(row[1] or 0.0)))


def format_table(rows: list[tuple[str, float | None, str, str]]) -> str:
    width = max([len("overrides"), *(len(r[0]) for r in rows)])
    lines = [f"{'overrides':<{width}}  {'val ELBO':>10}  {'status':<9}  run folder"]
    for overrides, elbo, status, folder in rows:
        value = f"{elbo:>10.2f}" if elbo is not None else f"{'-':>10}"
        lines.append(f"{overrides:<{width}}  {value}  {status:<9}  {folder}")
    return "\n".join(lines)


class SweepTable(Callback):
    """Hydra callback: prints the sweep's jobs (nats per data point) when the sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rows = job_rows(Path(config.hydra.sweep.dir))
        if rows:
            # print, not log: the logging set up for the last job would put it in its train.log.
            print(f"Sweep {config.hydra.sweep.dir} (ELBO in nats per data point, best first):")
            print(format_table(rows), flush=True)
