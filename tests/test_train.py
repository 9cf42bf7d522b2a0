"""Training through the real entry points: Hydra compose and `python -m vae_lightning.train`."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_overrides

from vae_lightning.train import train


def _run_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


@pytest.mark.parametrize("data", ["mnist", "frey_face"])
def test_training_through_compose_writes_a_complete_run_folder(
    data, tiny_data, compose_train, tmp_path
):
    cfg = compose_train(tiny_overrides(tiny_data, tmp_path, data))
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == data and summary["epochs"] == 2
    for split in ("train", "val", "test"):
        elbo, recon, kl = (metrics[f"{split}/{t}"] for t in ("elbo", "recon", "kl"))
        assert math.isfinite(elbo) and kl >= 0
        assert elbo == pytest.approx(-(recon + kl), rel=1e-5)
    # The dataset's paper defaults were filled into the saved config.
    expected = {"mnist": "bernoulli", "frey_face": "gaussian"}[data]
    assert f"likelihood: {expected}" in (run / "config.yaml").read_text()


def test_same_seed_gives_the_same_numbers(tiny_data, compose_train, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    first = train(compose_train([*overrides, "hydra.run.dir=a"]))
    (tmp_path / "run").rename(tmp_path / "first")
    second = train(compose_train(overrides))
    assert first["val/elbo"] == second["val/elbo"]
    assert first["train/elbo"] == second["train/elbo"]


def test_cli_trains_and_resumes_from_last_checkpoint(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1"]
    first = run_cli("vae_lightning.train", args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    [run] = _run_folders(tmp_path / "outputs")
    last = run / "checkpoints" / "last.ckpt"
    # Written at the end of training: one epoch of 5 steps done.
    assert torch.load(last, weights_only=True)["global_step"] == 5

    resumed = run_cli(
        "vae_lightning.train", [*args, "trainer.max_epochs=2", f"ckpt_path={last}"], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    runs = _run_folders(tmp_path / "outputs")
    assert len(runs) == 2
    summary = json.loads((runs[1] / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["steps"] == 2 * torch.load(last, weights_only=True)["global_step"]


@pytest.mark.slow
def test_multirun_sweep_gives_each_job_its_own_complete_folder(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "model.latent_dim=2,3"]
    result = run_cli("vae_lightning.train", [*args, "-m"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = _run_folders(tmp_path / "outputs" / "train" / "multiruns")
    assert len(runs) == 2
    latent = sorted(json.loads((r / "summary.json").read_text())["latent_dim"] for r in runs)
    assert latent == [2, 3]
    for run in runs:
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert (run / "metrics.csv").is_file()
        assert (
            f"model.latent_dim={2 + int(run.name)}" in (run / ".hydra/overrides.yaml").read_text()
        )


def test_pytorch_examples_experiment_trains_on_every_training_image_without_validation(
    tiny_data, compose_train, tmp_path
):
    """`data.val_size=0`: all 300 tiny training images, checkpoints by epoch, test on the newest."""
    overrides = [*tiny_overrides(tiny_data, tmp_path), "experiment=pytorch_examples"]
    cfg = compose_train([*overrides, "data.val_size=0", "trainer.max_epochs=2"])
    assert (cfg.model.hidden_dims, cfg.model.activation, cfg.data.binarize) == (
        [32],
        "relu",
        "none",
    )
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 * 300 // 50  # every training image, each epoch
    assert not any(key.startswith("val/") for key in metrics)
    assert math.isfinite(metrics["test/elbo"])
    assert summary["best_checkpoint"].endswith("epoch001.ckpt")  # the newest epoch
