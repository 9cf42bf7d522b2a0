"""The statistics the discussion states: paired differences, two-sample tests over seeds,
tests of spread and slopes of curves, each with its standard error or p-value.

Every test is two-sided at the level ALPHA; a p-value above it means that no difference was
detected, not that there is none.
"""

import itertools
import math
from dataclasses import dataclass
from statistics import fmean, stdev

from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error; ``bound``: the s.e. is only an upper bound."""

    value: float
    se: float
    bound: bool = False

    @property
    def detected(self) -> bool:
        """|value| > z_{1 - ALPHA/2} s.e.: non-zero at the level ALPHA (normal approximation;
        with a bound on the s.e. this can only miss a difference, never invent one)."""
        return abs(self.value) > stats.norm.ppf(1 - ALPHA / 2) * self.se


def paired_difference(a: list[float], b: list[float]) -> Estimate:
    """The mean of d_i = a_i - b_i over the same points and its standard error
    s.d.(d) / sqrt(n): two models on the same test images."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    return Estimate(fmean(d), stdev(d) / math.sqrt(len(d)))


def difference_bound(a: tuple[float, float], b: tuple[float, float]) -> Estimate:
    """The difference of two means (mean, s.e.) on the same points when the points' values are
    not kept: mean_a - mean_b, with s.e. at most se_a + se_b, since
    s.d.(a - b) <= s.d.(a) + s.d.(b) whatever the correlation of a and b (Minkowski)."""
    return Estimate(a[0] - b[0], a[1] + b[1], bound=True)


@dataclass(frozen=True)
class TTest:
    t: float
    df: float
    p: float


def welch(a: list[float], b: list[float]) -> TTest:
    """Welch's t-test of mean(a) = mean(b) without assuming equal variances:
    t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b), with the Welch-Satterthwaite degrees
    of freedom (s_a^2/n_a + s_b^2/n_b)^2 / (s_a^4/(n_a^2 (n_a-1)) + s_b^4/(n_b^2 (n_b-1)))."""
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    t = (fmean(a) - fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return TTest(t, df, 2 * stats.t.sf(abs(t), df))


@dataclass(frozen=True)
class Permutation:
    p: float
    count: int  # the number of ways to split the values into the two groups
    smallest: float  # the smallest p-value the test can give with these group sizes


def permutation_test(a: list[float], b: list[float]) -> Permutation:
    """The exact permutation test of mean(a) = mean(b): over all C(n_a + n_b, n_a) ways to
    split the pooled values into groups of n_a and n_b, the fraction whose |difference of
    means| is at least the observed one (with a tolerance for rounding). Its smallest
    p-value is 2 / C for equal groups (a split and its mirror), else 1 / C."""
    pooled, observed = [*a, *b], abs(fmean(a) - fmean(b))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for chosen in splits:
        group = [pooled[i] for i in chosen]
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        extreme += abs(fmean(group) - fmean(rest)) >= observed * (1 - 1e-12)
    smallest = (2 if len(a) == len(b) else 1) / len(splits)
    return Permutation(extreme / len(splits), len(splits), smallest)


@dataclass(frozen=True)
class Spread:
    f_p: float  # the F-test of equal variances, which assumes normal values
    brown_forsythe_p: float  # Levene's test about the medians, which does not


def spread_tests(a: list[float], b: list[float]) -> Spread:
    """Two tests of equal spread: the F-test, F = s_a^2 / s_b^2 on (n_a - 1, n_b - 1) degrees
    of freedom, p = 2 min(P(F' >= F), P(F' <= F)); and the Brown-Forsythe test, the one-way
    ANOVA of the absolute deviations from each group's median."""
    f = stdev(a) ** 2 / stdev(b) ** 2
    dfs = (len(a) - 1, len(b) - 1)
    f_p = min(1.0, 2 * min(stats.f.sf(f, *dfs), stats.f.cdf(f, *dfs)))
    return Spread(f_p, stats.levene(a, b, center="median").pvalue)


def slope(x: list[float], y: list[float]) -> Estimate:
    """The least-squares slope b = S_xy / S_xx of y on x, with s.e. sqrt(SSR / (n - 2) / S_xx)
    (SSR the residuals' sum of squares): right for independent scatter about a line, too small
    when neighbouring residuals are correlated."""
    mx, my = fmean(x), fmean(y)
    sxx = sum((u - mx) ** 2 for u in x)
    b = sum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / sxx
    ssr = sum((v - my - b * (u - mx)) ** 2 for u, v in zip(x, y, strict=True))
    return Estimate(b, math.sqrt(ssr / (len(x) - 2) / sxx))
