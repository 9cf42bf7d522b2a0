"""A sweep ends with a table of its jobs on the console, best validation ELBO first."""

import json
import re

from conftest import run_cli, tiny_overrides


def test_a_sweep_prints_its_jobs_best_first(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    result = run_cli("vae_lightning.train", [*args, "model.latent_dim=2,3", "-m"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("overrides "))
    rows = lines[start + 1 : start + 3]
    [sweep] = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    summaries = {str(job.relative_to(tmp_path)): job / "summary.json" for job in sweep.glob("?")}
    elbos = {job: json.loads(f.read_text())["metrics"]["val/elbo"] for job, f in summaries.items()}
    shown = [(float(re.search(r"  (-?\d+\.\d\d)  ", row)[1]), row.split()[-1]) for row in rows]
    assert [folder for _, folder in shown] == sorted(elbos, key=elbos.get, reverse=True)
    assert all(abs(value - elbos[folder]) < 0.01 for value, folder in shown)
    assert all("model.latent_dim=" in row and "completed" in row for row in rows)
