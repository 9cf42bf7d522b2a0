"""The mutation score script reads mutmut's results per module."""

from collections import Counter

from mutation_score import outcomes, score

RESULTS = """\
    vae_lightning.models.elbo.x_kl__mutmut_1: killed
    vae_lightning.models.elbo.x_kl__mutmut_2: survived
    vae_lightning.models.elbo.xǁElboǁelbo__mutmut_1: killed
    vae_lightning.models.elbo.x_kl__mutmut_3: not checked
    vae_lightning.evaluation.record.x_main__mutmut_12: no tests
"""


def test_each_modules_score_is_killed_over_run_mutants():
    by_module = outcomes(RESULTS)
    assert by_module == {
        "evaluation.record": Counter({"no tests": 1}),
        "models.elbo": Counter({"killed": 2, "survived": 1, "not checked": 1}),
    }
    assert score(by_module["models.elbo"]) == 100 * 2 / 3
    assert score(by_module["evaluation.record"]) == 0
    assert score(Counter({"not checked": 4})) is None
