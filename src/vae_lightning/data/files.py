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


class MissingDataFiles(DataError):
    """Data files in none of the folders, and not downloaded (offline, or the download
    failed): the message names them, where to get them and where to put them."""

    def __init__(
        self,
        filenames: Sequence[str],
        folders: Sequence[Path],
        source: str,
        failures: Sequence[str],
        key: str,
    ) -> None:
        self.filenames, self.folders, self.source = list(filenames), list(folders), source
        self.failures, self.key = list(failures), key
        reason = f" Download failed ({'; '.join(failures)})." if failures else ""
        also = "" if key == "VAE_DATA_DIR" else " (or the VAE_DATA_DIR environment variable)"
        where = " or ".join(map(str, folders))
        if len(filenames) == 1:
            missing = f"Data file {filenames[0]} was not found in {where}."
            fix = f"Get it from {source} and place it at {folders[0] / filenames[0]}"
        else:
            missing = f"Data files {', '.join(filenames)} were not found in {where}."
            fix = f"Get them from {source} and place them in {folders[0]}"
        super().__init__(
            f"{missing}{reason} {fix}, or point {key}{also} at a folder that has "
            f"{'it' if len(filenames) == 1 else 'them'}."
        )

    def __reduce__(self):  # picklable, for launchers that run jobs in other processes
        args = (self.filenames, self.folders, self.source, self.failures, self.key)
        return type(self), args


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
    raise MissingDataFiles([filename], folders, urls[0], failures, key)


def fetch_all(
    filenames: Sequence[str],
    folder: Path,
    mirrors: Sequence[str],
    checksums: dict[str, dict[str, str]],
    download: bool,
    key: str = "data.data_dir",
) -> dict[str, Path]:
    """{filename: checked path} of files kept together in `folder`, each as `fetch` gets it
    (downloaded from mirror + filename, with `checksums[filename]`); the files that are
    missing are named together in one error."""
    paths, missing = {}, []
    for name in filenames:
        urls = [mirror + name for mirror in mirrors]
        try:
            paths[name] = fetch(name, [folder], urls, checksums[name], download, key)
        except MissingDataFiles as err:
            missing.append(err)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        names = [name for err in missing for name in err.filenames]
        failures = [failure for err in missing for failure in err.failures]
        raise MissingDataFiles(names, [folder], mirrors[0], failures, key)
    return paths


def check_sha256(data: Path, actual: str, expected: str | None, key: str) -> None:
    """Refuse data whose sha256 `actual` differs from the `expected` one that the setting
    `key` pins (None: not pinned)."""
    if expected and actual != expected.lower():
        raise DataError(
            f"{data} has sha256 {actual}, not {expected} as {key} says: the data changed since "
            f"that digest was taken. Restore them, or set {key}={actual} to use them as they "
            f"are now ({key}=null: unchecked)."
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
