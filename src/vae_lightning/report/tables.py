"""The report's tables, one row per record: results per data set, the importance sampler's
own spread, the comparison with the paper, record runs and studies."""

import math

from vae_lightning.literature import BURDA, PAPER_BANDS, PAPER_SAMPLES, PUBLISHED
from vae_lightning.report.formats import NONE, listed, powers_of_ten, setting, wall_time, with_sem
from vae_lightning.report.records import Record, points, read_curve

COMPARED_BUDGETS = (10**6, 10**7)  # training samples at which the validation ELBO is compared


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def active_units(record: Record) -> str:
    """'12 of 20': the evaluation's active units of the latent size; NONE without them."""
    if (latent := record.latent_diagnostics) is None:
        return NONE
    return f"{latent['active_units']:,} of {len(latent['kl_per_dim']):,}"


def active_units_note(records: list[Record]) -> list[str]:
    """What a table's active-units column counts, and why a cell is empty: the paragraph
    below the table (none where no record has an evaluation)."""
    diagnosed = [r.latent_diagnostics for r in records if r.latent_diagnostics]
    thresholds = sorted({latent["active_unit_threshold"] for latent in diagnosed})
    predating = any(r.evaluation and not r.latent_diagnostics for r in records)
    unevaluated = any(not r.evaluation for r in records)
    if not (diagnosed or predating):
        return []
    threshold = "the evaluation's `active_unit_threshold`"
    threshold = listed([setting(t) for t in thresholds]) if thresholds else threshold
    note = (
        f"Active units, as {BURDA}, section 5.2, count them: the latent units u whose "
        f"posterior mean E_q(u|x)[u] has a variance over the evaluated test points above "
        f"{threshold}, out of the latent size."
    )
    if predating:
        why = ", or the record has none" if unevaluated else ""
        note += (
            f" {NONE}: the record's evaluation predates these diagnostics (its eval.json has "
            f"no `latent` block){why}; evaluating its checkpoint again records them."
        )
    return [note, ""]


def results_table(records: list[Record]) -> list[str]:
    """A data set's results, one row per record; ELBO and IS of the same evaluated points."""
    header = ["latent", "training samples", "test points", "test ELBO", "IS log p(x)"]
    header += ["IS - ELBO", "K", "active units", "train ELBO (last epoch)", "wall time"]
    header.append("machine")
    if binarised := records[0].data == "MNISTDataModule":
        header.append("binarisation")
    rows = []
    for record in records:
        metrics, evaluation = record.summary["metrics"], record.evaluation
        if evaluation:
            evaluated = [points(evaluation), with_sem(record.metric("elbo"))]
            evaluated += [with_sem(record.metric("log_likelihood_is"))]
            evaluated += [
                with_sem(record.metric("is_minus_elbo")),
                str(evaluation["num_importance_samples"]),
                active_units(record),
            ]
        else:  # the test of the training run: the whole split, no IS
            test = metrics.get("test/elbo")
            evaluated = ["all", NONE if test is None else f"{test:.2f}", NONE, NONE, NONE, NONE]
        train = metrics.get("train/elbo")
        cells = [str(record.latent_dim), f"{record.samples_seen:,}", *evaluated]
        cells += [NONE if train is None else f"{train:.2f}"]
        cells += [wall_time(record.summary["wall_time_s"]), record.summary.get("machine", NONE)]
        if binarised:
            cells.append(record.summary["binarize"])
        rows.append(cells)
    return markdown(header, rows)


def estimator_table(records: list[Record]) -> list[str]:
    """The importance sampler's own spread: two independent K/2 estimates on the same points."""
    rows = [r for r in records if r.metric("is_half_k_difference") is not None]
    if not rows:
        return []
    header = ["latent", "training samples", "IS at K/2", "IS at K", "rise K/2 → K"]
    header.append("difference of the two K/2 estimates")
    cells = []
    for r in rows:
        half, full = r.metric("log_likelihood_is_half_k"), r.metric("log_likelihood_is")
        means = [half["mean"], full["mean"], full["mean"] - half["mean"]]
        cells.append(
            [
                str(r.latent_dim),
                f"{r.samples_seen:,}",
                *(f"{m:.2f}" for m in means),
                with_sem(r.metric("is_half_k_difference")),
            ]
        )
    return [
        "The IS estimate at K is the combination of two independent estimates at K/2 on the "
        "same points. Their difference shows the estimator's own noise on the mean; the rise "
        "from K/2 to K shows that the estimate is still climbing towards log p(x):",
        "",
        *markdown(header, cells),
        "",
    ]


def validation_elbos_at(record: Record, budgets: tuple[int, ...]) -> list[float | None]:
    """For each budget, the validation ELBO of the first epoch end at which that many training
    samples had been seen (Figure 2's curve), or None if the run did not get there."""
    curve = read_curve(record, "val/elbo")
    return [next((v for s, v in curve if s * record.batch_size >= n), None) for n in budgets]


def comparison_table(records: list[Record]) -> list[str]:
    """Per data set and latent size: our validation ELBO along the way, test ELBO (and IS) at
    the end, and the paper's where it was read."""
    header = ["data", "latent", "training samples"]
    header += [f"val ELBO at {powers_of_ten(n)}" for n in COMPARED_BUDGETS]
    header += ["test ELBO", "IS log p(x)", f"paper ({powers_of_ten(PAPER_SAMPLES)})"]
    rows = []
    for r in records:
        along = validation_elbos_at(r, COMPARED_BUDGETS)
        test = r.metric("elbo") or {"mean": r.summary["metrics"].get("test/elbo", math.nan)}
        band = PAPER_BANDS.get((r.data, r.latent_dim))
        is_value = r.metric("log_likelihood_is")
        rows.append(
            [r.title, str(r.latent_dim), powers_of_ten(r.samples_seen)]
            + [NONE if v is None else f"{v:.2f}" for v in along]
            + [f"{test['mean']:.2f}", NONE if is_value is None else f"{is_value['mean']:.2f}"]
            + [f"{band[0]:.0f} to {band[1]:.0f}" if band else NONE]
        )
    return markdown(header, rows)


def records_table(records: list[Record], hours: dict[str, float]) -> list[str]:
    """Record runs of a published model beside the published value; ``hours`` of training
    steps by record name."""
    header = ["experiment", "test points", "IS log p(x)", "test ELBO", "K", "active units"]
    header += ["training samples", "training time", "published", "ours - published"]
    rows = []
    for r in records:
        source, value = PUBLISHED[r.experiment]
        ours = r.metric("log_likelihood_is")
        rows.append(
            [
                f"`{r.experiment}`",
                points(r.evaluation),
                with_sem(ours),
                with_sem(r.metric("elbo")),
                str((r.evaluation or {}).get("num_importance_samples", NONE)),
                active_units(r),
                f"{r.samples_seen:,}",
                f"{hours[r.name]:.2f} h",
                f"{value:.2f} ({source})",
                f"{ours['mean'] - value:+.2f}" if ours else NONE,
            ]
        )
    return markdown(header, rows)


def study_table(records: list[Record]) -> list[str]:
    """One row per record of a study with the overrides that not every record shares."""
    shared = set.intersection(*(set(r.overrides) for r in records))
    header = ["record", "settings", "latent", "training samples", "test points"]
    header += ["train ELBO (last epoch)", "test ELBO", "IS log p(x)", "active units"]
    header.append("train - test ELBO")
    rows = []
    for r in records:
        train, test = r.summary["metrics"].get("train/elbo"), r.metric("elbo")
        gap = NONE if train is None or test is None else f"{train - test['mean']:.2f}"
        settings = ", ".join(f"`{o}`" for o in r.overrides if o not in shared) or NONE
        rows.append(
            [
                f"`{r.folder.name}`",
                settings,
                str(r.latent_dim),
                f"{r.samples_seen:,}",
                points(r.evaluation) if r.evaluation else NONE,
                NONE if train is None else f"{train:.2f}",
                with_sem(test),
                with_sem(r.metric("log_likelihood_is")),
                active_units(r),
                gap,
            ]
        )
    return markdown(header, rows)
