"""Fault tolerance: atomic checkpoint files and finding the checkpoint to resume a run from."""

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its folder, then renames it into place.

    A rename within one file system is atomic, so a process killed while writing (SIGKILL,
    preemption, a full disk) leaves the previous checkpoint of that name intact and at most a
    stray ``.<name>.*.tmp`` file, never a truncated ``.ckpt``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO does not take storage_options; got "
                f"{storage_options!r}. Use a CheckpointIO plugin that supports them."
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def resume_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint to continue the run in `output_dir` from, or None.

    Candidates: ``checkpoints/last.ckpt`` (written by ModelCheckpoint) and the
    ``hpc_ckpt_<n>.ckpt`` that Lightning writes before a SLURM requeue.
    """
    candidates = [output_dir / "checkpoints" / "last.ckpt"]
    hpc = [
        (int(m.group(1)), p)
        for p in output_dir.glob("hpc_ckpt_*.ckpt")
        if (m := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", p.name))
    ]
    if hpc:
        candidates.append(max(hpc)[1])
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None
