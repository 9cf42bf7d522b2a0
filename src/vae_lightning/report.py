"""The results report from run records: `python -m vae_lightning.report RECORDS... --out DIR`.

A record is a folder with a run's ``config.yaml``, ``summary.json``, ``metrics.csv`` and the
``eval.json``, ``manifold.png`` and ``samples.png`` of its test evaluation, as
``python -m vae_lightning.evaluation.record`` copies them into ``docs/runs/<name>/``. A
training run folder is read the same way, its evaluation being the newest ``eval/*_test/``.
Each argument is a record or a folder of records. The report is ``<out>/results.md`` and
``<out>/figures/*.png``: the same records give the same bytes (records in a fixed order,
paths relative to the working directory, no dates, PNGs without metadata). Its discussion is
the text of the ``discussion.md`` files among the arguments' folders, so it survives every
regeneration. A folder of records that holds a ``study.md`` is a study: runs that differ in a
few settings, reported in a section of their own (its title and text from ``study.md``) with
the settings that differ, instead of in the data set's grid.
"""

import argparse
import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor

from vae_lightning.errors import UserError
from vae_lightning.evaluation.figures import is_titled, manifold_axes, save_titled_grid
from vae_lightning.literature import PUBLISHED, experiment, overrides, training_hours

# The data module class of a run's config (data._target_) -> (file name stem, title).
DATA_SETS = {
    "MNISTDataModule": ("mnist", "MNIST"),
    "FreyFaceDataModule": ("frey_face", "Frey Face"),
}
# Kingma & Welling (2014), Figure 2: the lower bound per data point after 10^8 training
# samples, read off the figure (as this project first reported it): MNIST latent sizes 10 and
# 20 end at roughly -100 to -95 nats, Frey Face's runs at roughly 1,000 to 1,600 nats across
# latent sizes. Values per latent size are only drawn where read: (data, latent) -> band.
PAPER_SAMPLES = 10**8
PAPER_BOUNDS = {
    "MNISTDataModule": "roughly -100 to -95 nats for latent sizes 10 and 20",
    "FreyFaceDataModule": "roughly 1,000 to 1,600 nats across latent sizes",
}
PAPER_BANDS = {("MNISTDataModule", 10): (-100.0, -95.0), ("MNISTDataModule", 20): (-100.0, -95.0)}
DISCUSSION = "discussion.md"
STUDY = "study.md"
NO_DISCUSSION = f"_No discussion yet: write it in `{DISCUSSION}` beside the records._"
CURVE_POINTS = 40  # at most this many points per curve, log-spaced in training samples
PNG = {"dpi": 100, "metadata": {"Software": None}}  # no version or date: the same bytes
NONE = "—"


@dataclass
class Record:
    """One run: its data set, summary, global minibatch size and test evaluation, if any."""

    folder: Path
    data: str  # the data module class, e.g. MNISTDataModule
    summary: dict[str, Any]
    batch_size: int
    evaluation: dict[str, Any] | None
    eval_folder: Path | None
    experiment: str | None  # the `experiment=` of its command line
    overrides: list[str]  # its command line's overrides
    study: Path | None  # the folder of the study it belongs to (STUDY), if any
    snapshots: list[dict[str, Any]]  # test evaluations of its snapshots (record --snapshots)

    @property
    def latent_dim(self) -> int:
        return self.summary["latent_dim"]

    @property
    def samples_seen(self) -> int:
        return self.summary.get("samples_seen", self.summary["steps"] * self.batch_size)

    @property
    def title(self) -> str:
        return DATA_SETS.get(self.data, (self.data, self.data))[1]

    @property
    def stem(self) -> str:
        return DATA_SETS.get(self.data, (self.data, self.data))[0]

    def metric(self, name: str) -> dict[str, float] | None:
        """{mean, sem} of an evaluation metric, if the evaluation computed it."""
        return (self.evaluation or {}).get("metrics", {}).get(name)


def load_record(folder: Path) -> Record:
    """The record in ``folder``: its own eval.json, else the newest ``eval/*_test/``."""
    evaluations = [folder / "eval.json"] if (folder / "eval.json").is_file() else []
    evaluations = evaluations or sorted((folder / "eval").glob("*_test/eval.json"))[-1:]
    data = OmegaConf.load(folder / "config.yaml").data
    summary = json.loads((folder / "summary.json").read_text())
    steps = summary.get("steps") or 0
    return Record(
        folder=folder,
        data=data._target_.rsplit(".", 1)[-1],
        summary=summary,
        # samples seen / steps is the global minibatch (all processes).
        batch_size=summary.get("samples_seen", steps * data.batch_size) // steps
        if steps
        else data.batch_size,
        evaluation=json.loads(evaluations[0].read_text()) if evaluations else None,
        eval_folder=evaluations[0].parent if evaluations else None,
        experiment=experiment(folder),
        overrides=overrides(folder),
        study=folder.parent if (folder.parent / STUDY).is_file() else None,
        snapshots=[json.loads(p.read_text()) for p in sorted(folder.glob("snapshots/*.json"))],
    )


def find_records(roots: list[Path]) -> list[Record]:
    """The records (folders with a summary.json) under the roots, by data set, latent size and
    training samples."""
    folders = {p.parent for root in roots for p in root.rglob("summary.json")}
    known = list(DATA_SETS)

    def order(record: Record) -> tuple:
        rank = known.index(record.data) if record.data in known else len(known)
        return rank, record.data, record.latent_dim, record.samples_seen, shown(record.folder)

    return sorted((load_record(folder) for folder in folders), key=order)


def shown(path: Path) -> str:
    """The path relative to the working directory if inside it, else its last two parts."""
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix()
    return "/".join(resolved.parts[-2:])


def powers_of_ten(n: float) -> str:
    """1000000 -> '10^6', 2500000 -> '2.5 x 10^6'."""
    mantissa, exponent = f"{n:.1e}".split("e")
    power = f"10^{int(exponent)}"
    return power if mantissa == "1.0" else f"{mantissa.rstrip('0').rstrip('.')} x {power}"


def wall_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def with_sem(value: dict[str, float] | None) -> str:
    return NONE if value is None else f"{value['mean']:.2f} ± {value['sem']:.2f}"


def points(evaluation: dict[str, Any]) -> str:
    """An evaluation's points: 'all 10,000', '1,000 of 10,000 (seed 0)' or as first-N ones."""
    subset = evaluation.get("subset")
    if subset is None:  # evaluations before seeded subsets took the first N points
        return f"first {evaluation['num_data_points']:,}"
    if subset["indices_sha256"] == "all":
        return f"all {subset['split_size']:,}"
    return f"{subset['num_points']:,} of {subset['split_size']:,} (seed {subset['seed']})"


def table(records: list[Record]) -> list[str]:
    """A data set's results, one row per record; ELBO and IS of the same evaluated points."""
    header = ["latent", "training samples", "test points", "test ELBO", "IS log p(x)"]
    header += ["IS - ELBO", "K", "train ELBO (last epoch)", "wall time", "machine"]
    if binarised := records[0].data == "MNISTDataModule":
        header.append("binarisation")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for record in records:
        metrics, evaluation = record.summary["metrics"], record.evaluation
        if evaluation:
            evaluated = [points(record.evaluation), with_sem(record.metric("elbo"))]
            evaluated += [with_sem(record.metric("log_likelihood_is"))]
            evaluated += [
                with_sem(record.metric("is_minus_elbo")),
                str(evaluation["num_importance_samples"]),
            ]
        else:  # the test of the training run: the whole split, no IS
            test = metrics.get("test/elbo")
            evaluated = ["all", NONE if test is None else f"{test:.2f}", NONE, NONE, NONE]
        train = metrics.get("train/elbo")
        cells = [str(record.latent_dim), f"{record.samples_seen:,}", *evaluated]
        cells += [NONE if train is None else f"{train:.2f}"]
        cells += [wall_time(record.summary["wall_time_s"]), record.summary.get("machine", NONE)]
        if binarised:
            cells.append(record.summary["binarize"])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def estimator_table(records: list[Record]) -> list[str]:
    """The importance sampler's own spread: two independent K/2 estimates on the same points."""
    rows = [r for r in records if r.metric("is_half_k_difference") is not None]
    if not rows:
        return []
    lines = [
        "The IS estimate at K is the combination of two independent estimates at K/2 on the "
        "same points. Their difference shows the estimator's own noise on the mean; the rise "
        "from K/2 to K shows that the estimate is still climbing towards log p(x):",
        "",
        "| latent | training samples | IS at K/2 | IS at K | rise K/2 → K "
        "| difference of the two K/2 estimates |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        half, full = r.metric("log_likelihood_is_half_k"), r.metric("log_likelihood_is")
        lines.append(
            f"| {r.latent_dim} | {r.samples_seen:,} | {half['mean']:.2f} | {full['mean']:.2f} "
            f"| {full['mean'] - half['mean']:.2f} | {with_sem(r.metric('is_half_k_difference'))} |"
        )
    return [*lines, ""]


def read_curve(metrics_csv: Path, key: str) -> list[tuple[int, float]]:
    """[(step + 1, value)] of the rows of metrics.csv where ``key`` is set (epoch ends); none
    for a run without metrics.csv (logged to W&B only)."""
    curve = []
    if not metrics_csv.is_file():
        return curve
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(key) and math.isfinite(value := float(row[key])):
                curve.append((int(float(row["step"])) + 1, value))
    return curve


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


def save_elbo_curves(records: list[Record], path: Path) -> None:
    """The paper's Figure 2: per latent size a panel of train and validation ELBO against
    training samples seen (log scale), epoch ends thinned to a log-spaced schedule; the test
    ELBO of the evaluation at the end, and the paper's final values where read."""
    latents = sorted({r.latent_dim for r in records})
    fig = Figure(figsize=(4 * len(latents), 4.5))
    axes = fig.subplots(1, len(latents), sharey=True, squeeze=False)[0]
    for ax, latent in zip(axes, latents, strict=True):
        runs = [r for r in records if r.latent_dim == latent]
        for i, run in enumerate(runs):
            shade = colormaps["tab10"](i)
            budget = f" ({powers_of_ten(run.samples_seen)})" if len(runs) > 1 else ""
            for key, marker, style in (("train/elbo", "o", "-"), ("val/elbo", "s", "--")):
                curve = read_curve(run.folder / "metrics.csv", key)
                if curve := log_spaced([(s * run.batch_size, v) for s, v in curve]):
                    x, y = zip(*curve, strict=True)
                    label = f"{key.split('/')[0]}{budget}"
                    ax.plot(x, y, style, marker=marker, markersize=4, color=shade, label=label)
            if test := run.metric("elbo"):
                ax.plot(
                    run.samples_seen,
                    test["mean"],
                    "*",
                    markersize=12,
                    color=shade,
                    label=f"test, evaluation{budget}",
                )
        if band := PAPER_BANDS.get((runs[0].data, latent)):
            ax.axhspan(*band, color="grey", alpha=0.25, label="paper, after $10^8$")
        ax.set(xscale="log", title=f"{runs[0].title}, latent {latent}", xlabel="training samples")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades labelled, never overlapping
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    axes[0].set_ylabel("ELBO (nats per data point)")
    fig.tight_layout()
    fig.savefig(path, **PNG)


def save_image_figure(source: Path, title: str, path: Path, axes: Tensor | None) -> None:
    """An evaluation's image grid (samples or manifold) for the report: a figure the evaluation
    drew titled already is copied as it is, a bare grid (older evaluations) is drawn titled."""
    if is_titled(source):
        shutil.copyfile(source, path)
    else:
        save_titled_grid(Image.open(source), title, path, axes, **PNG)


def figure(path: str, caption: str) -> list[str]:
    return [f"![{caption}]({path})", "", f"*{caption}*", ""]


def image_figures(records: list[Record], out: Path) -> list[str]:
    """The manifold (Figure 4) and prior samples (Figure 5) of each evaluation, titled."""
    lines = []
    for r in records:
        if r.eval_folder is None:
            continue
        budget = powers_of_ten(r.samples_seen)
        name = f"{r.stem}_latent{r.latent_dim}_{r.samples_seen}"
        axes = manifold_axes(r.evaluation.get("manifold_size", 20))  # older, bare grids: prior
        for kind, what, grid_axes in (
            ("manifold", "learned 2-D manifold, E[x|z] (Figure 4)", axes),
            ("samples", "E[x|z] of samples z from the prior (Figure 5)", None),
        ):
            if (source := r.eval_folder / f"{kind}.png").is_file():
                target = f"figures/{name}_{kind}.png"
                title = f"{r.title}, latent {r.latent_dim}, {budget} samples: {what}"
                save_image_figure(source, title, out / target, grid_axes)
                lines += figure(target, title + ".")
    return lines


def data_section(records: list[Record], out: Path) -> list[str]:
    """A data set's table, its Figure 2 and the figures of its evaluations."""
    title, stem = records[0].title, records[0].stem
    lines = [f"## {title}", "", *table(records), ""]
    lines += [
        "Nats per data point, higher is better. Test ELBO and IS log p(x) are of the same test "
        "points (column *test points*) in one evaluation of the best checkpoint: the mean over "
        "those points ± its standard error over the points (how much the mean would move with "
        "other points; not the estimator's own error). IS: the importance-sampled estimate with "
        "K samples from q(z|x); IS - ELBO, the same-point difference, is (in expectation) a "
        "lower bound on the mean KL(q(z|x) || p(z|x)), not the KL itself: it grows with K. "
        "Train ELBO: the mean over the last training epoch (dynamically binarised on MNIST). "
        "Wall time: training and its test.",
        "",
        *estimator_table(records),
    ]
    curves = f"figures/{stem}_elbo_curves.png"
    save_elbo_curves(records, out / curves)
    lines += figure(
        curves,
        f"Figure 2 for {title}: train ELBO (circles, solid) and validation ELBO (squares, "
        "dashed; held out of the training split) at the ends of epochs, thinned to at most "
        f"{CURVE_POINTS} log-spaced points, against training samples seen; the star is the test "
        "ELBO of the evaluation, the grey band the paper's final value where it was read.",
    )
    return lines + image_figures(records, out)


def validation_elbos_at(record: Record, budgets: tuple[int, ...]) -> list[float | None]:
    """For each budget, the validation ELBO of the first epoch end at which that many training
    samples had been seen (Figure 2's curve), or None if the run did not get there."""
    curve = read_curve(record.folder / "metrics.csv", "val/elbo")
    return [next((v for s, v in curve if s * record.batch_size >= n), None) for n in budgets]


COMPARED_BUDGETS = (10**6, 10**7)  # training samples at which the validation ELBO is compared


def comparison(records: list[Record]) -> list[str]:
    """Per data set and latent size: our validation ELBO along the way, test ELBO (and IS) at
    the end, and the paper's."""
    budgets = [f"val ELBO at {powers_of_ten(n)}" for n in COMPARED_BUDGETS]
    lines = [
        "## Comparison with the paper",
        "",
        f"Kingma & Welling (2014), Figure 2, trained each model on {powers_of_ten(PAPER_SAMPLES)} "
        "training samples; its values below are read off that figure (approximate). The "
        "validation ELBO is that of the first epoch end at the budget, from the run's curve.",
        "",
        f"| data | latent | training samples | {' | '.join(budgets)} | test ELBO | IS log p(x) "
        "| paper (10^8) |",
        "|" + " --- |" * (6 + len(budgets)),
    ]
    for r in records:
        along = validation_elbos_at(r, COMPARED_BUDGETS)
        along_cells = " | ".join(NONE if v is None else f"{v:.2f}" for v in along)
        test = r.metric("elbo") or {"mean": r.summary["metrics"].get("test/elbo", math.nan)}
        band = PAPER_BANDS.get((r.data, r.latent_dim))
        paper = f"{band[0]:.0f} to {band[1]:.0f}" if band else NONE
        is_value = r.metric("log_likelihood_is")
        is_cell = NONE if is_value is None else f"{is_value['mean']:.2f}"
        lines.append(
            f"| {r.title} | {r.latent_dim} | {powers_of_ten(r.samples_seen)} | {along_cells} "
            f"| {test['mean']:.2f} | {is_cell} | {paper} |"
        )
    lines.append("")
    for data, bound in PAPER_BOUNDS.items():
        title = DATA_SETS[data][1]
        lines.append(f"- **{title}**, the paper: {bound}.")
    return lines


def save_learning_curves(
    records: list[Record], hours: dict[Path, list[tuple[float, int]]], path: Path
) -> None:
    """Per record run, the validation ELBO against hours of training steps (`hours`, by
    record folder), the test log p(x) as a star at the end, the published value dashed."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for i, r in enumerate(records):
        colour = f"C{i}"
        at = {step: h for h, step in hours[r.folder]}
        # read_curve gives step + 1; the epoch-end rows of a record share their step.
        val = read_curve(r.folder / "metrics.csv", "val/elbo")
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


def records_section(records: list[Record], out: Path) -> list[str]:
    """The "Records" section of the report for the record runs among `records`."""
    lines = [
        "## Records",
        "",
        "Record runs of a published model, evaluated as the publication did: importance "
        "sampling with K samples from q(z|x), on the test points shown (MNIST dynamically "
        "binarised, one fixed draw). Training time: hours of training steps, validation and "
        "pauses excluded.",
        "",
        "| experiment | test points | IS log p(x) | test ELBO | K | training samples "
        "| training time | published | ours - published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    hours = {r.folder: training_hours(r.folder / "metrics.csv", r.batch_size) for r in records}
    for r in records:
        source, value = PUBLISHED[r.experiment]
        ours = r.metric("log_likelihood_is")
        difference = f"{ours['mean'] - value:+.2f}" if ours else NONE
        lines.append(
            f"| `{r.experiment}` | {points(r.evaluation)} | {with_sem(ours)} "
            f"| {with_sem(r.metric('elbo'))} "
            f"| {(r.evaluation or {}).get('num_importance_samples', NONE)} | "
            f"{r.samples_seen:,} | {hours[r.folder][-1][0]:.2f} h | {value:.2f} ({source}) | "
            f"{difference} |"
        )
    path = "figures/records_learning_curves.png"
    save_learning_curves(records, hours, out / path)
    lines += [
        "",
        *figure(
            path,
            "Record runs: validation ELBO (its held-out training images) at epoch ends against "
            "hours of training steps; the star is the test IS log p(x) of the evaluation at "
            "the end, the circles (for runs that kept snapshots of their weights) that of each "
            "snapshot, at the end of the epoch it was saved at; the dashed line is the "
            "published value.",
        ),
    ]
    return lines


def study_section(folder: Path, records: list[Record]) -> list[str]:
    """A study's section: the text of its STUDY file (its first line the title), then one row
    per record with the overrides that not every record of the study shares."""
    title, _, text = (folder / STUDY).read_text().strip("\n").partition("\n")
    shared = set.intersection(*(set(r.overrides) for r in records))
    header = ["record", "settings", "latent", "training samples", "test points"]
    header += ["train ELBO (last epoch)", "test ELBO", "IS log p(x)", "train - test ELBO"]
    lines = [f"## {title.lstrip('# ')}", "", text.strip("\n"), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in records:
        train, test = r.summary["metrics"].get("train/elbo"), r.metric("elbo")
        gap = NONE if train is None or test is None else f"{train - test['mean']:.2f}"
        settings = ", ".join(f"`{o}`" for o in r.overrides if o not in shared) or NONE
        cells = [f"`{r.folder.name}`", settings, str(r.latent_dim), f"{r.samples_seen:,}"]
        cells += [
            points(r.evaluation) if r.evaluation else NONE,
            NONE if train is None else f"{train:.2f}",
        ]
        cells += [with_sem(test), with_sem(r.metric("log_likelihood_is")), gap]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def discussion(roots: list[Path]) -> str:
    """The text of the discussion.md files in the roots (in the order given)."""
    files = [root / DISCUSSION for root in roots if (root / DISCUSSION).is_file()]
    return "\n".join(f.read_text().strip("\n") for f in files) or NO_DISCUSSION


def write_report(roots: list[Path], out: Path) -> Path:
    """Write ``out/results.md`` and its figures; returns the path of results.md."""
    records = find_records(roots)
    if not records:
        raise UserError(f"No record (a folder with a summary.json) under {list(map(str, roots))}.")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    lines = [
        "# Results: Auto-Encoding Variational Bayes",
        "",
        "Generated by `python -m vae_lightning.report` from the records listed under Sources; "
        f"the discussion comes from `{DISCUSSION}` beside them. Do not edit this file: "
        "regenerate it.",
        "",
    ]
    studies = {r.study: [q for q in records if q.study == r.study] for r in records if r.study}
    record_runs = [r for r in records if r.experiment in PUBLISHED and not r.study]
    grid = [r for r in records if r.experiment not in PUBLISHED and not r.study]
    for data in dict.fromkeys(r.data for r in grid):
        lines += data_section([r for r in grid if r.data == data], out)
    if grid:
        lines += comparison(grid)
    if record_runs:
        lines += ["", *records_section(record_runs, out)]
    for folder, members in studies.items():
        lines += ["", *study_section(folder, members)]
    lines += ["", "## Discussion", "", discussion(roots), ""]
    lines += ["## Sources", "", *(f"- `{shown(r.folder)}`" for r in records), ""]
    results = out / "results.md"
    results.write_text("\n".join(lines))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path, help="records or folders of records")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/report"), help="report folder (outputs/report)"
    )
    args = parser.parse_args(argv)
    try:
        print(f"Wrote {write_report(args.records, args.out)}")
    except UserError as err:
        parser.exit(2, f"{err}\n")


if __name__ == "__main__":
    main()
