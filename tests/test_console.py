"""What a default training run shows: a row per epoch, the validation ELBO in the progress
bar, and no warning that is not ours to fix."""

import re

from conftest import run_cli, tiny_overrides

WARNING = re.compile(r"warn|💡|\.py:\d+: ", re.IGNORECASE)
ROW = re.compile(r"epoch_table\]\[INFO\] - +(\d+) +(-?\d+\.\d\d) +(-?\d+\.\d\d) +(\d+\.\d\d) +\d+ ")


def test_a_default_run_prints_a_row_per_epoch_and_no_noise(tiny_data, tmp_path):
    args = [a for a in tiny_overrides(tiny_data, tmp_path) if "refresh_rate" not in a]
    result = run_cli("vae_lightning.train", [*args, "trainer.max_epochs=3"], tmp_path)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    assert [line for line in console.splitlines() if WARNING.search(line)] == []
    assert "val/elbo=" in console  # the progress bar shows the last validation ELBO

    [log_file] = tmp_path.glob("outputs/train/runs/*/train.log")
    for text in (console, log_file.read_text()):
        assert "train ELBO    val ELBO   val KL  samples/s" in text
        rows = [m for line in text.splitlines() if (m := ROW.search(line))]
        assert [int(m[1]) for m in rows] == [0, 1, 2]
        val = [float(m[3]) for m in rows]
        marked = [line.endswith(" *") for line in text.splitlines() if ROW.search(line)]
        assert marked == [v == max(val[: i + 1]) for i, v in enumerate(val)]
