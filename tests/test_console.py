"""What a training run shows: a row per epoch, the validation ELBO in the progress bar, one
line for the W&B run, and no warning or chatter that is not ours to fix, in a single run as in
a sweep and an Optuna search. W&B is not silenced here (the other tests silence it)."""

import re

import pytest
from conftest import run_cli, run_forked, tiny_overrides

WARNING = re.compile(r"warn|💡|\.py:\d+: ", re.IGNORECASE)
# W&B's own lines ("wandb: Run history:", its sparklines) and Optuna's ("[I 2026-...] A new
# study created in memory ...").
CHATTER = re.compile(r"^wandb: |\[[IWE] \d{4}-\d\d-\d\d ")
NOT_SILENT = {"WANDB_SILENT": "false"}
# epoch, train ELBO, val ELBO, val KL, active units, samples/s
ROW = re.compile(
    r"epoch_table\]\[INFO\] - +(\d+) +(-?\d+\.\d\d) +(-?\d+\.\d\d) +(\d+\.\d\d) +(\d+) +\d+ "
)
LATENT_DIM = 2  # tiny_overrides' latent size


def noise(console: str) -> list[str]:
    """The console's lines that are third-party warnings, tips or chatter."""
    return [line for line in console.splitlines() if WARNING.search(line) or CHATTER.search(line)]


def wandb_lines(console: str) -> list[str]:
    """Our one line per W&B run, saying where it is and how to upload it."""
    return [line for line in console.splitlines() if "W&B run saved offline" in line]


def test_a_default_run_prints_a_row_per_epoch_and_no_noise(tiny_data, tmp_path):
    args = [a for a in tiny_overrides(tiny_data, tmp_path) if "refresh_rate" not in a]
    result = run_cli("vae_lightning.train", [*args, "trainer.max_epochs=3"], tmp_path, **NOT_SILENT)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    assert noise(console) == []
    [wandb_run] = tmp_path.glob("outputs/train/runs/*/wandb/offline-run-*")
    assert [line.endswith(f"`wandb sync {wandb_run}`.") for line in wandb_lines(console)] == [True]
    assert "val/elbo=" in console  # the progress bar shows the last validation ELBO
    assert "v_num" not in console  # but not the W&B run's id, which the line above names
    assert "GPU available" not in console and "Seed set" not in console

    [log_file] = tmp_path.glob("outputs/train/runs/*/train.log")
    for text in (console, log_file.read_text()):
        assert "train ELBO    val ELBO   val KL active  samples/s" in text
        rows = [m for line in text.splitlines() if (m := ROW.search(line))]
        assert [int(m[1]) for m in rows] == [0, 1, 2]
        assert all(0 <= int(m[5]) <= LATENT_DIM for m in rows)  # active units of the latent
        val = [float(m[3]) for m in rows]
        marked = [line.endswith(" *") for line in text.splitlines() if ROW.search(line)]
        assert marked == [v == max(val[: i + 1]) for i, v in enumerate(val)]


@pytest.mark.parametrize(
    "sweep",
    [
        pytest.param(["model.latent_dim=2,3"], id="grid"),
        pytest.param(["hparams_search=optuna", "hydra.sweeper.n_trials=2"], id="optuna"),
        # Jobs in worker processes of their own (joblib), which `run_app` never ran in.
        pytest.param(
            ["model.latent_dim=2,3", "hydra/launcher=parallel"],
            id="parallel",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_sweep_prints_no_noise(tiny_data, tmp_path, sweep):
    args = [a for a in tiny_overrides(tiny_data, tmp_path) if not a.startswith("model.latent")]
    args += ["trainer.max_epochs=1", "test=false", *sweep, "-m"]
    result = run_cli("vae_lightning.train", args, tmp_path, **NOT_SILENT)
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    assert noise(console) == []
    assert len(wandb_lines(console)) == 2  # one per job
    assert "Sweep " in console and "best first" in console  # the sweep's table is still there


def test_help_starts_with_a_short_guide(tmp_path):
    result = run_forked("vae_lightning.train", ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[:16]
    assert first[0].startswith("Train a variational autoencoder")
    assert any(line.strip().startswith("python -m vae_lightning.eval ckpt_path=") for line in first)
    assert any("auto_resume=true" in line for line in first)
    assert "== Config groups (group=option) ==" in result.stdout
