"""The encoder and decoder networks named by config (``model.encoder``, ``model.decoder``),
and the check that they follow the protocol (models/encoders.py, models/decoders.py).

A network's config is a Hydra node with a ``_target_``: a class or function of this package
or the user's own, by import path. The model passes it what it needs and the config does not
set: ``image_shape`` and ``latent_dim`` always, and ``likelihood``, ``variance``,
``min_variance``, ``hidden_dims``, ``activation`` to a target that takes them.
"""

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from torch import nn

# The networks of Kingma & Welling: MLPs whose widths and activation are the model's.
DEFAULT_ENCODER = {"_target_": "vae_lightning.models.encoders.MLPEncoder"}
DEFAULT_DECODER = {"_target_": "vae_lightning.models.decoders.mlp_decoder"}


class ProtocolError(ValueError):
    """A network that cannot be built, or that breaks the encoder or decoder protocol;
    ``role`` is 'encoder' or 'decoder'."""

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"the {role} {reason}")
        self.role, self.reason = role, reason


def build_networks(
    encoder: Mapping[str, Any],
    decoder: Mapping[str, Any],
    image_shape: Sequence[int],
    latent_dim: int,
    **context: Any,
) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) built from their configs, checked against the protocol.

    ``context``: the model's settings a network may take (models/networks.py's docstring);
    the decoder alone gets ``likelihood``, ``variance`` and ``min_variance``.
    """
    shared = {"image_shape": tuple(image_shape), "latent_dim": latent_dim}
    decoder_only = ("likelihood", "variance", "min_variance")
    encoder_context = {k: v for k, v in context.items() if k not in decoder_only}
    networks = []
    for role, config, given in (
        ("encoder", encoder, encoder_context),
        ("decoder", decoder, context),
    ):
        try:
            get_object(config["_target_"])
        except Exception as err:
            raise ProtocolError(
                role,
                f"target {config['_target_']!r} cannot be imported "
                f"({type(err.__cause__ or err).__name__}): give a class's full import path, in "
                "a package Python can import",
            ) from err
        try:
            networks.append(build_network(config, **shared, **given))
        except ProtocolError:
            raise
        except Exception as err:  # the user's class may raise anything while it is built
            cause = err.__cause__ if isinstance(err, InstantiationException) else None
            raise ProtocolError(role, f"could not be built: {_reason(cause or err)}") from err
    check_protocol(*networks, image_shape, latent_dim)
    return networks[0], networks[1]


def build_network(config: Mapping[str, Any], **context: Any) -> Any:
    """instantiate(config), given those of ``context`` that its target takes and it does not set."""
    target = get_object(config["_target_"])
    params = inspect.signature(target).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in context.items() if k not in config and (takes_any or k in params)}
    return instantiate(dict(config), **given, _convert_="all")


def check_protocol(
    encoder: nn.Module, decoder: nn.Module, image_shape: Sequence[int], latent_dim: int
) -> None:
    """Run both networks on two blank images and refuse outputs of the wrong kind or shape.

    Encoder: (2, *image_shape) -> (mu, logvar), each (2, latent_dim). Decoder: log_likelihood
    of x (2, D) at z (3, 2, latent_dim) of shape (3, 2), and mean(z) of shape (3, 2, D).
    """
    for role, network in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(network, nn.Module):
            raise ProtocolError(role, f"is a {type(network).__name__}, not a torch.nn.Module")
    pixels = math.prod(image_shape)
    x = torch.full((2, *image_shape), 0.5)
    with torch.no_grad():
        posterior = _call("encoder", encoder, x)
        if not (
            isinstance(posterior, tuple | list)
            and len(posterior) == 2
            and all(isinstance(t, torch.Tensor) for t in posterior)
            and all(t.shape == (2, latent_dim) for t in posterior)
        ):
            raise ProtocolError(
                "encoder",
                f"must return (mu, logvar), each of shape (batch, {latent_dim}); for a batch "
                f"of 2 it returned {_describe(posterior)}",
            )
        z = torch.zeros(3, 2, latent_dim)
        for method, expected in (("log_likelihood", (3, 2)), ("mean", (3, 2, pixels))):
            if not callable(getattr(decoder, method, None)):
                raise ProtocolError("decoder", f"has no method {method}(...)")
            args = (x.flatten(1), z) if method == "log_likelihood" else (z,)
            out = _call("decoder", getattr(decoder, method), *args)
            if not (isinstance(out, torch.Tensor) and out.shape == expected):
                raise ProtocolError(
                    "decoder",
                    f"method {method} must return a tensor of shape {expected} for z of shape "
                    f"(3, 2, {latent_dim}); it returned {_describe(out)}",
                )


def _call(role: str, function: Any, *args: Any) -> Any:
    """function(*args), any error in it reported as the network's."""
    try:
        return function(*args)
    except Exception as err:
        name = getattr(function, "__name__", "forward")
        raise ProtocolError(role, f"failed on a test batch in {name}: {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    """`Type: first line of the message`."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of ({', '.join(map(_describe, value))})"
    return f"a {type(value).__name__}"
