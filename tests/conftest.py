"""Shared fixtures: tiny data sets in the real file formats, Hydra composition, the CLI."""

import functools
import gzip
import hashlib
import importlib
import logging
import os
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from composing import compose_run
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
TINY_MNIST = {"train": 300, "test": 100}
TINY_FREY = 120


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """gzip IDX3: magic 0x00000803, N, rows, cols (big-endian uint32), then uint8 pixels."""
    header = struct.pack(">IIII", 0x00000803, *images.shape)
    path.write_bytes(gzip.compress(header + images.astype(np.uint8).tobytes()))


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """gzip IDX1: magic 0x00000801, N, then uint8 labels."""
    path.write_bytes(gzip.compress(struct.pack(">II", 0x00000801, len(labels)) + labels.tobytes()))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of ink on a dark background, one position per label: learnable, in MNIST's format."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    yy, xx = np.mgrid[:28, :28]
    images = np.zeros((n, 28, 28))
    for i, label in enumerate(labels):
        cy, cx = 8 + (label // 5) * 12, 4 + (label % 5) * 5
        images[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 12.0)
    images = np.clip(images * 255 + rng.normal(0, 10, images.shape), 0, 255)
    return images.astype(np.uint8), labels


def make_tiny_data(root: Path) -> dict[str, dict[str, str]]:
    """Write tiny MNIST (gzip IDX) and Frey Face (.mat) files under root; returns checksums."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = fake_digits(TINY_MNIST[split], rng)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    faces = rng.integers(8, 239, size=(560, TINY_FREY), dtype=np.uint8)
    scipy.io.savemat(root / "frey_rawface.mat", {"ff": faces})
    frey = root / "frey_rawface.mat"
    return {
        "mnist": {
            "train_images": md5(raw / "train-images-idx3-ubyte.gz"),
            "train_labels": md5(raw / "train-labels-idx1-ubyte.gz"),
            "test_images": md5(raw / "t10k-images-idx3-ubyte.gz"),
            "test_labels": md5(raw / "t10k-labels-idx1-ubyte.gz"),
        },
        "frey_face": {
            "md5": md5(frey),
            "sha256": hashlib.sha256(frey.read_bytes()).hexdigest(),
        },
    }


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path_factory, monkeypatch) -> Path:
    """W&B offline and silent in every test, its files in a temporary folder, no credentials."""
    root = tmp_path_factory.mktemp("wandb")
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("NETRC", str(root / "netrc"))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """A read-only folder of tiny data files in the real formats, and their checksums."""
    root = tmp_path_factory.mktemp("data")
    checksums = make_tiny_data(root)
    return root, checksums


def data_overrides(tiny_data, cache_dir: Path, data: str = "mnist") -> list[str]:
    """Overrides pointing a config at the tiny data, with splits that fit it."""
    root, checksums = tiny_data
    sums = [f"data.checksums.{k}={v}" for k, v in checksums[data].items()]
    sizes = ["data.val_size=50"] if data == "mnist" else ["data.val_size=20", "data.test_size=20"]
    return [
        f"data={data}",
        f"paths.data_dir={root}",
        f"paths.cache_dir={cache_dir}",
        "data.download=false",
        "data.batch_size=50",
        "data.eval_batch_size=50",
        *sizes,
        *sums,
    ]


def tiny_overrides(tiny_data, tmp_path: Path, data: str = "mnist") -> list[str]:
    """A small, quick training job on the tiny data (CPU, 2 epochs, a small network)."""
    return [
        *data_overrides(tiny_data, tmp_path / "cache", data),
        "trainer=cpu",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
        "trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1",
        "model.hidden_dims=[32]",
        "model.latent_dim=2",
        # Media drawn as in a real run, in grids of a few images (the default's 64 samples and
        # 20 x 20 manifold would cost more than the tiny training itself).
        "callbacks.media.num_samples=4",
        "callbacks.media.num_reconstructions=4",
        "callbacks.media.manifold_steps=3",
    ]


@pytest.fixture
def compose_train(tmp_path):
    """Compose conf/train.yaml as `python -m vae_lightning.train` would, run folder in tmp_path
    (tmp_path / "run" unless `run_dir` is given)."""
    return functools.partial(compose_run, folder=tmp_path)


def cli_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment a command of the tests runs in: this one, unbuffered, Hydra's short
    errors, `env` on top, and no VAE_DATA_DIR (each test names its data)."""
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **env}
    environ.pop("VAE_DATA_DIR", None)
    return environ


def run_cli(module: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` in `cwd`, as a user would."""
    environ = cli_environment(env)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_forked(module: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in `cwd` as `run_cli` runs it, in a fork of this process:
    the same `main()`, command line, environment, exit code and output, without the seconds
    a new interpreter spends importing torch, Lightning and W&B. For commands that stop on
    a mistake before any training; `run_cli` is the real interpreter's path."""
    main = importlib.import_module(module).main
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (until os._exit)
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(cli_environment(env))
                sys.argv = [str(Path(sys.modules[module].__file__)), *args]
                GlobalHydra.instance().clear()  # as in a new interpreter: no Hydra,
                logging.root.handlers.clear()  # no log handlers (pytest's)
                main()
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            [module, *args],
            os.waitstatus_to_exitcode(status),
            out.read().decode(),
            err.read().decode(),
        )
