"""Finding, checking and downloading data files, without ever overwriting what the user has."""

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from torchvision.datasets.utils import download_url

from vae_lightning.atomic_files import atomic_write
from vae_lightning.errors import DataError


def default_cache_dir() -> Path:
    """Where unpacked files go: $VAE_CACHE_DIR, else $XDG_CACHE_HOME/vae_lightning."""
    if env := os.environ.get("VAE_CACHE_DIR"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vae_lightning"


def digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def verify(path: Path, checksums: dict[str, str], url: str) -> None:
    """Refuse a file whose digest differs from the expected one ({'md5': ..., 'sha256': ...})."""
    for algorithm, expected in checksums.items():
        if expected and (actual := digest(path, algorithm)) != expected.lower():
            raise DataError(
                f"Data file {path} fails its {algorithm} check (expected {expected}, got "
                f"{actual}). It was left as it is. Replace it with the original from {url} "
                "(or delete it to have it downloaded again) and run again."
            )


def fetch(
    filename: str,
    folders: Sequence[Path],
    urls: Sequence[str],
    checksums: dict[str, str],
    download: bool,
    key: str = "data.data_dir",
) -> Path:
    """The checked path of `filename`, looked up in `folders` in order; `key` names the
    setting that chose the data folder, in the message of a file not found.

    If it is in none of them and `download` is set, it is downloaded from the first `url`
    that works into the first folder that can be written, through a temporary file that is
    moved into place only once its checksums match.
    """
    for folder in folders:
        if (path := folder / filename).is_file():
            verify(path, checksums, urls[0])
            return path
    failures = []
    if download:
        for folder in folders:
            for url in urls:
                try:
                    return _download(url, folder, filename, checksums)
                except (OSError, RuntimeError, ValueError) as err:
                    failures.append(f"{url}: {err}")
    reason = f" Download failed ({'; '.join(failures)})." if failures else ""
    also = "" if key == "VAE_DATA_DIR" else " (or the VAE_DATA_DIR environment variable)"
    raise DataError(
        f"Data file {filename} was not found in {' or '.join(map(str, folders))}.{reason} "
        f"Get it from {urls[0]} and place it at {folders[0] / filename}, or point "
        f"{key}{also} at a folder that has it."
    )


def _download(url: str, folder: Path, filename: str, checksums: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        download_url(url, tmp, filename, md5=checksums.get("md5"))
        verify(Path(tmp) / filename, checksums, url)
        os.replace(Path(tmp) / filename, folder / filename)
    return folder / filename


def gunzip(source: Path, target: Path) -> Path:
    """Unpack `source` to `target` atomically (a crash leaves no half-written target)."""
    with gzip.open(source, "rb") as src, atomic_write(target, "wb") as out:
        shutil.copyfileobj(src, out)
    return target


def unpacked_copy(source: Path, source_md5: str, target: Path) -> Path:
    """`target`, the verified `source` gunzipped, unpacked again unless provably from it.

    Beside the copy, ``<target>.source.json`` records the md5 of the file it was unpacked from
    and its own size; it is written after the copy, so a copy without a matching manifest
    (foreign, truncated, or cut short by a crash) is never used.
    """
    manifest = target.with_name(target.name + ".source.json")
    try:
        record = json.loads(manifest.read_text())
        if record["source_md5"] == source_md5 and record["size"] == target.stat().st_size:
            return target
    except (OSError, ValueError, KeyError, TypeError):
        pass
    gunzip(source, target)
    record = {"source": str(source), "source_md5": source_md5, "size": target.stat().st_size}
    with atomic_write(manifest) as file:
        file.write(json.dumps(record) + "\n")
    return target
