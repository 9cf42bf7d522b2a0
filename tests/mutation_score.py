"""Mutation score per module: `python tests/mutation_score.py` after `mutmut run`.

Reads `mutmut results --all true` and prints, for each mutated module, the share of the
tested mutants that a test killed (mutants no test reaches count as not killed; those not yet
run are left out), with the count of each outcome.
"""

import re
import subprocess
import sys
from collections import Counter, defaultdict

MUTANT = re.compile(r"\s*vae_lightning\.(?P<module>.+)\.x[^.]*__mutmut_\d+: (?P<outcome>.+)$")


def outcomes(results: str) -> dict[str, Counter]:
    """{module: Counter of outcomes ('killed', 'survived', 'no tests', ...)}."""
    by_module: dict[str, Counter] = defaultdict(Counter)
    for line in results.splitlines():
        if match := MUTANT.match(line):
            by_module[match["module"]][match["outcome"]] += 1
    return dict(sorted(by_module.items()))


def score(counts: Counter) -> float | None:
    """Killed / run, in percent; None if none was run."""
    run = sum(n for outcome, n in counts.items() if outcome != "not checked")
    return 100 * counts["killed"] / run if run else None


def main() -> None:
    results = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for module, counts in outcomes(results).items():
        percent = score(counts)
        shown = "-" if percent is None else f"{percent:.1f}%"
        details = ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items()))
        print(f"{module:32} {shown:>6}  {details}")


if __name__ == "__main__":
    main()
