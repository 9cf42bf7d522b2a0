"""What a record trained and with what: its method (``model.objective``), its networks
(``model.encoder`` and ``model.decoder``; records from before these were configurable used the
MLPs) and its optimiser, read from its config.yaml; and where the report shows each record.

The data sets' sections are Kingma & Welling's grid: the paper's MLPs, trained by AEVB (the
ELBO) or by wake-sleep, the two methods of their Figure 2. A record with other networks is
shown beside the MLP record of its data set, latent size and method; a record trained with
the IWAE bound beside the one trained with the ELBO on the same network (Burda et al.'s
comparison).
"""

from dataclasses import dataclass
from typing import Any

from vae_lightning.literature import PUBLISHED
from vae_lightning.models.networks import DEFAULT_DECODER, DEFAULT_ENCODER
from vae_lightning.report.formats import setting
from vae_lightning.report.records import Record

# model.objective -> the method's name; the report lists methods in this order.
METHODS = {"elbo": "AEVB", "wake_sleep": "wake-sleep", "iwae": "IWAE"}
PAPER_NETWORKS = {"encoder": DEFAULT_ENCODER["_target_"], "decoder": DEFAULT_DECODER["_target_"]}
CONV = {
    "encoder": "vae_lightning.models.encoders.ConvEncoder",
    "decoder": "vae_lightning.models.decoders.conv_decoder",
}
# Optimiser settings that choose an implementation, not the optimisation.
IMPLEMENTATION = {"fused", "foreach", "capturable", "differentiable"}


def model_config(r: Record) -> dict[str, Any]:
    return r.config.get("model") or {}


def objective(r: Record) -> str:
    """model.objective (elbo where the config has none)."""
    return model_config(r).get("objective") or "elbo"


def method(r: Record) -> str:
    """'AEVB', 'wake-sleep', 'IWAE' (an objective of no known method: its own name)."""
    return METHODS.get(objective(r), objective(r))


def labelled_methods(records: list[Record]) -> bool:
    """Whether a table or figure of these records names each one's method: where one is not
    AEVB (alone, AEVB goes unnamed as ever)."""
    return any(objective(r) != "elbo" for r in records)


def method_rank(r: Record) -> int:
    return list(METHODS).index(objective(r)) if objective(r) in METHODS else len(METHODS)


def target(r: Record, role: str) -> str:
    """The class or function of the record's encoder or decoder (``role``)."""
    node = model_config(r).get(role) or {}
    return node.get("_target_") or PAPER_NETWORKS[role]


def paper_networks(r: Record) -> bool:
    """Whether both networks are the paper's MLPs."""
    return all(target(r, role) == PAPER_NETWORKS[role] for role in PAPER_NETWORKS)


def network(r: Record, role: str) -> str:
    """'MLP [500]', 'conv (channels 32, 64; hidden 256)', or another network's class name."""
    model, found = model_config(r), target(r, role)
    if found == PAPER_NETWORKS[role]:
        hidden = model.get("hidden_dims")
        return f"MLP [{setting(hidden)}]" if hidden else "MLP"
    if found == CONV[role]:
        node = model[role]
        return f"conv (channels {setting(node.get('channels'))}; hidden {node.get('hidden_dim')})"
    return found.rsplit(".", 1)[-1]


def networks(r: Record) -> str:
    """The encoder's and decoder's names, once if they are alike ('MLP [500]')."""
    encoder, decoder = network(r, "encoder"), network(r, "decoder")
    return encoder if encoder == decoder else f"{encoder} encoder, {decoder} decoder"


def variant(r: Record) -> str:
    """'' for AEVB on the paper's MLPs; else what sets the record apart, for file names:
    '_wake_sleep', '_conv', '_iwae_conv'."""
    parts = [] if objective(r) == "elbo" else [objective(r)]
    if not paper_networks(r):
        parts += dict.fromkeys(kind(r, role) for role in PAPER_NETWORKS)
    return "".join(f"_{part}" for part in parts)


def kind(r: Record, role: str) -> str:
    """'mlp', 'conv', or the lower-case class name of another network."""
    found = target(r, role)
    if found == PAPER_NETWORKS[role]:
        return "mlp"
    return "conv" if found == CONV[role] else found.rsplit(".", 1)[-1].lower()


def optimiser_settings(r: Record) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The optimiser's config less its implementation choices, and the scheduler's, if any."""
    model = model_config(r)
    optimizer = {
        k: v
        for k, v in (model.get("optimizer") or {}).items()
        if k != "_partial_" and k not in IMPLEMENTATION
    }
    scheduler = model.get("scheduler")
    if scheduler:
        scheduler = {k: v for k, v in scheduler.items() if k != "_partial_"}
    return optimizer, scheduler or None


def described(node: dict[str, Any]) -> str:
    """'Adam (lr 0.001, weight decay 0)': the class's name and its settings."""
    name = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
    values = [f"{k.replace('_', ' ')} {setting(v)}" for k, v in node.items() if k != "_target_"]
    return f"{name} ({', '.join(values)})" if values else name


def optimiser(r: Record) -> str:
    """The optimiser with its settings, and the scheduler with its, as the config gives them."""
    optimizer, scheduler = optimiser_settings(r)
    text = described(optimizer) if optimizer else "the default optimiser"
    return f"{text}, scheduler {described(scheduler)}" if scheduler else text


def same_optimiser(a: Record, b: Record) -> bool:
    return optimiser_settings(a) == optimiser_settings(b)


@dataclass
class Layout:
    """Where the report shows the records (other than studies and record runs)."""

    grid: list[Record]  # the data sets' sections: the paper's MLPs, AEVB or wake-sleep
    networks: list[tuple[Record, Record | None]]  # (other networks, the MLP record or None)
    iwae: list[tuple[Record | None, Record]]  # (the ELBO record or None, the IWAE record)


def closest(record: Record, candidates: list[Record]) -> Record | None:
    """The candidate with the record's training samples, else the first (report order)."""
    same = [c for c in candidates if c.samples_seen == record.samples_seen]
    return (same or candidates or [None])[0]


def but_objective(r: Record) -> dict[str, Any]:
    """The record's model config less its objective."""
    return {k: v for k, v in model_config(r).items() if k != "objective"}


def elbo_partner(iwae: Record, records: list[Record]) -> Record | None:
    """The record trained with the ELBO on the IWAE record's network: its model config the
    same but for the objective, else the same data set, networks, latent size and samples of z."""
    candidates = [
        r
        for r in records
        if objective(r) == "elbo"
        and r.data == iwae.data
        and r.latent_dim == iwae.latent_dim
        and networks(r) == networks(iwae)
        and model_config(r).get("num_samples") == model_config(iwae).get("num_samples")
    ]
    exact = [r for r in candidates if but_objective(r) == but_objective(iwae)]
    return closest(iwae, exact or candidates)


def paper_partner(record: Record, grid: list[Record]) -> Record | None:
    """The grid's record of the paper's networks with the record's data set, latent size and
    method."""
    candidates = [
        r
        for r in grid
        if r.data == record.data
        and r.latent_dim == record.latent_dim
        and objective(r) == objective(record)
    ]
    return closest(record, candidates)


def layout(records: list[Record]) -> Layout:
    """The grid, the records of other networks and the IWAE pairs among ``records``, which
    are neither studies nor record runs of a published model; an IWAE record's ELBO partner
    may be a record run (shown in both places)."""
    shown = [r for r in records if not r.study]
    rest = [r for r in shown if r.experiment not in PUBLISHED]
    iwae = [(elbo_partner(r, shown), r) for r in rest if objective(r) == "iwae"]
    paired = {id(r) for pair in iwae for r in pair if r is not None}
    rest = [r for r in rest if id(r) not in paired]
    grid = [r for r in rest if paper_networks(r)]
    others = [(r, paper_partner(r, grid)) for r in rest if not paper_networks(r)]
    return Layout(grid, others, iwae)


def method_pairs(grid: list[Record]) -> list[tuple[Record | None, Record | None]]:
    """Per data set and latent size of the grid, (AEVB, wake-sleep): each wake-sleep record
    with the AEVB record of its panel (closest), an AEVB record without one with None."""
    pairs: list[tuple[Record | None, Record | None]] = []
    for panel in dict.fromkeys((r.data, r.latent_dim) for r in grid):
        runs = [r for r in grid if (r.data, r.latent_dim) == panel]
        aevb = [r for r in runs if objective(r) == "elbo"]
        sleep = [r for r in runs if objective(r) == "wake_sleep"]
        pairs += [(closest(s, aevb), s) for s in sleep] if sleep else [(a, None) for a in aevb]
    return pairs


def paired_records(pairs: list[tuple[Record | None, Record | None]]) -> list[Record]:
    """The records of pairs, each once, in the pairs' order."""
    return list({r.name: r for pair in pairs for r in pair if r is not None}.values())
