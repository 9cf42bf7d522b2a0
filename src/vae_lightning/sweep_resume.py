"""Resuming a sweep leaves its completed jobs' files as they were (a Hydra callback).

Re-running a sweep's `-m` command with `auto_resume=true` skips the jobs that completed, but
Hydra writes each job's `.hydra/config.yaml`, `hydra.yaml` and `overrides.yaml` anew before the
job starts (now with `auto_resume=true` among the overrides) and opens its `train.log`. For a
job whose folder holds a completed run, this callback puts those files back as they were, with
their times, and detaches the job's log file, so that nothing of the finished job changes.
Jobs run in this process (Hydra's basic launcher); a launcher that starts other processes
(joblib, submitit) instantiates its callbacks there without this snapshot.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vae_lightning.atomic_files import atomic_write


class KeepCompletedJobs(Callback):
    def __init__(self) -> None:
        self._saved: dict[Path, dict[Path, tuple[bytes, int, int]]] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for summary in Path(config.hydra.sweep.dir).glob("*/summary.json"):
            try:
                completed = json.loads(summary.read_text()).get("status") == "completed"
            except (OSError, ValueError):
                continue
            if completed:
                files = (summary.parent / ".hydra").glob("*.yaml")
                self._saved[summary.parent.resolve()] = {
                    path: (path.read_bytes(), path.stat().st_atime_ns, path.stat().st_mtime_ns)
                    for path in files
                }

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = Path(config.hydra.runtime.output_dir).resolve()
        if (saved := self._saved.get(job)) is None:
            return
        for path, (content, atime, mtime) in saved.items():
            with atomic_write(path, "wb") as file:
                file.write(content)
            os.utime(path, ns=(atime, mtime))
        root = logging.getLogger()
        for handler in list(root.handlers):
            if (
                isinstance(handler, logging.FileHandler)
                and Path(handler.baseFilename).parent == job
            ):
                root.removeHandler(handler)
                handler.close()
