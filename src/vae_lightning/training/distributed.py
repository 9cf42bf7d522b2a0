"""Hydra and Lightning's DDP launcher: how the extra processes of a run are started.

With ``strategy=ddp`` and no cluster manager, Lightning starts one process itself and re-executes
the command line for every other local rank. Its default command repeats ``sys.argv``, which in
a multirun (``-m``) would start the whole sweep again in each child, in a run folder of its own.
Here each child gets exactly the job it belongs to: the job's own overrides, its run folder
(``hydra.run.dir``), no ``.hydra`` output and no log file of its own. Under SLURM (``srun``) the
processes are created by the cluster and nothing is re-executed.
"""

import os
import sys
from collections.abc import Sequence

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.strategies.launchers import subprocess_script

_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def launched_rank() -> int:
    """This process's global rank as its launcher set it in the environment; 0 if none."""
    for name in _RANK_VARIABLES:
        if (value := os.environ.get(name)) is not None:
            return int(value)
    return 0


def _config_flags(argv: Sequence[str]) -> list[str]:
    """The config path, name and extra folder flags of a Hydra command line."""
    flags, args = [], list(argv)
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name in _CONFIG_FLAGS:
            flags.append(arg)
            if "=" not in arg and i + 1 < len(args):
                flags.append(args[i + 1])
    return flags


def hydra_child_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working folder of the process of ``local_rank`` of this Hydra job."""
    hydra_cfg = HydraConfig.get()
    command = [sys.executable, "-m", "vae_lightning.train", *_config_flags(sys.argv[1:])]
    command += list(hydra_cfg.overrides.task)
    command += [
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
    ]
    return command, hydra_cfg.runtime.cwd


def use_job_command_for_ddp_children() -> None:
    """Make Lightning start the extra local ranks of this Hydra job with `hydra_child_command`."""
    subprocess_script._hydra_subprocess_cmd = hydra_child_command
