"""The command-line entry of our Hydra apps: a user's mistake is a short message and exit 2.

Hydra reports its own config errors (an unknown key, a missing config group option, an
override it cannot parse) before our task function runs, and exits with 1. With
HYDRA_FULL_ERROR=1 it raises them instead, so `run_app` catches them, like our `UserError`s,
and reports each in at most three lines naming the key and the fix, without a traceback.
A user who sets HYDRA_FULL_ERROR=1 still gets Hydra's full traceback.
"""

import difflib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from vae_lightning.errors import UserError
from vae_lightning.schema import arguments, unknown_key_message
from vae_lightning.training.console import drop_third_party_notices

log = logging.getLogger(__name__)
EXIT_USER_ERROR = 2
MAX_LINES = 3
_OURS = "VAE_LIGHTNING_RAISES_HYDRA_ERRORS"  # set by run_app, read by the processes it starts


def run_app(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function; exit 2 with a short message on the user's mistake."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1" and _OURS not in os.environ
    os.environ.update({"HYDRA_FULL_ERROR": "1", _OURS: "1"})
    drop_third_party_notices()
    try:
        hydra_main()
    except (UserError, HydraException, OmegaConfBaseException) as err:
        if wants_traceback or user_message(err) is None:
            raise
        exit_with_message(err)


def exit_with_message(err: BaseException) -> NoReturn:
    """Report a user's mistake in at most three lines on stderr (and in the run's log file once
    Hydra has opened one), in one format wherever it is found; exit 2.

    Called by a task function, it ends the command before Hydra adds lines of its own.
    """
    message = user_message(err) or str(err)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:  # the run's train.log, if Hydra opened one
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(message, file=sys.stderr, flush=True)  # the console: the message alone, always
    sys.exit(EXIT_USER_ERROR)


def user_message(err: BaseException) -> str | None:
    """At most three lines saying what is wrong and how to fix it; None for a bug of ours."""
    if isinstance(err, UserError):
        text = str(err)
    elif isinstance(err, MissingConfigException) and err.options is not None:
        group, _, choice = (err.missing_cfg_file or "").rpartition("/")
        close = difflib.get_close_matches(choice, list(err.options), n=1)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        text = f"No config {choice!r} in group {group}: {hint}Choices: {', '.join(err.options)}."
    elif isinstance(err, OverrideParseException):
        text = (
            f"Cannot read the override {_unreadable_override()}: {str(err).splitlines()[0]}. "
            "Write key=value, e.g. model.hidden_dims=[500,500] or 'data.data_dir=\"a b\"'."
        )
    elif "Could not override 'data'" in str(err):  # only the evaluation has no data group
        text = (
            "An evaluation reads the data its run was trained on (the run's config.yaml), so "
            "data=... cannot choose another data set. data.KEY=VALUE changes one of its "
            "settings, e.g. data.data_dir=/path/to/data."
        )
    elif isinstance(err.__cause__, OmegaConfBaseException) and _is_unknown_key(err.__cause__):
        text = _unknown_key(err.__cause__)
    elif isinstance(err, HydraException | OmegaConfBaseException):
        text = str(err).split("\n    full_key")[0]
    else:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:MAX_LINES])


def _unreadable_override() -> str:
    """The first command-line argument Hydra's override grammar cannot read."""
    parser = OverridesParser.create()
    for arg in sys.argv[1:]:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_override(arg)
        except HydraException:
            return f"`{arg}`"
    return "on the command line"


def _is_unknown_key(err: OmegaConfBaseException) -> bool:
    return "not in struct" in str(err) and isinstance(err.parent_node, DictConfig)


def _unknown_key(err: OmegaConfBaseException) -> str:
    node, key, full = err.parent_node, str(err.key), str(err.full_key)
    target = node.get("_target_") if isinstance(node.get("_target_"), str) else None
    if target is not None and key in arguments(target)[0]:
        return (
            f"{full} is an argument of {target} that the config files do not set: add it with "
            f"a +, e.g. +{full}=VALUE."
        )
    return unknown_key_message(full, key, {str(k) for k in node})
