"""The mutation audit's eight bugs, re-applied: `python tests/audit_bugs.py`.

Each bug is put, one at a time, into a copy of `src/` (with `conf/` beside it), and the tests
named for it run against that copy; every bug must make them fail. Prints one line per bug
and exits 1 if a bug is not caught.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/vae_lightning"

# (bug, file in the package, text, the text with the bug, tests that must catch it)
BUGS = [
    (
        "training_step returns -loss (training minimises the ELBO)",
        "models/lit_vae.py",
        'return self._step(x, "train")',
        'return -self._step(x, "train")',
        ["tests/test_learning.py"],
    ),
    (
        "importance sampling with K = 1 while eval.json says K",
        "eval.py",
        "importance_sampled_log_likelihood(vae, images, k,",
        "importance_sampled_log_likelihood(vae, images, 1,",
        ["tests/test_eval_exact.py"],
    ),
    (
        "standard error without the division by sqrt(n)",
        "evaluation/metrics.py",
        "values.std().item() / math.sqrt(n)",
        "values.std().item()",
        ["tests/test_eval_exact.py", "tests/test_properties.py"],
    ),
    (
        "dynamic binarisation with p = 0.9 x the pixel value",
        "data/datamodule.py",
        "return torch.bernoulli(batch)",
        "return torch.bernoulli(0.9 * batch)",
        ["tests/test_binarisation.py", "tests/test_data.py"],
    ),
    (
        "the fixed validation/test draw ignores split_seed",
        "data/datamodule.py",
        "manual_seed(self.split_seed * 10 + index)",
        "manual_seed(index)",
        ["tests/test_binarisation.py", "tests/test_data.py"],
    ),
    (
        "a folder holding only metrics.csv is trained into",
        "training/run_folder.py",
        '(self.path / "metrics.csv").exists()\n            or ',
        "",
        ["tests/test_resume.py"],
    ),
    (
        "auto-resume ignores hpc_ckpt_<n>.ckpt",
        "training/checkpointing.py",
        "    if hpc:\n",
        "    if False:\n",
        ["tests/test_resume.py"],
    ),
    (
        "no fsync before the rename",
        "atomic_files.py",
        "os.fsync(file.fileno())",
        "pass",
        ["tests/test_resume.py"],
    ),
]


def caught(file: str, text: str, bug: str, tests: list[str]) -> bool:
    """Whether `tests` fail with `text` replaced by `bug` in a copy of the package."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        shutil.copytree(ROOT / "src", copy / "src")
        shutil.copytree(ROOT / "conf", copy / "conf")
        source = copy / PACKAGE / file
        original = source.read_text()
        if original.count(text) != 1:
            raise SystemExit(f"{PACKAGE}/{file}: {text!r} is not there exactly once; update BUGS")
        source.write_text(original.replace(text, bug))
        env = {**os.environ, "PYTHONPATH": str(copy / "src")}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider"]
        result = subprocess.run([*command, *tests], cwd=ROOT, env=env, capture_output=True)
        return result.returncode == 1  # tests failed (not a collection or usage error)


def main() -> None:
    missed = 0
    for name, file, text, bug, tests in BUGS:
        ok = caught(file, text, bug, tests)
        missed += not ok
        print(f"{'caught' if ok else 'MISSED':7} {name}  ({', '.join(tests)})", flush=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
