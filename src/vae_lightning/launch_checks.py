"""Checks Hydra runs before any job starts (Hydra callbacks of conf/hydra/default.yaml).

Hydra turns an exception of a callback into a warning and goes on; a failing check here ends
the command itself, as any user error does: its message, exit status 2.

- The run or sweep folder must be one that can be made: a folder that cannot (under /proc,
  under a file, without permission) is one line naming it, not a traceback from Hydra.
- A sweep composes and checks the config of every job before the first one trains: a bad
  value in job 3 of 4 stops the sweep at once, naming that job's overrides, with nothing
  trained and nothing written. Jobs are those of the basic sweeper (every combination of the
  command line's and `hydra.sweeper.params`' values) whatever the launcher; for a search
  (Optuna) the choices of each parameter and the two ends of each interval are checked.
"""

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from vae_lightning.errors import ConfigError, UserError

# Jobs checked one by one; a larger grid is checked one swept key at a time.
MAX_JOBS = 256


def make_folder(path: str, key: str) -> None:
    """Make the folder Hydra will write into (as Hydra would), or refuse it in one line."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"Cannot make the folder {path} ({key}): {reason}. Set {key} to a folder that can "
            "be written, or leave it unset."
        ) from err


def _values(override: Override) -> list[str]:
    """The values of an override to check: each of a list or range, the ends of an interval."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if override.is_discrete_sweep():
        return list(override.sweep_string_iterator())
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        return [str(sweep.start), str(sweep.end)]
    return []  # a sweep this check cannot list


def sweep_overrides(config: DictConfig) -> list[Override]:
    """The sweep's overrides: `hydra.sweeper.params`' (a search space), then the command line's."""
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    return parser.parse_overrides(arguments)


def job_overrides(overrides: list[Override]) -> list[list[str]]:
    """The override lists of the jobs to check (see the module)."""
    keyed = {}
    for override in overrides:
        key = override.get_key_element()
        keyed[key] = [f"{key}={value}" for value in _values(override)] or keyed.get(key, [])
    lists = [values for values in keyed.values() if values]
    if len(lists) == 0:
        return [[]]
    if math.prod(len(v) for v in lists) <= MAX_JOBS:
        return [list(job) for job in itertools.product(*lists)]
    first = [values[0] for values in lists]  # one swept key at a time, the others at their first
    return [[*first[:i], value, *first[i + 1 :]] for i, v in enumerate(lists) for value in v]


class OutputFolderCheck(Callback):
    """The run folder (`hydra.run.dir`) or the sweep folder (`hydra.sweep.dir`) can be made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(make_folder, config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(make_folder, config.hydra.sweep.dir, "hydra.sweep.dir")


def _or_exit(check: Callable[..., None], *args: Any) -> None:
    from vae_lightning.cli import exit_with_message

    try:
        check(*args)
    except UserError as err:
        exit_with_message(err)


class SweepCheck(Callback):
    """Every job's config of a sweep, composed and checked before the first job starts.

    ``check``: the import path of the function that checks one job's composed config (the
    training entry point's `check_config`), raising a `UserError`."""

    def __init__(self, check: str) -> None:
        self.check = check

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(self.check_jobs, config)

    def check_jobs(self, config: DictConfig) -> None:
        from hydra.utils import get_method

        check: Callable[[DictConfig], None] = get_method(self.check)
        loader = GlobalHydra.instance().config_loader()
        before = HydraConfig.instance().cfg
        overrides_of_sweep = sweep_overrides(config)
        jobs = job_overrides(overrides_of_sweep)
        # The keys that tell jobs apart, named in a refusal.
        swept = {o.get_key_element() for o in overrides_of_sweep if o.is_sweep_override()}
        try:
            for number, overrides in enumerate(jobs):
                job = loader.load_sweep_config(config, overrides)
                with open_dict(job):  # as the launcher sets them
                    job.hydra.job.num = job.hydra.job.id = number
                    job.hydra.runtime.output_dir = str(
                        Path(job.hydra.sweep.dir) / str(job.hydra.sweep.subdir)
                    )
                HydraConfig.instance().set_config(job)
                task = OmegaConf.masked_copy(job, [k for k in job if k != "hydra"])
                OmegaConf.set_struct(task, True)
                try:
                    check(task)
                except UserError as err:
                    shown = " ".join(o for o in overrides if o.split("=", 1)[0] in swept)
                    raise ConfigError(
                        f"Job {number} of {len(jobs)} ({shown or '-'}): {err} Nothing was trained."
                    ) from err
        finally:
            HydraConfig.instance().cfg = before
