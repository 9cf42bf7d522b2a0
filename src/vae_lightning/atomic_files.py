"""Files replaced whole or not at all: written beside their target, then renamed over it."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO]:
    """A temporary file in `path`'s folder; once the block ends without an error, its bytes
    are flushed to the disk (fsync) and it is renamed over `path`.

    A rename within one file system is atomic, so a crash, a kill or a full disk leaves the
    old file or the new one, never a truncated one (at most a stray ``.<name>.*.tmp``, which
    an error inside the process removes).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_args) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
