"""The results report through the real entry points: a tiny sweep, one evaluation, the report."""

import pytest
from conftest import run_cli, tiny_overrides
from PIL import Image

from vae_lightning import report

# Tiny MNIST: 250 training images in minibatches of 50, 2 epochs.
SAMPLES_SEEN = 2 * 250
ROW_STARTS = ("| 2 ", "| 3 ")  # the table rows of latent sizes 2 and 3


@pytest.mark.slow
def test_report_of_a_sweep_keeps_its_discussion(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    args = [*tiny_overrides(tiny_data, tmp_path), "model.latent_dim=2,3", "logger=csv"]
    result = run_cli("vae_lightning.train", [*args, f"hydra.sweep.dir={sweep}", "-m"], tmp_path)
    assert result.returncode == 0, result.stderr
    evaluation = ["num_importance_samples=10", "chunk_size=10", f"ckpt_path={sweep / '0'}"]
    result = run_cli("vae_lightning.eval", evaluation, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    docs = tmp_path / "docs"
    result = run_cli("vae_lightning.report", ["sweep", "--out", "docs"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (docs / "results.md").read_text()
    rows = [line.strip("| ").split(" | ") for line in text.splitlines() if line[:4] in ROW_STARTS]
    assert [row[1] for row in rows] == [f"{SAMPLES_SEEN:,}"] * 2
    assert " ± " in rows[0][4] and "(K = 10, 100 points)" in rows[0][4]
    assert rows[1][4] == "—"
    assert rows[0][6].endswith("CPU") and rows[0][7] == "dynamic"  # the machine it ran on
    assert Image.open(docs / "figures" / "mnist_elbo_curves.png").size == (800, 600)
    assert (docs / "figures" / "mnist_manifold_latent2.png").is_file()
    assert (docs / "figures" / "mnist_samples_latent2.png").is_file()
    assert "1/200,000 of the paper's budget (5 x 10^2 vs 10^8)" in text
    assert "- `sweep/0`" in text and "- `sweep/1`" in text

    discussion = "The bound is far below the paper's:\n\nthe budget is 1/200,000 of it."
    start, end = text.index(report.DISCUSSION_START), text.index(report.DISCUSSION_END)
    edited = f"{text[: start + len(report.DISCUSSION_START)]}\n{discussion}\n{text[end:]}"
    (docs / "results.md").write_text(edited)
    report.main([str(sweep), "--out", str(docs)])
    regenerated = (docs / "results.md").read_text()
    assert f"{report.DISCUSSION_START}\n{discussion}\n{report.DISCUSSION_END}" in regenerated
