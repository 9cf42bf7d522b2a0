"""Weights & Biases: mode, run name and group, option checks, and a logger that never stops a run.

The `logger.wandb` config node is Lightning's WandbLogger (our subclass below) with a few keys
resolved here before the run starts:

- ``mode`` null: ``WANDB_MODE`` when set, else online when W&B credentials are configured
  (``wandb login`` or ``WANDB_API_KEY``), else offline; nothing ever prompts for input;
- ``name`` null: the job's overrides in short form, e.g. ``latent_dim=5`` (for a multirun,
  only the swept keys);
- ``group`` null: the multirun's folder name, so the jobs of one sweep are grouped;
- ``config``: the whole resolved Hydra config.

A W&B run that cannot start (no service, no network, bad credentials) falls back to offline,
then to no W&B at all, each said once in the log; the other loggers and checkpoints go on.
"""

import difflib
import inspect
import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vae_lightning.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled", "shared")
# Keys of the config node that are ours, not WandbLogger's or wandb.init's.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
# Keys in task overrides that make poor run names (paths, checksums, Hydra's own).
NOISY_KEY_PARTS = ("hydra", "paths", "checksums", "ckpt_path", "data_dir", "cache_dir")
MAX_NAME_PARTS = 6
# Seconds wandb.init may wait for the W&B server before the run goes on offline.
INIT_TIMEOUT_S = 30
# Aggregates shown in the runs table: the best ELBO, not the last one.
SUMMARIES = {f"{split}/elbo": "max" for split in ("train", "val", "test")}


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, except that a failing W&B call never stops training.

    The first error is logged once and W&B is left off for the rest of the run; the other
    loggers (CSV) and the checkpoints are untouched.
    """

    _broken = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns about anonymous=None
            self._wandb_init.pop("anonymous", None)

    def _guard(self, what: str, call, *args: Any, **kwargs: Any) -> Any:
        if self._broken:
            return None
        try:
            return call(*args, **kwargs)
        except Exception as err:  # W&B must never end the run
            self._broken = True
            log.warning(
                "W&B failed while %s (%s: %s); W&B logging is off for the rest of this run, "
                "the CSV log and the checkpoints go on.",
                what,
                type(err).__name__,
                err,
            )
            return None

    def log_hyperparams(self, params: Any) -> None:
        self._guard("logging hyperparameters", super().log_hyperparams, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._guard("logging metrics", super().log_metrics, metrics, step)

    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs) -> None:
        self._guard("logging images", super().log_image, key, images, step, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guard("logging a checkpoint", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guard("finalizing the run", super().finalize, status)


def is_wandb_node(node: Any) -> bool:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return False
    try:
        return issubclass(get_class(node._target_), LightningWandbLogger)
    except Exception:
        return False


def wandb_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    return {k: v for k, v in (cfg.get("logger") or {}).items() if is_wandb_node(v)}


def accepted_options(target: str) -> set[str]:
    """Keyword arguments of the logger class and of wandb.init (which gets the rest)."""
    import wandb

    options = set()
    for function in (get_class(target).__init__, LightningWandbLogger.__init__, wandb.init):
        options |= {
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
    return options - {"self", "experiment"}


def check_wandb_config(cfg: DictConfig) -> None:
    """Refuse unknown W&B options and modes before any data are loaded."""
    for key, node in wandb_nodes(cfg).items():
        accepted = accepted_options(node._target_)
        for option in node:
            if option in HYDRA_KEYS or option in accepted:
                continue
            close = difflib.get_close_matches(str(option), sorted(accepted), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"Unknown W&B option logger.{key}.{option}.{hint} The accepted options are "
                "those of Lightning's WandbLogger and of wandb.init (e.g. project, entity, "
                "group, name, tags, notes, mode, log_model, job_type, settings); remove it "
                f"with `~logger.{key}.{option}`."
            )
        mode = node.get("mode")
        if mode is not None and mode not in MODES:
            raise ConfigError(
                f"Invalid config value logger.{key}.mode={mode!r}: it must be null (online "
                f"when W&B credentials are configured, else offline) or one of {', '.join(MODES)}."
            )
        settings = node.get("settings")
        if settings is not None:
            import wandb

            try:
                wandb.Settings(**OmegaConf.to_container(settings, resolve=True))
            except Exception as err:
                raise ConfigError(
                    f"Invalid W&B settings in logger.{key}.settings: {err}".strip()
                ) from None
        if node.get("offline"):
            raise ConfigError(
                f"logger.{key}.offline is not used here: set logger.{key}.mode=offline instead."
            )


def has_credentials() -> bool:
    """Whether W&B credentials are configured, without asking the network or the user."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc")).expanduser()
    try:
        return bool(path.is_file() and host and netrc.netrc(path).authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(configured: str | None) -> str:
    """The config's mode, else WANDB_MODE, else online with credentials and offline without."""
    if configured:
        return configured
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    return "online" if has_credentials() else "offline"


def _short(override: Any) -> str:
    """`model.latent_dim=5` -> `latent_dim=5`, the value as it was typed."""
    value = (override.input_line or "").split("=", 1)[-1] or override.get_value_element_as_str()
    return f"{override.key_or_group.rsplit('.', 1)[-1]}={value}"


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def _swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys given several values on a multirun's command line (from its multirun.yaml)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        task = OmegaConf.load(path).hydra.overrides.task
        return {o.key_or_group for o in _parse(list(task)) if o.is_sweep_override()}
    except Exception:
        return None


def run_name_and_group() -> tuple[str | None, str | None]:
    """A readable run name from the job's overrides, and the multirun's folder name as group."""
    if not HydraConfig.initialized():
        return None, None
    hydra_cfg = HydraConfig.get()
    try:
        overrides = _parse(list(hydra_cfg.overrides.task))
    except Exception:
        overrides = []
    group = swept = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra_cfg.sweep.dir)
        group, swept = sweep_dir.name, _swept_keys(sweep_dir)
    if swept:
        chosen = [o for o in overrides if o.key_or_group in swept]
    else:
        chosen = [
            o
            for o in overrides
            if not any(part in o.key_or_group for part in NOISY_KEY_PARTS)
            and "/" not in (value := o.get_value_element_as_str())
            and len(value) <= 32
        ][:MAX_NAME_PARTS]
    name = ",".join(_short(o) for o in chosen)
    return name or None, group


def _start(node: DictConfig, mode: str, extra: dict[str, Any]) -> WandbLogger:
    options = OmegaConf.to_container(node, resolve=True)
    target = options.pop("_target_")
    for key in HYDRA_KEYS:
        options.pop(key, None)
    # Not through hydra's instantiate: `config` (the run's config) is one of its own arguments.
    logger = get_class(target)(**{**options, **extra, "mode": mode})
    if rank_zero_only.rank == 0:
        experiment = logger.experiment  # starts the W&B run now, so failures show up here
        for metric, summary in SUMMARIES.items():
            experiment.define_metric(metric, step_metric="trainer/global_step", summary=summary)
    return logger


def create_loggers(cfg: DictConfig) -> list[Logger]:
    """The loggers of `cfg.logger`; W&B ones started now, falling back to offline, then off."""
    loggers = []
    for key, node in (cfg.get("logger") or {}).items():
        if not node or "_target_" not in node:
            continue
        if not is_wandb_node(node):
            loggers.append(instantiate(node))
        elif (logger := start_wandb(key, node, cfg)) is not None:
            loggers.append(logger)
    return loggers


def start_wandb(key: str, node: DictConfig, cfg: DictConfig) -> Logger | None:
    import wandb

    name, group = run_name_and_group()
    extra: dict[str, Any] = {
        "name": node.get("name") or name,
        "group": node.get("group") or group,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if node.get("settings") is None:
        extra["settings"] = {"init_timeout": INIT_TIMEOUT_S}
    mode = resolve_mode(node.get("mode"))
    tries = [mode] if mode == "offline" else [mode, "offline"]
    for attempt in tries:
        try:
            logger = _start(node, attempt, extra)
        except Exception as err:
            if wandb.run is not None:
                wandb.finish(exit_code=1)
            then = "going on offline" if attempt != tries[-1] else "going on without W&B"
            log.warning(
                "W&B could not start a run in %s mode (%s: %s); %s.",
                attempt,
                type(err).__name__,
                err,
                then,
            )
            continue
        if attempt == "offline" and rank_zero_only.rank == 0:
            run_dir = Path(logger.experiment.dir).parent
            log.info(
                "W&B is offline: this run is saved in %s; upload it with `wandb sync %s`.",
                run_dir,
                run_dir,
            )
        return logger
    return None


def finish_wandb(loggers: list[Logger], failed: bool = False) -> None:
    """End this job's W&B run, so that each job of a multirun is a run of its own."""
    if not any(isinstance(lg, LightningWandbLogger) for lg in loggers):
        return
    if rank_zero_only.rank != 0:
        return
    import wandb

    try:
        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)
            # finish() returns before the service has written all of the run to disk; its
            # teardown waits for that, so the run is complete before the next job starts.
            wandb.teardown()
    except Exception as err:
        log.warning("W&B failed to finish the run (%s: %s).", type(err).__name__, err)
