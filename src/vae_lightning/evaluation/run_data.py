"""The data a training run used, from its saved config.yaml: for the evaluation and the API.

No figures or plotting here: the Python API (vae_lightning.load_data) imports this module, and
importing the evaluation's figures would switch a notebook's matplotlib to the Agg backend.
"""

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vae_lightning.config import check_data_config
from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.errors import ConfigError
from vae_lightning.schema import arguments, unknown_key_message


def load_data(run: Path, overrides: DictConfig) -> InMemoryDataModule:
    """The run's data module from its saved config.yaml, with the non-null overrides on top."""
    data_cfg = OmegaConf.load(run / "config.yaml").data
    settings = {k: v for k, v in overrides.items() if v is not None}
    known = set(data_cfg) | set(arguments(data_cfg._target_)[0])
    for key in settings:
        if key not in known:
            raise ConfigError(unknown_key_message(f"data.{key}", key, known - {"_target_"}))
    data_cfg.merge_with(settings)
    check_data_config(data_cfg)
    datamodule = instantiate(data_cfg)
    datamodule.prepare_data()  # missing or corrupt files fail here
    datamodule.setup("test")
    return datamodule
