"""The report's statistics against values computed by hand or published with their data."""

import math

import pytest

from vae_lightning.report.statistics import (
    difference_bound,
    paired_difference,
    permutation_test,
    slope,
    spread_tests,
    welch,
)

# Student's sleep data (R's `sleep`): extra hours of sleep under two drugs, ten patients each.
# R: t.test(extra ~ group, data = sleep) gives Welch's t = -1.8608, df = 17.776, p = 0.07939.
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_r_on_the_sleep_data():
    result = welch(DRUG_1, DRUG_2)
    assert result.t == pytest.approx(-1.8608, abs=1e-4)
    assert result.df == pytest.approx(17.776, abs=1e-3)
    assert result.p == pytest.approx(0.07939, abs=1e-5)
    assert welch(DRUG_2, DRUG_1).p == pytest.approx(result.p)  # two-sided


def test_exact_permutation_test_counts_the_splits_at_least_as_extreme():
    # {1, 2, 3} against {4, 5, 6}: of the C(6, 3) = 20 splits only the observed one and its
    # mirror reach |difference| = 3, so p = 2/20, the smallest this test can give.
    result = permutation_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (result.p, result.count, result.smallest) == (0.1, 20, 0.1)
    # {1, 2, 4} against {3, 5, 6}: |difference| = |2 S - 21| / 3 = 7/3 for the first group's
    # sum S = 7; S <= 7 ({1, 2, 3}, {1, 2, 4}) or S >= 14 ({4, 5, 6}, {3, 5, 6}): 4 of 20.
    assert permutation_test([1.0, 2.0, 4.0], [3.0, 5.0, 6.0]).p == pytest.approx(4 / 20)
    assert permutation_test([1.0, 2.0], [3.0, 4.0, 5.0]).smallest == pytest.approx(1 / 10)
    assert permutation_test([1.0, 1.0], [1.0, 1.0]).p == 1.0  # ties count as extreme


def test_paired_difference_is_the_mean_difference_and_its_standard_error():
    # d = (1, 0, 2): mean 1, s.d. 1, s.e. 1 / sqrt(3).
    result = paired_difference([1.0, 2.0, 3.0], [0.0, 2.0, 1.0])
    assert (result.value, result.se, result.bound) == (1.0, pytest.approx(1 / math.sqrt(3)), False)
    assert not result.detected  # 1 < 1.96 / sqrt(3)


def test_the_bound_on_a_paired_standard_error_holds_for_any_correlation():
    a = [1.0, 2.0, 3.0, 4.0, 6.0]
    for b in ([5.0, 3.0, 4.0, 1.0, 2.0], [1.5, 2.5, 2.0, 5.0, 6.5], [0.0, 0.0, 1.0, 0.0, 1.0]):
        paired = paired_difference(a, b)
        se = [paired_difference(x, [0.0] * 5).se for x in (a, b)]
        bound = difference_bound((sum(a) / 5, se[0]), (sum(b) / 5, se[1]))
        assert bound.value == pytest.approx(paired.value) and bound.bound
        assert paired.se <= bound.se + 1e-12
    assert difference_bound((10.0, 1.0), (5.0, 1.0)).detected  # 5 > 1.96 * 2


def test_slope_and_its_standard_error_by_hand():
    # x = 0..3, y = (0, 1, 1, 3): S_xx = 5, S_xy = 4.5, b = 0.9; residuals (0.1, 0.2, -0.7,
    # 0.4), SSR = 0.7, s.e. = sqrt(0.7 / 2 / 5).
    result = slope([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 3.0])
    assert result.value == pytest.approx(0.9)
    assert result.se == pytest.approx(math.sqrt(0.07))
    assert slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]).se == pytest.approx(0.0, abs=1e-12)


def test_spread_tests_see_equal_spreads_as_equal_and_a_wide_group_as_wider():
    same = spread_tests([1.0, 2.0, 3.0, 4.0], [11.0, 12.0, 13.0, 14.0])
    assert same.f_p == pytest.approx(1.0) and same.brown_forsythe_p == pytest.approx(1.0)
    wide = spread_tests([0.0, 10.0, -10.0, 20.0, -20.0], [0.0, 0.1, -0.1, 0.2, -0.2])
    assert wide.f_p < 1e-6 and wide.brown_forsythe_p < 0.05
