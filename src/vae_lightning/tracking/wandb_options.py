"""W&B options: checks of the `logger.wandb` config node, the mode, the run's name and group."""

import difflib
import inspect
import netrc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from omegaconf import DictConfig, OmegaConf

from vae_lightning.errors import ConfigError

MODES = ("online", "offline", "disabled", "shared")
# Keys of the config node that are ours, not WandbLogger's or wandb.init's.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
# Keys in task overrides that make poor run names (paths, checksums, Hydra's own).
NOISY_KEY_PARTS = ("hydra", "paths", "checksums", "ckpt_path", "data_dir", "cache_dir")
MAX_NAME_PARTS = 6


def is_wandb_node(node: Any) -> bool:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return False
    try:
        return issubclass(get_class(node._target_), LightningWandbLogger)
    except Exception:
        return False


def wandb_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    return {k: v for k, v in (cfg.get("logger") or {}).items() if is_wandb_node(v)}


@contextmanager
def no_field_docstrings() -> Iterator[None]:
    """Within: pydantic models take no field descriptions from their attribute docstrings.

    W&B's models ask for them, and pydantic gets them by parsing W&B's source files as the
    models are defined (`import wandb` defines 21, wandb.init 60 more): about 0.2-0.3 s of a
    run's start-up, for descriptions that a run never reads.
    """
    from pydantic._internal import _fields

    name = "_update_fields_from_docstrings"
    original = getattr(_fields, name, None)
    if original is None:  # another pydantic: nothing to skip
        yield
        return
    setattr(_fields, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        setattr(_fields, name, original)


def import_wandb() -> ModuleType:
    """`import wandb`, leaving out the field descriptions of its settings models."""
    if "wandb" not in sys.modules:
        with no_field_docstrings():
            import wandb  # noqa: F401
    return sys.modules["wandb"]


def accepted_options(target: str) -> set[str]:
    """Keyword arguments of the logger class and of wandb.init (which gets the rest)."""
    wandb = import_wandb()
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
            try:
                import_wandb().Settings(**OmegaConf.to_container(settings, resolve=True))
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
