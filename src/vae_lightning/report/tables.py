"""The report's tables, one row per record: results per data set, the importance sampler's
own spread, the comparison with the paper, record runs and studies."""

import math

from vae_lightning.errors import UserError
from vae_lightning.literature import (
    BURDA,
    BURDA_EPOCHS,
    BURDA_HIDDEN,
    BURDA_IMAGES,
    BURDA_IS_SAMPLES,
    BURDA_LATENT,
    BURDA_TABLE_1,
    BURDA_TEST_IMAGES,
    PAPER_BANDS,
    PAPER_SAMPLES,
    PUBLISHED,
)
from vae_lightning.report.comparisons import compared
from vae_lightning.report.formats import NONE, listed, powers_of_ten, setting, wall_time, with_sem
from vae_lightning.report.records import Record, points, read_curve
from vae_lightning.report.variants import (
    labelled_methods,
    method,
    method_rank,
    networks,
    optimiser,
    paired_records,
    paper_networks,
)

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


def by_method(records: list[Record]) -> tuple[list[Record], bool]:
    """The records by latent size and method (AEVB first), and whether they hold a method
    other than AEVB (then a table names each row's)."""
    ordered = sorted(records, key=lambda r: (r.latent_dim, method_rank(r)))  # stable
    return ordered, labelled_methods(records)


def results_table(records: list[Record]) -> list[str]:
    """A data set's results, one row per record; ELBO and IS of the same evaluated points.
    A column names each row's method where a record's is not AEVB (wake-sleep)."""
    records, several = by_method(records)
    header = ["latent", *(["method"] if several else []), "training samples", "test points"]
    header += ["test ELBO", "IS log p(x)"]
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
        cells = [str(record.latent_dim), *([method(record)] if several else [])]
        cells += [f"{record.samples_seen:,}", *evaluated]
        cells += [NONE if train is None else f"{train:.2f}"]
        cells += [wall_time(record.summary["wall_time_s"]), record.summary.get("machine", NONE)]
        if binarised:
            cells.append(record.summary["binarize"])
        rows.append(cells)
    return markdown(header, rows)


def estimator_table(records: list[Record]) -> list[str]:
    """The importance sampler's own spread: two independent K/2 estimates on the same points."""
    rows, several = by_method([r for r in records if r.metric("is_half_k_difference") is not None])
    if not rows:
        return []
    header = ["latent", *(["method"] if several else []), "training samples"]
    header += ["IS at K/2", "IS at K", "rise K/2 → K"]
    header.append("difference of the two K/2 estimates")
    cells = []
    for r in rows:
        half, full = r.metric("log_likelihood_is_half_k"), r.metric("log_likelihood_is")
        means = [half["mean"], full["mean"], full["mean"] - half["mean"]]
        cells.append(
            [
                str(r.latent_dim),
                *([method(r)] if several else []),
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


# Overrides that are not a study's settings: what a run prints, where it writes, whether it
# resumes, and the experiment (the study's base; a method that differs has its own column).
NOT_SETTINGS = ("callbacks.progress_bar.", "hydra.", "auto_resume", "experiment")


def setting_of(r: Record, key: str) -> str:
    """The value of a config key in a record's run as text; for a config group (a mapping in
    the config, e.g. `logger`) the choice its command line made, if it made one."""
    try:
        value = r.setting(key)
    except UserError:
        return NONE
    if isinstance(value, dict):
        chosen = [o.split("=", 1)[1] for o in r.overrides if o.split("=", 1)[0] == key]
        return chosen[-1] if chosen else NONE
    return str(value)


def differing_settings(records: list[Record]) -> list[str]:
    """The config keys that some record's command line sets (NOT_SETTINGS aside) and
    whose values, as the runs' configs hold them, differ between the records."""
    keys = dict.fromkeys(
        o.split("=", 1)[0].lstrip("+~") for r in records for o in r.overrides if "=" in o
    )
    return [
        k
        for k in keys
        if not k.startswith(NOT_SETTINGS) and len({setting_of(r, k) for r in records}) > 1
    ]


def study_table(records: list[Record]) -> list[str]:
    """One row per record of a study with the settings that differ between its records (from
    their configs, so a default given explicitly reads as one left out), and its method and
    networks where these differ between the records."""
    keys = differing_settings(records)
    shown = [(name, f) for name, f in (("method", method), ("networks", networks))]
    shown = [(name, f) for name, f in shown if len({f(r) for r in records}) > 1]
    header = ["record", "settings", *(name for name, _ in shown), "latent"]
    header += ["training samples", "test points"]
    header += ["train ELBO (last epoch)", "test ELBO", "IS log p(x)", "active units"]
    header.append("train - test ELBO")
    rows = []
    for r in records:
        train, test = r.summary["metrics"].get("train/elbo"), r.metric("elbo")
        gap = NONE if train is None or test is None else f"{train - test['mean']:.2f}"
        settings = ", ".join(f"`{k}={setting_of(r, k)}`" for k in keys) or NONE
        rows.append(
            [
                f"`{r.folder.name}`",
                settings,
                *(f(r) for _, f in shown),
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


NOT_YET = "not yet recorded"


def test_elbo(r: Record) -> str:
    """The evaluation's test ELBO ± its s.e., else the training run's test (all points)."""
    if r.evaluation:
        return with_sem(r.metric("elbo"))
    test = r.summary["metrics"].get("test/elbo")
    return NONE if test is None else f"{test:.2f}"


def test_points(records: list[Record]) -> str:
    """The evaluated points of the records, once if they are the same test images."""
    shown = list(dict.fromkeys(points(r.evaluation) if r.evaluation else "all" for r in records))
    if len({r.test_images for r in records}) == 1:
        shown = shown[:1]
    return " / ".join(shown)


def budgets(pair: list[Record | None]) -> str:
    """The training samples of a pair of records, once if the same ('10^7'), else each with
    its method ('AEVB 10^7, wake-sleep 10^6')."""
    present = [r for r in pair if r is not None]
    if len({r.samples_seen for r in present}) == 1:
        return powers_of_ten(present[0].samples_seen)
    return ", ".join(f"{method(r)} {powers_of_ten(r.samples_seen)}" for r in present)


def wake_sleep_table(pairs: list[tuple[Record | None, Record | None]]) -> list[str]:
    """AEVB against wake-sleep per data set and latent size: each method's test ELBO and
    their difference on the same test images (paired, or with the bound on its s.e.)."""
    header = ["data", "latent", "training samples", "test points", "AEVB test ELBO"]
    header += ["wake-sleep test ELBO", "AEVB - wake-sleep"]
    rows = []
    for aevb, sleep in pairs:
        present = [r for r in (aevb, sleep) if r is not None]
        cells = [present[0].title, str(present[0].latent_dim), budgets([aevb, sleep])]
        cells.append(test_points(present))
        cells += [NOT_YET if r is None else test_elbo(r) for r in (aevb, sleep)]
        cells.append(NONE if len(present) < 2 else compared(aevb, sleep, "elbo"))
        rows.append(cells)
    return markdown(header, rows)


def networks_table(pairs: list[tuple[Record, Record | None]]) -> list[str]:
    """Each record of other networks and the record of the paper's MLPs it is compared
    with, with the settings that tell them apart."""
    header = ["record", "networks", "method", "optimiser", "latent", "training samples"]
    header += ["test points", "test ELBO", "IS log p(x)", "active units"]
    rows = [
        [
            f"`{r.name}`",
            networks(r),
            method(r),
            optimiser(r),
            str(r.latent_dim),
            f"{r.samples_seen:,}",
            points(r.evaluation) if r.evaluation else NONE,
            test_elbo(r),
            with_sem(r.metric("log_likelihood_is")),
            active_units(r),
        ]
        for r in paired_records(pairs)
    ]
    return markdown(header, rows)


def burda_network(r: Record) -> bool:
    """Whether the record's network is Burda et al.'s one-stochastic-layer MNIST model."""
    model = r.config.get("model") or {}
    return (
        r.data == "MNISTDataModule"
        and paper_networks(r)
        and r.latent_dim == BURDA_LATENT
        and model.get("hidden_dims") == BURDA_HIDDEN
    )


IWAE_MODELS = {"elbo": "VAE (the ELBO)", "iwae": "IWAE (the bound L_k)"}


def iwae_table(pairs: list[tuple[Record | None, Record]]) -> list[str]:
    """Each IWAE record, the record trained with the ELBO on its network, their differences
    on the same test images, and Burda et al.'s Table 1 rows for the same network and k."""
    header = ["source", "model", "k", "training samples", "test points", "test ELBO"]
    header += ["IS log p(x)", "K", "active units"]
    rows = []
    for vae, iwae in pairs:
        k = (iwae.config.get("model") or {}).get("num_samples", 1)
        for objective, r in (("elbo", vae), ("iwae", iwae)):
            if r is None:
                rows.append(["ours", IWAE_MODELS[objective], str(k), *[NOT_YET] * 6])
                continue
            rows.append(
                [
                    f"ours: `{r.name}`",
                    IWAE_MODELS[objective],
                    str(k),
                    f"{r.samples_seen:,}",
                    points(r.evaluation) if r.evaluation else NONE,
                    test_elbo(r),
                    with_sem(r.metric("log_likelihood_is")),
                    str((r.evaluation or {}).get("num_importance_samples", NONE)),
                    active_units(r),
                ]
            )
        units = NONE
        if vae is not None and vae.latent_diagnostics and iwae.latent_diagnostics:
            counts = [r.latent_diagnostics["active_units"] for r in (iwae, vae)]
            units = f"{counts[0] - counts[1]:+d}"
        rows.append(
            [
                "ours: IWAE - VAE, same test images",
                "",
                "",
                "",
                NONE if vae is None else test_points([vae, iwae]),
                NONE if vae is None else compared(iwae, vae, "elbo"),
                NONE if vae is None else compared(iwae, vae, "log_likelihood_is"),
                "",
                units,
            ]
        )
        if not (burda_network(iwae) and ("IWAE", k) in BURDA_TABLE_1):
            continue
        published = {model: BURDA_TABLE_1[model, k] for model in ("VAE", "IWAE")}
        source = f"{BURDA}, Table 1"
        for model, objective in (("VAE", "elbo"), ("IWAE", "iwae")):
            value, active = published[model]
            rows.append(
                [
                    source,
                    IWAE_MODELS[objective],
                    str(k),
                    f"{BURDA_EPOCHS * BURDA_IMAGES:,}",
                    f"all {BURDA_TEST_IMAGES:,}",
                    NONE,
                    f"{value:.2f}",
                    str(BURDA_IS_SAMPLES),
                    f"{active} of {BURDA_LATENT}",
                ]
            )
        (vae_value, vae_units), (iwae_value, iwae_units) = published["VAE"], published["IWAE"]
        difference = [NONE, f"{iwae_value - vae_value:+.2f}", "", f"{iwae_units - vae_units:+d}"]
        rows.append([f"{source}: IWAE - VAE", "", "", "", "", *difference])
    return markdown(header, rows)
