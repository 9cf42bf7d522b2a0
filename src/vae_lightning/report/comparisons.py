"""Quantities across records, by the names the discussion's placeholders call them: paired
differences of models on the same test images, tests over the seeds of a study, and lists.

Each function takes ``match`` (a shell pattern -> its records, in the report's order) and the
placeholder's further arguments, and returns the text to show.
"""

import itertools
from collections.abc import Callable
from statistics import fmean, stdev

from vae_lightning.errors import UserError
from vae_lightning.report.formats import NONE, as_text, listed, p_value
from vae_lightning.report.frey_split import test_frames_table
from vae_lightning.report.quantities import PER_RECORD, final_slope, slope_unit
from vae_lightning.report.records import Record, read_curve
from vae_lightning.report.statistics import (
    ALPHA,
    Estimate,
    Spread,
    difference_bound,
    paired_difference,
    permutation_test,
    spread_tests,
    welch,
)
from vae_lightning.report.variants import optimiser, same_optimiser

Match = Callable[[str], list[Record]]
LEVEL = f"{ALPHA:.0%}".replace("%", " %")


def one(match: Match, pattern: str) -> Record:
    """The one record a pattern names."""
    found = match(pattern)
    if len(found) != 1:
        raise UserError(f"{pattern!r} names {len(found)} records; one was expected.")
    return found[0]


def difference(a: Record, b: Record, name: str) -> Estimate:
    """mean_a - mean_b of an evaluation metric on the same test images: paired over the
    images where both records kept their per-image values, else with the bound on its s.e."""
    if a.test_images != b.test_images:
        raise UserError(f"{a.name} and {b.name} were not evaluated on the same test images.")
    if a.per_point and b.per_point:
        if a.per_point.keys() != b.per_point.keys():
            raise UserError(f"{a.name} and {b.name} kept values of different test images.")
        images = sorted(a.per_point)
        return paired_difference(
            [a.per_point[i][name] for i in images], [b.per_point[i][name] for i in images]
        )
    return difference_bound(*((r.metric(name)["mean"], r.metric(name)["sem"]) for r in (a, b)))


def estimate(value: Estimate) -> str:
    """'+0.93 ± 0.05 (paired s.e.)' or '+0.93 (s.e. ≤ 0.51)', and whether it decides."""
    if value.bound:
        text = f"{value.value:+.2f} (s.e. ≤ {value.se:.2f}"
        verdict = "" if value.detected else f", a bound too loose to decide at {LEVEL}"
    else:
        text = f"{value.value:+.2f} ± {value.se:.2f} (paired s.e."
        verdict = "" if value.detected else f"; no difference detected at {LEVEL}"
    return f"{text}{verdict})"


def compared(a: Record, b: Record, name: str) -> str:
    """estimate(difference(a, b, name)) where both records evaluated the metric on the same
    test images; else NONE, or that their test images differ."""
    if a.metric(name) is None or b.metric(name) is None:
        return NONE
    try:
        return estimate(difference(a, b, name))
    except UserError:
        return "not on the same test images"


def diff(match: Match, a: str, b: str, name: str) -> str:
    """The difference of an evaluation metric, record a minus record b, on their test images."""
    return estimate(difference(one(match, a), one(match, b), name))


def versus(match: Match, a: str, b: str, name: str) -> str:
    """diff, or where there is none (no evaluation, other test images), why (compared)."""
    return compared(one(match, a), one(match, b), name)


def reached(a: Record, b: Record) -> str:
    """When record a's validation ELBO first reached record b's last one: 'after 300,000
    samples, 3.0 % of the other's', or 'never in its 10,000,000 samples'."""
    target = read_curve(b, "val/elbo")[-1][1]
    step = next((s for s, v in read_curve(a, "val/elbo") if v >= target), None)
    if step is None:
        return f"never in its {a.samples_seen:,} samples"
    samples = step * a.batch_size
    share = f"{samples / b.samples_seen:.1%}".replace("%", " %")
    return f"after {samples:,} samples, {share} of the other's"


def by_latent(match: Match, a: str, b: str) -> list[tuple[Record, Record]]:
    """The records of patterns a and b paired by latent size, over the sizes both have, in
    a's order (each shown labelled with its size)."""
    second = {r.latent_dim: r for r in match(b)}
    pairs = [(r, second[r.latent_dim]) for r in match(a) if r.latent_dim in second]
    if not pairs:
        raise UserError(f"{a!r} and {b!r} name no records of the same latent size.")
    return pairs


def reaches(match: Match, a: str, b: str) -> str:
    """reached for each pair of records of patterns a and b of one latent size, labelled."""
    return listed([f"{reached(r, s)} (latent {r.latent_dim})" for r, s in by_latent(match, a, b)])


def diffs(match: Match, a: str, b: str, name: str) -> str:
    """diff for each pair of records of patterns a and b of one latent size, labelled."""
    return listed(
        [
            f"{estimate(difference(r, s, name))} at latent {r.latent_dim}"
            for r, s in by_latent(match, a, b)
        ]
    )


def optimisers(match: Match, a: str, b: str) -> str:
    """'the same optimiser, Adagrad (lr 0.02, ...)' or 'different optimisers: Adam (...) for
    `a`, Adagrad (...) for `b`', from the two records' configs."""
    first, second = one(match, a), one(match, b)
    if same_optimiser(first, second):
        return f"the same optimiser, {optimiser(first)}"
    return (
        f"different optimisers: {optimiser(first)} for `{first.name}`, {optimiser(second)} "
        f"for `{second.name}`"
    )


def latent_steps(match: Match, pattern: str, name: str) -> str:
    """The differences of a metric between records of consecutive latent sizes."""
    found = match(pattern)
    return listed(
        [
            f"{estimate(difference(b, a, name))} from latent {a.latent_dim} to {b.latent_dim}"
            for a, b in itertools.pairwise(found)
        ]
    )


def values(match: Match, pattern: str, function: str, *args: str) -> list[float]:
    """A per-record quantity (a number) of each record a pattern matches."""
    return [PER_RECORD[function](r, *args) for r in match(pattern)]


def arm(match: Match, pattern: str, function: str, *args: str) -> str:
    """The mean of a per-record number over a group of seeds, with its s.d. and count."""
    found = values(match, pattern, function, *args)
    return f"{fmean(found):.2f} (s.d. {stdev(found):.2f} over {len(found)} seeds)"


def verdict(tests: dict[str, float], finding: str) -> str:
    """Which of two tests (name -> p-value) find ``finding`` at the report's level: 'both tests
    detect ...', 'neither test detects ...' or '<one> detects ..., <the other> does not'."""
    detected = [name for name, p in tests.items() if p < ALPHA]
    if not detected:
        return f"neither test detects {finding}"
    if len(detected) == len(tests):
        return f"both tests detect {finding}"
    [missed] = tests.keys() - set(detected)
    return f"{detected[0]} detects {finding}, {missed} does not"


def location_tests(welch_p: float, permutation_p: float) -> dict[str, float]:
    """The p-values of Welch's t-test and the exact permutation test, by the names the
    verdict gives them."""
    return {"Welch's test": welch_p, "the permutation test": permutation_p}


def two_sample(match: Match, a: str, b: str, function: str, *args: str) -> str:
    """Two groups of records (the seeds of two settings) compared on a per-record number:
    their means and s.d.s, the difference, Welch's t-test and the exact permutation test."""
    x, y = values(match, a, function, *args), values(match, b, function, *args)
    t, perm = welch(x, y), permutation_test(x, y)
    tests = location_tests(t.p, perm.p)
    return (
        f"{arm(match, a, function, *args)} against {arm(match, b, function, *args)}, a "
        f"difference of {fmean(x) - fmean(y):+.2f}; Welch's t = {t.t:.2f} on {t.df:.1f} "
        f"degrees of freedom, p = {p_value(t.p)}; exact permutation test over the "
        f"{perm.count} ways to split the seeds, p = {p_value(perm.p)} (the smallest it can give "
        f"with these seeds is {p_value(perm.smallest)}): "
        f"{verdict(tests, f'a difference at the {LEVEL} level')}"
    )


def detects(match: Match, a: str, b: str, function: str, *args: str) -> str:
    """Two_sample's verdict alone: which of its two tests detect a difference of the means."""
    x, y = values(match, a, function, *args), values(match, b, function, *args)
    tests = location_tests(welch(x, y).p, permutation_test(x, y).p)
    return verdict(tests, f"a difference at the {LEVEL} level")


def difference_of_means(match: Match, a: str, b: str, function: str, *args: str) -> str:
    """mean over group a minus mean over group b of a per-record number, signed."""
    x, y = values(match, a, function, *args), values(match, b, function, *args)
    return f"{fmean(x) - fmean(y):+.2f}"


def spread_verdict(tests: Spread) -> str:
    """Which of the F-test and the Brown-Forsythe test find the spreads unequal."""
    named = {"the F-test": tests.f_p, "the Brown-Forsythe test": tests.brown_forsythe_p}
    return verdict(named, f"unequal spreads at the {LEVEL} level")


def spread(match: Match, a: str, b: str, function: str, *args: str) -> str:
    """The s.d.s over seeds of two groups and two tests of equal spread."""
    x, y = values(match, a, function, *args), values(match, b, function, *args)
    tests = spread_tests(x, y)
    return (
        f"s.d. {stdev(x):.2f} against {stdev(y):.2f}: the F-test, which assumes normally "
        f"distributed values, gives p = {p_value(tests.f_p)}; the Brown-Forsythe test, which "
        f"does not, p = {p_value(tests.brown_forsythe_p)}: {spread_verdict(tests)}"
    )


def spreads_differ(match: Match, a: str, b: str, function: str, *args: str) -> str:
    """Spread's verdict alone."""
    x, y = values(match, a, function, *args), values(match, b, function, *args)
    return spread_verdict(spread_tests(x, y))


def each(match: Match, function: str, pattern: str, *args: str) -> str:
    """A per-record quantity of each matching record, labelled with its latent size."""
    return listed(
        [
            f"{as_text(PER_RECORD[function](r, *args))} (latent {r.latent_dim})"
            for r in match(pattern)
        ]
    )


def span(match: Match, function: str, pattern: str, *args: str) -> str:
    """The smallest and largest of a per-record number over the matching records."""
    found = values(match, pattern, function, *args)
    return f"{min(found):.2f} to {max(found):.2f}"


def slopes(match: Match, pattern: str, window: str) -> str:
    """The slopes of the validation ELBO of the matching records over the last ``window``
    samples (quantities.slope), labelled, with their unit."""
    listing = listed([f"{final_slope(r, window)} (latent {r.latent_dim})" for r in match(pattern)])
    return f"{listing} {slope_unit(window)}"


def repeated(match: Match, pattern: str) -> str:
    """The matching records whose metrics.csv holds an epoch's end twice, with the epochs
    and the resumes of their summary.json, or 'none'."""
    found = [
        f"`{r.name}` ({PER_RECORD['repeated_epochs'](r)}; resumed at {PER_RECORD['resumes'](r)})"
        for r in match(pattern)
        if PER_RECORD["repeated_epochs"](r) != "none"
    ]
    return listed(found) if found else "none"


ACROSS: dict[str, Callable[..., str]] = {
    "detects": detects,
    "diff": diff,
    "diffs": diffs,
    "difference_of_means": difference_of_means,
    "each": each,
    "latents": lambda match, pattern: listed(
        [str(latent) for latent in dict.fromkeys(r.latent_dim for r in match(pattern))]
    ),
    "level": lambda match: LEVEL,
    "optimisers": optimisers,
    "reaches": reaches,
    "slopes": slopes,
    "span": span,
    "repeated": repeated,
    "spread": spread,
    "spreads_differ": spreads_differ,
    "latent_steps": latent_steps,
    "test_frames": lambda match, pattern: test_frames_table(match(pattern)),
    "two_sample": two_sample,
    "versus": versus,
}
