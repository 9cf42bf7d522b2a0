"""The results page, ``<out>/results.md``, and its figures, section by section."""

import argparse
from pathlib import Path

from vae_lightning.errors import UserError
from vae_lightning.literature import (
    BURDA,
    KINGMA,
    PAPER_RANGES,
    PAPER_SAMPLES,
    PUBLISHED,
    band_text,
)
from vae_lightning.report.figures import (
    CURVE_POINTS,
    KL_FLOOR,
    KL_LATENTS,
    figure,
    image_figures,
    kl_records,
    save_elbo_curves,
    save_kl_per_dimension,
    save_learning_curves,
)
from vae_lightning.report.formats import listed, powers_of_ten
from vae_lightning.report.records import (
    DATA_SETS,
    STUDY,
    Record,
    find_records,
    shown,
    training_hours,
)
from vae_lightning.report.tables import (
    active_units_note,
    comparison_table,
    estimator_table,
    iwae_table,
    networks_table,
    records_table,
    results_table,
    study_table,
    wake_sleep_table,
)
from vae_lightning.report.text import render
from vae_lightning.report.variants import (
    Layout,
    labelled_methods,
    layout,
    method,
    method_pairs,
    method_rank,
    objective,
    paired_records,
    same_optimiser,
)

DISCUSSION = "discussion.md"
NO_DISCUSSION = f"_No discussion yet: write it in `{DISCUSSION}` beside the records._"


def kl_figure(records: list[Record], out: Path, name: str) -> list[str]:
    """The figure of the KL per dimension of the records that have it (figures.kl_records),
    as ``figures/<name>_kl_per_dimension.png``; nothing if none has."""
    if not (drawn := kl_records(records)):
        return []
    path = f"figures/{name}_kl_per_dimension.png"
    save_kl_per_dimension(drawn, out / path)
    return figure(
        path,
        f"The KL per latent dimension, E_x KL(q(z_j|x) || p(z_j)) over the evaluated test "
        f"points, largest first (their sum is the test KL term), of the records of latent size "
        f"{KL_LATENTS} and more whose evaluation recorded it: filled markers are the active "
        f"units of the tables, hollow ones the others; a KL below {KL_FLOOR:g} nats is drawn "
        "at that floor.",
    )


def data_section(records: list[Record], out: Path) -> list[str]:
    """A data set's table, its Figure 2, the KL per dimension and the figures of its
    evaluations."""
    title, stem = records[0].title, records[0].stem
    lines = [f"## {title}", "", *results_table(records), "", *active_units_note(records)]
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
    methods = listed(list(dict.fromkeys(method(r) for r in sorted(records, key=method_rank))))
    lines += figure(
        curves,
        f"Figure 2 for {title}: train ELBO (circles, solid) and validation ELBO (squares, "
        "dashed; held out of the training split) at the ends of epochs, thinned to at most "
        f"{CURVE_POINTS} log-spaced points, against training samples seen; the star is the test "
        "ELBO of the evaluation, the grey band the paper's final value where it was read. Each "
        "panel's ELBO axis spans its curves from their second point on, so a first point far "
        "below the rest lies outside it."
        + (
            f" The legend names each curve's method ({methods}), a colour each, as the paper's "
            "Figure 2 draws AEVB and wake-sleep on the same networks; the ELBO of wake-sleep is "
            "the true ELBO of its networks, measured as AEVB's; the grey band, where drawn, is "
            "the paper's AEVB."
            if labelled_methods(records)
            else ""
        ),
    )
    return lines + kl_figure(records, out, stem) + image_figures(records, out)


def comparison_section(records: list[Record]) -> list[str]:
    """The comparison with the paper: its table and the paper's ranges as they were read."""
    lines = [
        "## Comparison with the paper",
        "",
        f"{KINGMA}, Figure 2, trained each model on {powers_of_ten(PAPER_SAMPLES)} training "
        "samples; its values below were read off that figure, roughly (how roughly was not "
        "recorded). The validation ELBO is that of the first epoch end at the budget, from the "
        "run's curve.",
        "",
        *comparison_table(records),
        "",
    ]
    for data, (_, panels) in PAPER_RANGES.items():
        lines.append(
            f"- **{DATA_SETS[data][1]}**, the paper: roughly {band_text(data)} nats, {panels}."
        )
    return lines


# The templates of the sections of methods and networks (text.py): no number but through a
# placeholder; `source` names them in an error.
WAKE_SLEEP = (
    f"{KINGMA}, Figure 2, compares AEVB with the wake-sleep algorithm on the same encoder and "
    "decoder; the curves of both are in each data set's Figure 2 above. Here, per data set and "
    "latent size of the grid, the test ELBO of each method's record (the mean over the test "
    "points ± its standard error) and AEVB - wake-sleep, their difference on the same test "
    "images: the mean of the per-image differences with its standard error where both records "
    "kept their per-image values, else the difference of the means with a bound on its "
    "standard error. Positive: AEVB ahead."
)
IWAE = (
    f"{BURDA} train one network with two objectives: the VAE's ELBO, averaged over k samples "
    "of z, and the IWAE's importance-weighted bound L_k on k samples; their Table 1 gives the "
    "test log-likelihood and the active units of each. Here each record trained with the IWAE "
    "bound beside the record trained with the ELBO on the same network (the same model "
    "settings but the objective, where there is such a record), and IWAE - VAE, their "
    "difference on the same test images: paired over the images where both kept their "
    "per-image values, else with a bound on its standard error; positive: the IWAE ahead. "
    "Their rows come from their own training (${literature(burda_samples)} training samples, "
    "log p(x) estimated with K = ${literature(burda_is_samples)}), ours from the records' "
    "(columns *training samples* and *K*)."
)
NETWORKS = (
    "Records whose encoder or decoder is not the paper's MLP, each beside the record of the "
    "paper's MLPs with the same data set, latent size and method (from the grid above), with "
    "the settings that tell them apart; below the table, the difference of each from that "
    "record on the same test images (paired over the images where both kept their per-image "
    "values, else with a bound on its standard error)."
)


def optimiser_lines(pairs: list[tuple[Record | None, Record | None]]) -> str:
    """Template lines for the pairs whose optimisers differ, one each."""
    return "\n".join(
        f"- ${{record({a.name})}} and ${{record({b.name})}}: ${{optimisers({a.name}, {b.name})}}."
        for a, b in pairs
        if a is not None and b is not None and not same_optimiser(a, b)
    )


def wake_sleep_section(grid: list[Record], source: Path) -> list[str]:
    """AEVB against wake-sleep, the paper's comparison, per data set and latent size."""
    pairs = method_pairs(grid)
    lines = ["## AEVB against wake-sleep", "", render(WAKE_SLEEP, grid, source), ""]
    lines += [*wake_sleep_table(pairs), ""]
    if differ := optimiser_lines(pairs):
        text = f"The two methods' optimisers differ:\n\n{differ}"
        lines += [render(text, grid, source), ""]
    return lines


def iwae_section(pairs: list[tuple[Record | None, Record]], out: Path, source: Path) -> list[str]:
    """Each IWAE record against the ELBO record of its network, beside Burda et al.'s rows."""
    members = paired_records(pairs)
    lines = ["## IWAE against VAE", "", render(IWAE, members, source), ""]
    lines += [*iwae_table(pairs), "", *active_units_note(members)]
    if differ := optimiser_lines(pairs):
        lines += [render(f"The optimisers differ:\n\n{differ}", members, source), ""]
    return lines + kl_figure(members, out, "iwae")


def networks_section(
    pairs: list[tuple[Record, Record | None]], out: Path, source: Path
) -> list[str]:
    """Records of other networks beside the paper's MLPs of their data set, latent size and
    method: their settings, results and differences."""
    members = paired_records(pairs)
    lines = ["## Networks other than the paper's MLPs", "", render(NETWORKS, members, source)]
    lines += ["", *networks_table(pairs), "", *active_units_note(members)]
    bullets = []
    for other, mlp in pairs:
        a = other.name
        if mlp is None:
            bullets.append(
                f"- ${{record({a})}}: no record of the paper's MLPs with its data set, latent "
                "size and method."
            )
            continue
        b = mlp.name
        alone = (
            "" if same_optimiser(other, mlp) else ", so the difference is not the networks' alone"
        )
        bullets.append(
            f"- ${{record({a})}} minus ${{record({b})}}: test ELBO ${{versus({a}, {b}, elbo)}}; "
            f"IS log p(x) ${{versus({a}, {b}, log_likelihood_is)}}. Trained with "
            f"${{optimisers({a}, {b})}}{alone}."
        )
    lines += [render("\n".join(bullets), members, source), ""]
    lines += kl_figure(members, out, "networks")
    return lines + image_figures([other for other, _ in pairs], out)


def records_section(records: list[Record], out: Path) -> list[str]:
    """The "Records" section of the report for the record runs among `records`."""
    hours = {r.name: training_hours(r) for r in records}
    path = "figures/records_learning_curves.png"
    save_learning_curves(records, hours, out / path)
    return [
        "## Records",
        "",
        "Record runs of a published model, evaluated as the publication did: importance "
        "sampling with K samples from q(z|x), on the test points shown (MNIST dynamically "
        "binarised, one fixed draw). Training time: hours of training steps, validation and "
        "pauses excluded.",
        "",
        *records_table(records, {name: h[-1][0] for name, h in hours.items()}),
        "",
        *active_units_note(records),
        *figure(
            path,
            "Record runs: validation ELBO (its held-out training images) at epoch ends against "
            "hours of training steps; the star is the test IS log p(x) of the evaluation at "
            "the end, the circles (for runs that kept snapshots of their weights) that of each "
            "snapshot, at the end of the epoch it was saved at; the dashed line is the "
            "published value.",
        ),
        *kl_figure(records, out, "records"),
    ]


def study_section(folder: Path, members: list[Record], records: list[Record]) -> list[str]:
    """A study's section: its STUDY file (the first line the title, the rest a template),
    then one row per record with the overrides that not every record of the study shares."""
    title, _, text = (folder / STUDY).read_text().strip("\n").partition("\n")
    text = render(text.strip("\n"), records, folder / STUDY)
    table = [*study_table(members), "", *active_units_note(members)]
    return [f"## {title.lstrip('# ')}", "", text, "", *table]


def discussion(roots: list[Path], records: list[Record]) -> str:
    """The discussion.md templates in the roots (in the order given), filled in."""
    files = [root / DISCUSSION for root in roots if (root / DISCUSSION).is_file()]
    texts = [render(f.read_text().strip("\n"), records, f) for f in files]
    return "\n".join(texts) or NO_DISCUSSION


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
        f"the discussion is the template `{DISCUSSION}` beside them, its numbers filled in "
        "from the records. Do not edit this file: regenerate it.",
        "",
    ]
    studies = {r.study: [q for q in records if q.study == r.study] for r in records if r.study}
    record_runs = [r for r in records if r.experiment in PUBLISHED and not r.study]
    placed: Layout = layout(records)
    grid = placed.grid
    for data in dict.fromkeys(r.data for r in grid):
        lines += data_section([r for r in grid if r.data == data], out)
    source = Path(__file__)  # the templates of the sections below
    if any(objective(r) == "wake_sleep" for r in grid):
        lines += wake_sleep_section(grid, source)
    if aevb := [r for r in grid if objective(r) == "elbo"]:
        lines += comparison_section(aevb)
    if record_runs:
        lines += ["", *records_section(record_runs, out)]
    if placed.iwae:
        lines += ["", *iwae_section(placed.iwae, out, source)]
    if placed.networks:
        lines += ["", *networks_section(placed.networks, out, source)]
    for folder, members in studies.items():
        lines += ["", *study_section(folder, members, records)]
    lines += ["", "## Discussion", "", discussion(roots, records), ""]
    lines += ["## Sources", "", *(f"- `{shown(r.folder)}`" for r in records), ""]
    results = out / "results.md"
    results.write_text("\n".join(lines))
    return results


def main(argv: list[str] | None = None) -> None:
    """`python -m vae_lightning.report RECORDS... --out DIR`."""
    parser = argparse.ArgumentParser(description="The results report from run records.")
    parser.add_argument("records", nargs="+", type=Path, help="records or folders of records")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/report"), help="report folder (outputs/report)"
    )
    args = parser.parse_args(argv)
    try:
        print(f"Wrote {write_report(args.records, args.out)}")
    except UserError as err:
        parser.exit(2, f"{err}\n")
