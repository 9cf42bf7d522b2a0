"""A run folder: claimed by one training process at a time, with a status saying what it holds.

`summary.json` is the folder's record, always replaced whole (written to a temporary file and
renamed): ``status`` is ``running`` while a process trains into it, ``completed`` once it has
trained and tested, ``failed`` after an error (with the error), and stays ``running`` after a
kill; `RunFolder.state` tells a killed run (no process holds the folder) from a live one.
"""

import fcntl
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from vae_lightning.atomic_files import atomic_write
from vae_lightning.errors import ConfigError

LOCK_FILE = ".run.lock"
SUMMARY_FILE = "summary.json"
# What Hydra writes into a run folder before any code of ours runs: nothing of value.
HYDRA_FILES = {".hydra", "train.log", LOCK_FILE}


def write_json_atomically(path: Path, record: dict[str, Any]) -> None:
    """Replace `path` by `record` as JSON; a crash leaves the old file or the new, never half."""
    with atomic_write(path) as file:
        file.write(json.dumps(record, indent=2) + "\n")


class RunFolder:
    """The folder of one training run, claimed with an exclusive lock on `.run.lock`.

    The lock (``flock``) is held for as long as the process lives and is released by the
    operating system when it dies, however it dies, so a killed run never leaves a stale lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    def holds_run(self) -> bool:
        """Whether a training run has written anything here (metrics, checkpoints, summary)."""
        checkpoints = self.path / "checkpoints"
        return (
            (self.path / "metrics.csv").exists()
            or self.summary_path.exists()
            or (checkpoints.is_dir() and any(checkpoints.iterdir()))
        )

    def claim(self) -> None:
        """Take the folder for this process, or refuse if another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self._try_lock():
            raise ConfigError(
                f"Another process is training into {self.path} right now; this one stops without "
                "writing there. Give this run its own folder (leave hydra.run.dir unset, or set "
                "another one)."
            )
        os.ftruncate(self._lock, 0)
        os.write(self._lock, f"{os.getpid()} {socket.gethostname()}\n".encode())

    def _try_lock(self) -> bool:
        fd = os.open(self.path / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock = fd
        return True

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def remove_if_empty(self) -> bool:
        """Remove the folder if it holds only what Hydra wrote and no process holds it."""
        if not self.path.is_dir() or set(os.listdir(self.path)) - HYDRA_FILES:
            return False
        if self._lock is None and not self._try_lock():
            return False  # another process's folder
        self.release()
        shutil.rmtree(self.path)
        return True

    def read_summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return {}

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomically(self.summary_path, summary)

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = {**self.read_summary(), **fields}
        self.write_summary(summary)
        return summary

    def state(self) -> str:
        """``completed``, ``failed``, ``running``, ``interrupted`` (killed) or ``new``."""
        status = self.read_summary().get("status")
        if status != "running":
            return status or ("interrupted" if self.holds_run() else "new")
        if self._lock is not None:
            return "running"
        if not self._try_lock():
            return "running"
        self.release()
        return "interrupted"


def refuse_to_overwrite(run: RunFolder) -> None:
    """A run folder that already holds a training run is never trained into again."""
    if run.holds_run():
        raise ConfigError(
            f"The run folder {run.path} already holds a training run, which is left as it is. "
            "Continue it with auto_resume=true, choose another folder (hydra.run.dir=...), or "
            "leave hydra.run.dir unset and pass "
            f"ckpt_path={run.path / 'checkpoints' / 'last.ckpt'} to continue it in a new one."
        )
