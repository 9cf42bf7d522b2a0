"""The Hydra config: where it lives, the defaults that follow from the data set, its checks."""

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from vae_lightning.data.datamodule import BINARIZATIONS
from vae_lightning.errors import ConfigError
from vae_lightning.models.decoders import CONTINUOUS_LIKELIHOODS, LIKELIHOODS
from vae_lightning.models.lit_vae import plain
from vae_lightning.models.mlp import ACTIVATIONS
from vae_lightning.models.networks import ProtocolError
from vae_lightning.models.objectives import OBJECTIVES
from vae_lightning.models.vae import VariationalAutoencoder


def config_dir() -> str:
    """`conf/` inside an installed wheel, else the top-level `conf/` of a source checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


def data_dir_key(overrides: Iterable[str]) -> str:
    """The setting that chose the data folder, as a user would name it: the last of
    data.data_dir=, paths.data_dir= on the command line, else $VAE_DATA_DIR if set, else
    paths.data_dir (its default, ./data)."""
    for override in reversed(list(overrides)):
        key = override.lstrip("+~").split("=", 1)[0]
        if key in ("data.data_dir", "paths.data_dir"):
            return key
    return "VAE_DATA_DIR" if os.environ.get("VAE_DATA_DIR") else "paths.data_dir"


def apply_dataset_defaults(cfg: DictConfig) -> None:
    """Fill `model.likelihood` and `model.hidden_dims` left null with the data set's defaults.

    With no validation split (``data.val_size=0``) there is nothing to rank checkpoints by:
    the checkpoint callback then keeps the newest epoch, which the test evaluates.
    """
    datamodule_class = get_class(cfg.data._target_)
    with open_dict(cfg):
        if cfg.model.get("likelihood", "") is None:
            cfg.model.likelihood = datamodule_class.default_likelihood
        if cfg.model.get("hidden_dims", "") is None:
            cfg.model.hidden_dims = list(datamodule_class.default_hidden_dims)
        if cfg.data.get("val_size") == 0:
            cfg.trainer.limit_val_batches = 0
            if checkpoint := (cfg.get("callbacks") or {}).get("model_checkpoint"):
                checkpoint.monitor = None
                checkpoint.filename = "epoch{epoch:03d}"


def _fail(key: str, value: Any, accepted: str) -> None:
    raise ConfigError(
        f"Invalid config value {key}={value!r}: {key} must be {accepted}. "
        f"Set it on the command line, e.g. `{key}=...`, or in the config file."
    )


def _fail_choice(key: str, value: Any, choices: Iterable[str]) -> None:
    """Refuse a value that is not one of `choices`, suggesting the closest."""
    choices = list(choices)
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" Did you mean {key}={close[0]}?" if close else ""
    raise ConfigError(
        f"Invalid config value {key}={value!r}: {key} must be one of {', '.join(choices)}.{hint}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def check_model_config(model: DictConfig) -> None:
    """Refuse model settings that cannot work, naming the key and the accepted values."""
    if not (_is_int(latent_dim := model.get("latent_dim")) and latent_dim > 0):
        _fail("model.latent_dim", latent_dim, "a positive integer (e.g. 2, 5, 10, 20)")
    hidden = model.get("hidden_dims")
    if not (
        isinstance(hidden, ListConfig | list)
        and len(hidden) > 0
        and all(_is_int(h) and h > 0 for h in hidden)
    ):
        _fail("model.hidden_dims", hidden, "a non-empty list of positive integers, e.g. [500]")
    if not (_is_int(samples := model.get("num_samples")) and samples >= 1):
        _fail("model.num_samples", samples, "an integer >= 1")
    if (likelihood := model.get("likelihood")) not in LIKELIHOODS:
        _fail_choice("model.likelihood", likelihood, LIKELIHOODS)
    if (activation := model.get("activation")) not in ACTIVATIONS:
        _fail_choice("model.activation", activation, ACTIVATIONS)
    if (variance := model.get("variance")) is not None and not _positive_number(variance):
        _fail("model.variance", variance, "null (learned) or a positive number")
    if not _positive_number(min_variance := model.get("min_variance")):
        _fail("model.min_variance", min_variance, "a positive number, e.g. 1e-4")
    if (objective := model.get("objective", "elbo")) not in OBJECTIVES:
        _fail_choice("model.objective", objective, OBJECTIVES)
    beta = model.get("kl_weight", 1.0)
    if not (isinstance(beta, int | float) and not isinstance(beta, bool) and beta >= 0):
        _fail("model.kl_weight", beta, "a number >= 0 (1: the ELBO)")
    if not (_is_int(warmup := model.get("kl_warmup_steps", 0)) and warmup >= 0):
        _fail("model.kl_warmup_steps", warmup, "an integer >= 0 (0: no KL warm-up)")
    for key, value, plain_elbo in (("kl_weight", beta, 1), ("kl_warmup_steps", warmup, 0)):
        if objective == "wake_sleep" and value != plain_elbo:
            no_kl = "model.objective=wake_sleep, which has no KL term to weight"
            _fail(f"model.{key}", value, f"{plain_elbo} (the default) with {no_kl}")
    for key in ("active_unit_threshold", "collapse_threshold"):
        if not _positive_number(threshold := model.get(key, 0.01)):
            _fail(f"model.{key}", threshold, "a positive number (0.01 by default)")
    points = model.get("mutual_info_points")
    if points is not None and not (_is_int(points) and points > 1):
        _fail("model.mutual_info_points", points, "null (all the points) or an integer > 1")


# What each network must do, said when one does not (models/networks.py).
NETWORK_PROTOCOL = {
    "encoder": "An encoder takes images of shape (batch, *image_shape) and returns "
    "(mu, logvar), each of shape (batch, model.latent_dim).",
    "decoder": "A decoder has log_likelihood(x, z), log p(x|z) of shape (..., batch) for x of "
    "shape (batch, pixels), and mean(z), E[x|z] of shape (..., pixels).",
}


def check_networks(model: DictConfig, image_shape: Sequence[int]) -> None:
    """Build the model's encoder and decoder for images of ``image_shape`` and refuse any that
    cannot be built or breaks the protocol, naming its config key."""
    try:
        # Built on a fork of torch's generators: the run's model is drawn from the seed as if
        # this check had not been.
        with torch.random.fork_rng(devices=[]):
            VariationalAutoencoder(
                image_shape,
                model.latent_dim,
                model.hidden_dims,
                model.activation,
                model.likelihood,
                model.variance,
                model.min_variance,
                plain(model.get("encoder")),
                plain(model.get("decoder")),
            )
    except ProtocolError as err:
        target = (model.get(err.role) or {}).get("_target_")
        raise ConfigError(
            f"model.{err.role}._target_={target}: the {err.role} {err.reason.rstrip('.')}. "
            f'{NETWORK_PROTOCOL[err.role]} See the README\'s "Your own networks".'
        ) from err


def check_data_config(data: DictConfig) -> None:
    for key in ("batch_size", "eval_batch_size"):
        if not (_is_int(value := data.get(key)) and value > 0):
            _fail(f"data.{key}", value, "a positive integer")
    if (binarize := data.get("binarize", "none")) not in BINARIZATIONS:
        _fail_choice("data.binarize", binarize, BINARIZATIONS)
    if "val_size" in data and not (_is_int(size := data.val_size) and size >= 0):
        _fail("data.val_size", size, "an integer >= 0 (0: no validation split)")
    if "split_block" in data and not (_is_int(block := data.split_block) and block > 0):
        _fail("data.split_block", block, "a positive integer (1: frames split one by one)")
    if "test_size" in data and not (_is_int(size := data.test_size) and size >= 0):
        _fail("data.test_size", size, "an integer >= 0")
    check_own_data_config(data)


def check_own_data_config(data: DictConfig) -> None:
    """The settings of a user's own images (data=image_folder, data=tensor_file)."""
    if OmegaConf.is_missing(data, "path"):
        raise ConfigError(
            "data.path is required: the folder of your images (data=image_folder) or your "
            "tensor file (data=tensor_file), absolute or relative to data.data_dir, e.g. "
            "data.path=/path/to/images."
        )
    size = data.get("image_size")
    if size is not None and not (
        isinstance(size, ListConfig | list)
        and len(size) == 2
        and all(_is_int(s) and s > 0 for s in size)
    ):
        _fail(
            "data.image_size", size, "null (the images' own size) or [height, width], e.g. [64,64]"
        )
    if (channels := data.get("channels")) is not None and not (
        _is_int(channels) and channels in (1, 3)
    ):
        _fail("data.channels", channels, "null (from the images), 1 (grey) or 3 (colour)")
    sha256 = data.get("sha256")
    if sha256 is not None and not (
        isinstance(sha256, str) and re.fullmatch("[0-9a-fA-F]{64}", sha256)
    ):
        _fail("data.sha256", sha256, "null (unchecked) or the 64 hex digits that the log gives")


def check_train_config(cfg: DictConfig) -> None:
    """All checks of a training config, run before any data are loaded or models built."""
    check_model_config(cfg.model)
    check_data_config(cfg.data)
    likelihood = cfg.model.likelihood
    if likelihood in CONTINUOUS_LIKELIHOODS and cfg.data.get("binarize", "none") != "none":
        raise ConfigError(
            f"model.likelihood={likelihood} does not fit data.binarize={cfg.data.binarize}: a "
            "Gaussian density on binary pixels has no upper bound (its variance collapses). "
            "Use model.likelihood=bernoulli for binarised data, or data.binarize=none."
        )
    interval = (cfg.get("callbacks") or {}).get("interval_checkpoint") or {}
    if interval.get("every_n_train_steps") and interval.get("train_time_interval"):
        raise ConfigError(
            "callbacks.interval_checkpoint: set every_n_train_steps or train_time_interval, not "
            "both; e.g. callbacks.interval_checkpoint.every_n_train_steps=1000 "
            "callbacks.interval_checkpoint.train_time_interval=null."
        )
    check_evaluation_batches(cfg)
    if cfg.get("ckpt_path") is not None and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path!r} is not a file. Give the path of a checkpoint to "
            "resume from, e.g. outputs/train/runs/<run>/checkpoints/last.ckpt, or ckpt_path=null."
        )


def processes_of(trainer: DictConfig) -> int | None:
    """The processes a trainer config starts, devices x num_nodes; None if known only at run
    time (devices 'auto' or -1)."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if isinstance(devices, ListConfig | list):
        devices = len(devices)
    elif isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if _is_int(devices) and devices > 0 and _is_int(nodes) and nodes > 0:
        return devices * nodes
    return None


def check_evaluation_batches(cfg: DictConfig) -> None:
    """Refuse validation or test splits of fewer batches than processes.

    Evaluation batches are whole blocks of ``data.eval_batch_size`` images, batch i on process
    i mod N (so they are the same on any number of processes); a process left without a
    batch would wait forever for the others' sums.
    """
    processes = processes_of(cfg.trainer)
    if processes is None or processes == 1:
        return
    data = cfg.data
    # A test split of fixed size (MNIST's official one) is the data module's, not a key.
    fixed_test_size = getattr(get_class(data._target_), "test_size", None)
    splits = [
        ("validation", "data.val_size", data.get("val_size")),
        ("test", "data.test_size", data.get("test_size", fixed_test_size)),
    ]
    for split, key, images in splits:
        if not _is_int(images) or images == 0:
            continue
        batches = -(-images // data.eval_batch_size)
        if batches < processes:
            size = key if key.removeprefix("data.") in data else "the official test split"
            raise ConfigError(
                f"data.eval_batch_size={data.eval_batch_size} makes {batches} {split} "
                f"batch{'es' if batches > 1 else ''} of {images:,} images ({size}) for {processes} "
                "processes (trainer.devices x trainer.num_nodes), and each process needs one. "
                f"Set data.eval_batch_size={max(images // processes, 1)} or less, or use fewer "
                "processes."
            )


EVAL_SPLITS = ("test", "val")
MANIFOLD_GRIDS = ("prior", "latent_means")


def check_eval_config(cfg: DictConfig) -> None:
    """All checks of an evaluation config, run before any file is read or written."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path is required: the training run folder or checkpoint file to evaluate, e.g. "
            "`python -m vae_lightning.eval ckpt_path=outputs/train/runs/<run>` (a run's folder)."
        )
    if (split := cfg.get("split")) not in EVAL_SPLITS:
        _fail_choice("split", split, EVAL_SPLITS)
    if not (_is_int(samples := cfg.get("num_importance_samples")) and samples >= 1):
        _fail("num_importance_samples", samples, "an integer >= 1 (5000 in the literature)")
    for key in ("batch_size", "chunk_size", "num_reconstructions", "manifold_size"):
        if not (_is_int(value := cfg.get(key)) and value > 0):
            _fail(key, value, "a positive integer")
    if (grid := cfg.get("manifold_grid")) not in MANIFOLD_GRIDS:
        _fail_choice("manifold_grid", grid, MANIFOLD_GRIDS)
    if (threads := cfg.get("threads")) is not None and not (_is_int(threads) and threads > 0):
        _fail("threads", threads, "null (torch's default) or a positive integer")
    for key in ("num_points", "mutual_info_points"):
        if (points := cfg.get(key)) is not None and not (_is_int(points) and points > 0):
            _fail(key, points, "null (all the points) or a positive integer")
    if not _positive_number(threshold := cfg.get("active_unit_threshold")):
        _fail("active_unit_threshold", threshold, "a positive number (0.01 in Burda et al.)")
    for key in ("seed", "subset_seed"):
        if not _is_int(value := cfg.get(key)):
            _fail(key, value, "an integer")
    if (device := cfg.get("device")) not in ("cpu", "cuda") or (
        device == "cuda" and not torch.cuda.is_available()
    ):
        _fail("device", device, "cpu, or cuda on a machine with a CUDA GPU")
