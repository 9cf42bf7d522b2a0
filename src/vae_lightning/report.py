"""The results report from run folders alone: `python -m vae_lightning.report ROOT ... --out docs`.

Reads each run folder under the roots (``summary.json``, ``config.yaml``, ``metrics.csv`` and
its newest test evaluation ``eval/<time>_test/``) and writes ``<out>/results.md`` and
``<out>/figures/*.png``. The discussion between the markers of an earlier ``results.md`` is
kept, so regenerating the report never loses it.
"""

import argparse
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from vae_lightning.errors import UserError
from vae_lightning.evaluation.figures import PLOT_DPI, PLOT_SIZE_INCHES, read_epoch_curves

# The data module class of a run's config (data._target_) -> (file name stem, title).
DATA_SETS = {
    "MNISTDataModule": ("mnist", "MNIST"),
    "FreyFaceDataModule": ("frey_face", "Frey Face"),
}
# Kingma & Welling (2014), Figure 2: the lower bound per data point after 10^8 samples.
PAPER_SAMPLES = 10**8
PAPER_BOUNDS = {
    "MNISTDataModule": "roughly -100 to -95 nats for latent sizes 10 to 20",
    "FreyFaceDataModule": "roughly 1,000 to 1,600 nats",
}
# The figures of an evaluation folder copied into the report, with their captions.
EVAL_FIGURES = {"manifold": "learned 2-D manifold", "samples": "samples from the prior"}
DISCUSSION_START, DISCUSSION_END = "<!-- discussion -->", "<!-- /discussion -->"
NEW_DISCUSSION = "_To be written. Regenerating the report keeps the text between these markers._"
NONE = "—"


@dataclass
class Run:
    """One run folder: its data set, summary, minibatch size and newest test evaluation."""

    folder: Path
    data: str  # the data module class, e.g. MNISTDataModule
    summary: dict[str, Any]
    batch_size: int
    evaluation: dict[str, Any] | None
    eval_folder: Path | None

    @property
    def latent_dim(self) -> int:
        return self.summary["latent_dim"]

    @property
    def samples_seen(self) -> int:
        """As the run recorded it (all processes), else steps x minibatch size."""
        return self.summary.get("samples_seen", self.summary["steps"] * self.batch_size)

    @property
    def machine(self) -> str:
        """The machine as the run or its evaluation recorded it (field `machine`)."""
        for record in (self.summary, self.evaluation or {}):
            if record.get("machine"):
                return str(record["machine"])
        return "not recorded"


def load_run(folder: Path) -> Run:
    """The run in ``folder``; its evaluation is the newest ``eval/*_test/eval.json``."""
    evaluations = sorted((folder / "eval").glob("*_test/eval.json"))
    newest = evaluations[-1] if evaluations else None
    data = OmegaConf.load(folder / "config.yaml").data
    return Run(
        folder=folder,
        data=data._target_.rsplit(".", 1)[-1],
        summary=json.loads((folder / "summary.json").read_text()),
        batch_size=data.batch_size,
        evaluation=json.loads(newest.read_text()) if newest else None,
        eval_folder=newest.parent if newest else None,
    )


def find_runs(roots: list[Path]) -> list[Run]:
    """The finished runs (with a summary.json) under the roots, by data set and latent size."""
    folders = {p.parent for root in roots for p in root.rglob("summary.json")}
    known = list(DATA_SETS)

    def order(run: Run) -> tuple:
        rank = known.index(run.data) if run.data in known else len(known)
        return rank, run.data, run.latent_dim, str(run.folder)

    return sorted((load_run(folder) for folder in folders), key=order)


def powers_of_ten(n: float) -> str:
    """1000000 -> '10^6', 2500000 -> '2.5 x 10^6'."""
    mantissa, exponent = f"{n:.1e}".split("e")
    power = f"10^{int(exponent)}"
    return power if mantissa == "1.0" else f"{mantissa.rstrip('0').rstrip('.')} x {power}"


def wall_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def importance_sampled(run: Run) -> str:
    """'mean ± s.e. (K = ..., N points)' of the run's newest test evaluation, or '—'."""
    if run.evaluation is None:
        return NONE
    record = run.evaluation
    value = record["metrics"]["log_likelihood_is"]
    cell = (
        f"{value['mean']:.2f} ± {value['sem']:.2f} (K = {record['num_importance_samples']}, "
        f"{record['num_data_points']} points"
    )
    if record["binarize"] != run.summary["binarize"]:
        cell += f", binarize={record['binarize']}"
    return cell + ")"


def table(runs: list[Run]) -> list[str]:
    """The markdown table of a data set's runs, one row per run."""
    binarised = runs[0].data == "MNISTDataModule"
    header = ["latent", "training samples seen", "test ELBO", "train ELBO (final epoch)"]
    header += ["IS log-likelihood", "wall time", "machine"]
    if binarised:
        header.append("binarisation")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in runs:
        metrics = run.summary["metrics"]
        cells = [
            str(run.latent_dim),
            f"{run.samples_seen:,}",
            f"{metrics['test/elbo']:.2f}" if "test/elbo" in metrics else NONE,
            f"{metrics['train/elbo']:.2f}" if "train/elbo" in metrics else NONE,
            importance_sampled(run),
            wall_time(run.summary["wall_time_s"]),
            run.machine,
        ]
        if binarised:
            cells.append(run.summary["binarize"])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def save_elbo_curves(runs: list[Run], title: str, path: Path) -> None:
    """The paper's Figure 2: train (solid) and validation (dashed) ELBO against training
    samples seen, (step + 1) x minibatch size at each epoch's end, one colour per latent size."""
    fig = Figure(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI)
    ax = fig.subplots()
    for i, run in enumerate(runs):
        colour = colormaps["viridis"](i / max(len(runs) - 1, 1))
        curves = read_epoch_curves(run.folder / "metrics.csv", ("train/elbo", "val/elbo"), "step")
        for key, style in (("train/elbo", "-"), ("val/elbo", "--")):
            if points := curves[key]:
                steps, values = zip(*points, strict=True)
                samples = [(s + 1) * run.batch_size for s in steps]
                label = f"latent {run.latent_dim}, {key.split('/')[0]}"
                ax.plot(samples, values, style, color=colour, label=label)
    ax.set(
        xscale="log",
        xlabel="training samples seen",
        ylabel="ELBO (nats per data point)",
        title=f"{title}: train (solid) and validation (dashed) ELBO",
    )
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=PLOT_DPI)


def figure(path: str, caption: str) -> list[str]:
    return [f"![{caption}]({path})", "", f"*{caption}*", ""]


def data_section(runs: list[Run], out: Path) -> list[str]:
    """A data set's table, its Figure 2 and the manifold and prior samples of its evaluations."""
    data, title = DATA_SETS.get(runs[0].data, (runs[0].data, runs[0].data))
    lines = [f"## {title}", "", *table(runs), ""]
    lines.append(
        "ELBO and IS log-likelihood in nats per data point (higher is better). Test ELBO: the "
        "best checkpoint on the whole test split; train ELBO: the mean over the last epoch; "
        "IS: importance-sampled log p(x) of the newest test evaluation, with its standard error; "
        "wall time: training and testing."
    )
    lines.append("")
    curves = f"figures/{data}_elbo_curves.png"
    save_elbo_curves(runs, title, out / curves)
    lines += figure(
        curves,
        f"Figure 2 for {title}: train ELBO (solid) and validation ELBO (dashed, on the "
        "held-out validation split; the per-epoch test ELBO is not computed during training) "
        "against training samples seen, one colour per latent size.",
    )
    for run in runs:
        if run.eval_folder is None:
            continue
        for name, what in EVAL_FIGURES.items():
            source = run.eval_folder / f"{name}.png"
            if source.is_file():
                target = f"figures/{data}_{name}_latent{run.latent_dim}.png"
                shutil.copyfile(source, out / target)
                lines += figure(target, f"{title}, latent {run.latent_dim}: {what}.")
    return lines


def comparison(runs: list[Run]) -> list[str]:
    """The paper's values, the budget used and its ratio to the paper's, per data set."""
    lines = [
        "## Comparison with the paper",
        "",
        f"Kingma & Welling (2014), Figure 2, trained each model on {powers_of_ten(PAPER_SAMPLES)} "
        "training samples; the values below are read off that figure.",
        "",
    ]
    for data, bound in PAPER_BOUNDS.items():
        ours = [run for run in runs if run.data == data]
        title = DATA_SETS[data][1]
        if not ours:
            lines.append(f"- **{title}**: paper {bound}; no runs here.")
            continue
        tested = [run for run in ours if "test/elbo" in run.summary["metrics"]]
        best = max(tested, key=lambda run: run.summary["metrics"]["test/elbo"], default=None)
        result = (
            f" Best test ELBO {best.summary['metrics']['test/elbo']:.2f} nats "
            f"(latent {best.latent_dim})."
            if best
            else ""
        )
        lines.append(f"- **{title}**: paper {bound}. {budget(ours)}{result}")
    return lines


def budget(runs: list[Run]) -> str:
    """A sentence on the training samples the runs saw and their ratio to the paper's."""
    fewest, most = min(r.samples_seen for r in runs), max(r.samples_seen for r in runs)
    paper = powers_of_ten(PAPER_SAMPLES)
    if fewest == most:
        return (
            f"Each run here saw {powers_of_ten(most)} training samples ({most:,}), "
            f"1/{PAPER_SAMPLES / most:,.0f} of the paper's budget ({powers_of_ten(most)} vs "
            f"{paper})."
        )
    return (
        f"The runs here saw {powers_of_ten(fewest)} to {powers_of_ten(most)} training samples, "
        f"1/{PAPER_SAMPLES / fewest:,.0f} to 1/{PAPER_SAMPLES / most:,.0f} of the paper's "
        f"{paper}."
    )


def previous_discussion(results: Path) -> str:
    """The text between the discussion markers of an earlier report, else a placeholder."""
    pattern = re.escape(DISCUSSION_START) + r"\n?(.*?)\n?" + re.escape(DISCUSSION_END)
    found = re.search(pattern, results.read_text(), re.S) if results.is_file() else None
    return found.group(1) if found else NEW_DISCUSSION


def shown_path(folder: Path) -> str:
    """The folder relative to the working directory (the repository root), if inside it."""
    resolved, cwd = folder.resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(cwd) if resolved.is_relative_to(cwd) else resolved)


def write_report(roots: list[Path], out: Path) -> Path:
    """Write ``out/results.md`` and its figures; returns the path of results.md."""
    runs = find_runs(roots)
    if not runs:
        raise UserError(f"No finished run (a folder with a summary.json) under {roots}.")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    results = out / "results.md"
    lines = [
        "# Results: Auto-Encoding Variational Bayes",
        "",
        "Generated by `python -m vae_lightning.report` from the run folders listed at the end; "
        "edit only the discussion, the rest is overwritten when the report is regenerated.",
        "",
    ]
    for data in dict.fromkeys(run.data for run in runs):
        lines += data_section([run for run in runs if run.data == data], out)
    lines += comparison(runs)
    lines += ["", DISCUSSION_START, previous_discussion(results), DISCUSSION_END, ""]
    lines += ["## Run folders", "", *(f"- `{shown_path(run.folder)}`" for run in runs), ""]
    results.write_text("\n".join(lines))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="run folders or folders of runs")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="report folder")
    args = parser.parse_args(argv)
    try:
        print(f"Wrote {write_report(args.roots, args.out)}")
    except UserError as err:
        parser.exit(2, f"{err}\n")


if __name__ == "__main__":
    main()
