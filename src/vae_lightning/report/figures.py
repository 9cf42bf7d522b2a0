"""The report's figures: Figure 2 (ELBO against training samples) per data set, the record
runs' learning curves, and the evaluations' image grids, as PNGs without metadata."""

import math
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter
from PIL import Image
from torch import Tensor

from vae_lightning.evaluation.figures import is_titled, manifold_axes, save_titled_grid
from vae_lightning.literature import PAPER_BANDS, PUBLISHED
from vae_lightning.report.formats import powers_of_ten
from vae_lightning.report.records import Record, points, read_curve
from vae_lightning.report.variants import (
    labelled_methods,
    method,
    method_rank,
    networks,
    paper_networks,
    variant,
)

CURVE_POINTS = 40  # at most this many points per curve, log-spaced in training samples
MARGIN = 0.05  # of a panel's ELBO span, above and below
PNG = {"dpi": 100, "metadata": {"Software": None}}  # no version or date: the same bytes


def log_spaced(curve: list[tuple[float, float]], count: int = CURVE_POINTS) -> list:
    """At most ``count`` points of the curve, the nearest to a log-spaced grid of x, in order;
    always its first and last."""
    if len(curve) <= count:
        return curve
    low, high = math.log(curve[0][0]), math.log(curve[-1][0])
    targets = [math.exp(low + (high - low) * i / (count - 1)) for i in range(count)]
    chosen, j = set(), 0
    for target in targets:
        while j + 1 < len(curve) and abs(curve[j + 1][0] - target) <= abs(curve[j][0] - target):
            j += 1
        chosen.add(j)
    return [curve[i] for i in sorted(chosen)]


def zoomed(curves: list[list[float]], marks: list[float]) -> tuple[float, float]:
    """A panel's ELBO axis: from the lowest to the highest value of its curves after each
    curve's first point (the model after one epoch, often far below the rest) and of its
    marks (test ELBOs, the paper's band), widened by MARGIN of that span each way."""
    shown = [v for curve in curves for v in (curve[1:] or curve)] + marks
    low, high = min(shown), max(shown)
    pad = MARGIN * (high - low or 1.0)
    return low - pad, high + pad


def save_elbo_curves(records: list[Record], path: Path) -> None:
    """The paper's Figure 2: per latent size a panel of train and validation ELBO against
    training samples seen (log scale), epoch ends thinned to a log-spaced schedule; the test
    ELBO of the evaluation at the end, and the paper's final values where read. Each panel
    has its own ELBO axis (zoomed). Where a record's method is not AEVB (wake-sleep), each
    curve's label starts with its method, AEVB's first, in one legend below the panels."""
    latents = sorted({r.latent_dim for r in records})
    several = labelled_methods(records)
    fig = Figure(figsize=(4 * len(latents), 5.5 if several else 4.5))
    axes = fig.subplots(1, len(latents), squeeze=False)[0]
    for ax, latent in zip(axes, latents, strict=True):
        runs = sorted((r for r in records if r.latent_dim == latent), key=method_rank)
        curves, marks = [], []
        for i, run in enumerate(runs):
            shade = colormaps["tab10"](i)
            alike = [r for r in runs if method(r) == method(run)]
            budget = f" ({powers_of_ten(run.samples_seen)})" if len(alike) > 1 else ""
            who = f"{method(run)}, " if several else ""
            for key, marker, style in (("train/elbo", "o", "-"), ("val/elbo", "s", "--")):
                curve = read_curve(run, key)
                if curve := log_spaced([(s * run.batch_size, v) for s, v in curve]):
                    x, y = zip(*curve, strict=True)
                    label = f"{who}{key.split('/')[0]}{budget}"
                    ax.plot(x, y, style, marker=marker, markersize=4, color=shade, label=label)
                    curves.append(list(y))
            if test := run.metric("elbo"):
                label = f"{who}test, evaluation{budget}"
                ax.plot(
                    run.samples_seen, test["mean"], "*", markersize=12, color=shade, label=label
                )
                marks.append(test["mean"])
        if band := PAPER_BANDS.get((runs[0].data, latent)):
            paper = "paper's AEVB" if several else "paper"
            ax.axhspan(*band, color="grey", alpha=0.25, label=f"{paper}, after $10^8$")
            marks += band
        if curves or marks:
            ax.set_ylim(*zoomed(curves, marks))
        ax.set(xscale="log", title=f"{runs[0].title}, latent {latent}", xlabel="training samples")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades labelled, never overlapping
        ax.grid(alpha=0.3)
        if not several:
            ax.legend(fontsize="small", loc="lower right")
    axes[0].set_ylabel("ELBO (nats per data point)")
    if several:  # one legend below the panels, over none of the curves: a column a method
        methods = [method(r) for r in sorted(records, key=method_rank)]
        columns: dict[str, dict[str, Any]] = {m: {} for m in methods} | {"": {}}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                column = next((m for m in methods if label.startswith(f"{m}, ")), "")
                columns[column].setdefault(label, handle)
        columns = {m: entries for m, entries in columns.items() if entries}
        rows = max(map(len, columns.values()))
        blank = Line2D([], [], linestyle="none")
        entries = [
            entry
            for column in columns.values()
            for entry in [*column.items(), *[("", blank)] * (rows - len(column))]
        ]
        labels, handles = zip(*entries, strict=True)
        fig.legend(handles, labels, loc="lower center", ncol=len(columns))
        fig.tight_layout(rect=(0, (0.15 + 0.25 * rows) / fig.get_figheight(), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, **PNG)


KL_LATENTS = 20  # the smallest latent size whose KL per dimension the report draws
KL_FLOOR = 1e-5  # nats: a smaller KL is drawn at this floor (the axis is logarithmic)


def kl_records(records: list[Record]) -> list[Record]:
    """The records whose evaluation gives the KL per dimension, of latent size KL_LATENTS or
    more."""
    return [r for r in records if r.latent_diagnostics and r.latent_dim >= KL_LATENTS]


def save_kl_per_dimension(records: list[Record], path: Path) -> None:
    """Per latent size a panel of each record's KL per dimension, E_x KL(q(z_j|x) || p(z_j))
    over its evaluated test points, largest first; filled markers for the active units (their
    activity above the evaluation's threshold), hollow ones for the others."""
    latents = sorted({r.latent_dim for r in records})
    fig = Figure(figsize=(4.5 * len(latents), 4.5))
    axes = fig.subplots(1, len(latents), squeeze=False)[0]
    for ax, latent in zip(axes, latents, strict=True):
        runs = [r for r in records if r.latent_dim == latent]
        for i, run in enumerate(runs):
            shade, diagnostics = colormaps["tab10"](i), run.latent_diagnostics
            kl = diagnostics["kl_per_dim"]
            order = sorted(range(len(kl)), key=lambda j: -kl[j])
            ranks, values = range(1, len(kl) + 1), [max(kl[j], KL_FLOOR) for j in order]
            label = f"{run.name}: {diagnostics['active_units']:,} of {len(kl):,} units active"
            ax.plot(ranks, values, "-", color=shade, label=label)
            if (activity := diagnostics.get("unit_activity")) is not None:
                threshold = diagnostics["active_unit_threshold"]
                faces = [shade if activity[j] > threshold else "none" for j in order]
                size = 16 if len(kl) <= 50 else 6
                ax.scatter(ranks, values, s=size, facecolors=faces, edgecolors=[shade], zorder=3)
        ax.set(yscale="log", ylim=(KL_FLOOR / 2, None), xlabel="dimension, by decreasing KL")
        ax.set_title(f"{runs[0].title}, latent {latent}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
    axes[0].set_ylabel("KL per dimension (nats per data point)")
    fig.tight_layout()
    fig.savefig(path, **PNG)


def save_learning_curves(
    records: list[Record], hours: dict[str, list[tuple[float, int]]], path: Path
) -> None:
    """Per record run, the validation ELBO against hours of training steps (`hours`, by
    record name), the test log p(x) as a star at the end, the published value dashed."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for i, r in enumerate(records):
        colour = f"C{i}"
        at = {step: h for h, step in hours[r.name]}
        # read_curve gives step + 1; the epoch-end rows of a record share their step.
        val = read_curve(r, "val/elbo")
        if curve := sorted({at[s - 1]: v for s, v in val if s - 1 in at}.items()):
            ax.plot(*zip(*curve, strict=True), "-", color=colour, label=f"{r.experiment}, val ELBO")
        # A snapshot of step n is saved at the end of the epoch whose rows are logged at n - 1.
        snapshots = [(e["checkpoint_step"] - 1, e) for e in r.snapshots]
        if curve := [
            (at[s], e["metrics"]["log_likelihood_is"]["mean"]) for s, e in snapshots if s in at
        ]:
            what = f"test IS log p(x), {points(r.snapshots[0])}"
            ax.plot(*zip(*curve, strict=True), "o:", color=colour, label=f"{what}, snapshots")
        if ours := r.metric("log_likelihood_is"):
            end = max(at.values(), default=0.0)
            label = f"test IS log p(x), {points(r.evaluation)}"
            ax.plot(end, ours["mean"], "*", markersize=14, color=colour, label=label)
        source, value = PUBLISHED[r.experiment]
        ax.axhline(value, ls="--", color=colour, alpha=0.6, label=f"{value:.2f}: {source}")
    ax.set(xlabel="hours of training steps", ylabel="nats per data point")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -110))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, **PNG)


def save_image_figure(source: Path, title: str, path: Path, axes: Tensor | None) -> None:
    """An evaluation's image grid (samples or manifold) for the report: a figure the evaluation
    drew titled already is copied as it is, a bare grid (older evaluations) is drawn titled."""
    if is_titled(source):
        shutil.copyfile(source, path)
    else:
        save_titled_grid(Image.open(source), title, path, axes, **PNG)


def described_training(r: Record) -> str:
    """'wake-sleep', 'conv (channels 32, 64; hidden 256)' or both: what sets a record apart
    from AEVB on the paper's MLPs."""
    parts = [] if method(r) == "AEVB" else [method(r)]
    return ", ".join(parts + ([] if paper_networks(r) else [networks(r)]))


def figure(path: str, caption: str) -> list[str]:
    return [f"![{caption}]({path})", "", f"*{caption}*", ""]


def image_figures(records: list[Record], out: Path) -> list[str]:
    """The manifold (Figure 4) and prior samples (Figure 5) of each evaluation, titled."""
    lines = []
    for r in records:
        if r.eval_folder is None:
            continue
        budget = powers_of_ten(r.samples_seen)
        # AEVB on the paper's MLPs as ever; others named by what sets them apart.
        name = f"{r.stem}_latent{r.latent_dim}_{r.samples_seen}{variant(r)}"
        trained = "" if not variant(r) else f", {described_training(r)}"
        axes = manifold_axes(r.evaluation.get("manifold_size", 20))  # older, bare grids: prior
        for kind, what, grid_axes in (
            ("manifold", "learned 2-D manifold, E[x|z] (Figure 4)", axes),
            ("samples", "E[x|z] of samples z from the prior (Figure 5)", None),
        ):
            if (source := r.eval_folder / f"{kind}.png").is_file():
                target = f"figures/{name}_{kind}.png"
                title = f"{r.title}, latent {r.latent_dim}, {budget} samples{trained}: {what}"
                save_image_figure(source, title, out / target, grid_axes)
                lines += figure(target, title + ".")
    return lines
