"""The schema of a composed config: every key known and every value of the right type.

A key is known when the config files define it (the defaults of the chosen config groups,
composed again without the command line's values) or when the `_target_` of its node takes
it as an argument. A value must fit the type annotation of that argument, else the type of
the default in the config files. Ranges and rules between keys are checked in config.py.
"""

import difflib
import inspect
import types
from collections import abc
from collections.abc import Mapping
from functools import cache
from pathlib import PurePath
from typing import Any, Literal, Union, get_args, get_origin

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from vae_lightning.errors import ConfigError

# Keys that Hydra's instantiate reads itself.
INSTANTIATE_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
_EMPTY = inspect.Parameter.empty
_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection)
_PLAIN = ("a number", "a string", "a list, e.g. [1, 2]")


def check_schema(
    cfg: DictConfig,
    config_name: str,
    config_dir: str,
    open_nodes: tuple[str, ...] = (),
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Refuse an unknown key (naming close known ones) or a value of the wrong type.

    ``open_nodes``: key paths whose nodes and subnodes take any key (checked by their code);
    ``aliases``: other names of keys a user may type, e.g. {'K': 'num_importance_samples'}.
    """
    defaults = composed_defaults(config_name, config_dir)
    _check_node(cfg, defaults, "", set(open_nodes), dict(aliases or {}))


def composed_defaults(config_name: str, config_dir: str) -> DictConfig:
    """The config files' values for this run's choices of config groups (data, experiment...)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    overrides = [
        f"{group}={choice}"
        for group, choice in choices.items()
        if choice is not None and not group.startswith("hydra")
    ]
    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=overrides)
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name, overrides=overrides)


def _check_node(
    node: DictConfig, default: Any, path: str, open_nodes: set[str], aliases: dict[str, str]
) -> None:
    params, takes_any = arguments(node.get("_target_")) if "_target_" in node else ({}, False)
    default_keys = set(default) if isinstance(default, DictConfig) else set()
    is_open = takes_any or any(path == o or path.startswith(f"{o}.") for o in open_nodes)
    for key in node:
        full = f"{path}.{key}" if path else str(key)
        if key in INSTANTIATE_KEYS or full == "hydra" or OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        new_object = isinstance(value, DictConfig) and "_target_" in value and not params
        if key not in default_keys and key not in params and not is_open and not new_object:
            raise ConfigError(unknown_key_message(full, key, default_keys | set(params), aliases))
        default_value = _EMPTY  # none, or none known before the run (an interpolation, ???)
        if key in default_keys and not (
            OmegaConf.is_interpolation(default, key) or OmegaConf.is_missing(default, key)
        ):
            default_value = default[key]
        # Neither the config files' own values nor interpolations (checked at their source).
        if not (_same(value, default_value) or OmegaConf.is_interpolation(node, key)):
            _check_type(full, value, params.get(key, _EMPTY), default_value)
        if isinstance(value, DictConfig):
            child = default_value if isinstance(default_value, DictConfig) else None
            _check_node(value, child, full, open_nodes, aliases)


def unknown_key_message(
    full: str, key: str, known: set[str], aliases: Mapping[str, str] | None = None
) -> str:
    """The refusal of an unknown key, with the close known keys (or all of them)."""
    known -= INSTANTIATE_KEYS
    aliases = aliases or {}
    parent = full.rsplit(".", 1)[0] + "." if "." in full else ""
    close = [aliases[key]] if key in aliases else []
    close += difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    if close:
        hint = f"did you mean {' or '.join(parent + c for c in dict.fromkeys(close))}?"
    else:
        hint = f"the keys here are {', '.join(parent + k for k in sorted(known)) or 'none'}."
    return f"Unknown config key {full}: {hint} (`--cfg job` lists the keys.)"


@cache
def arguments(target: str) -> tuple[dict[str, Any], bool]:
    """({argument: annotation} of the target's keyword arguments, whether it takes any key).

    A class's arguments are those of its __init__ and, while that passes **kwargs on, of its
    base classes' __init__ too.
    """
    try:
        obj = get_object(target)
    except Exception:
        return {}, True  # instantiate reports a target that does not exist
    functions = (
        [k.__dict__["__init__"] for k in obj.__mro__ if "__init__" in k.__dict__]
        if isinstance(obj, type)
        else [obj]
    )
    params: dict[str, Any] = {}
    for function in functions:
        if function is object.__init__:
            return params, True
        try:
            signature = inspect.signature(function, eval_str=True)
        except (NameError, TypeError, ValueError):
            return params, True
        for p in signature.parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                params.setdefault(p.name, p.annotation)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            return params, False
    return params, True


def _check_type(full: str, value: Any, annotation: Any, default: Any) -> None:
    fits = _fits(annotation, value)
    expected = annotation
    if fits is None and default is not _EMPTY and default is not None:
        expected = _default_type(default)
        fits = _fits(expected, value)
    if fits is False:
        example = f", e.g. {full}={_shown(default)}" if default not in (_EMPTY, None) else ""
        choices = [str(c) for c in _literals(expected)]
        close = difflib.get_close_matches(_shown(value), choices, n=1, cutoff=0.5)
        hint = f" Did you mean {full}={close[0]}?" if close else ""
        raise ConfigError(
            f"Invalid config value {full}={_shown(value)}: expected {_describe(expected)}"
            f"{example}.{hint}"
        )


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, DictConfig | ListConfig) or isinstance(default, DictConfig | ListConfig):
        return False
    return default is not _EMPTY and type(value) is type(default) and value == default


def _default_type(default: Any) -> Any:
    """The type a value must have to replace this default; strings take any scalar."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, ListConfig):
        return list
    return _EMPTY


def _fits(annotation: Any, value: Any) -> bool | None:
    """Whether the value fits the annotation; None when that cannot be told."""
    if annotation in (_EMPTY, Any) or isinstance(annotation, str):
        return None
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        answers = [_fits(a, value) for a in get_args(annotation)]
        return True if True in answers else (None if None in answers else False)
    if origin is Literal:
        return value in get_args(annotation)
    if annotation is type(None):
        return value is None
    if isinstance(value, DictConfig):
        return True if "_target_" in value else None  # an object built by instantiate
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, PurePath)):
        return isinstance(value, str)
    if (origin or annotation) in _SEQUENCES:
        return isinstance(value, ListConfig)
    if isinstance(annotation, type):
        return False if value is None or isinstance(value, bool | int | float | str) else None
    return None


def _literals(annotation: Any) -> list[Any]:
    """The values of every Literal in the annotation (through unions), each shown once."""
    origin = get_origin(annotation)
    if origin is Literal:
        return list(get_args(annotation))
    if origin in (Union, types.UnionType):
        values = [v for a in get_args(annotation) for v in _literals(a)]
        return list({_shown(v): v for v in reversed(values)}.values())[::-1]
    return []


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        literals = _literals(annotation)
        others = [a for a in get_args(annotation) if get_origin(a) is not Literal]
        parts = ["one of " + ", ".join(map(_shown, literals))] if literals else []
        described = [_describe(a) for a in others]
        parts += [p for p in described if not p.startswith("a ") or p in _PLAIN] or described
        return " or ".join(dict.fromkeys(parts))
    if origin is Literal:
        return "one of " + ", ".join(_shown(a) for a in get_args(annotation))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if annotation is type(None):
        return "null"
    if (origin or annotation) in _SEQUENCES:
        return "a list, e.g. [1, 2]"
    return f"a {getattr(annotation, '__name__', annotation)}"


def _shown(value: Any) -> str:
    if isinstance(value, ListConfig | DictConfig):
        return str(OmegaConf.to_container(value))
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)
