"""The numbers a run reports come from the checkpoint it names: the test at the end of training
(`test=true`) evaluates the checkpoint of the best validation ELBO, summary.json names it, and
its test metrics are those of an evaluation of that file, for a run whose best and last
checkpoints differ, a resumed run and a run without validation (whose newest epoch it tests)."""

import csv
import json
from pathlib import Path

import lightning as L
import pytest
from conftest import tiny_overrides
from hydra.utils import instantiate

from vae_lightning.evaluation.checkpoint import load_checkpoint_file, model_from_checkpoint
from vae_lightning.train import train

# At this rate the validation ELBO of the tiny data falls from epoch 0 to epoch 1 (-183.6,
# then -186.5: deterministic on the CPU), so the best checkpoint is not the last.
FALLING = ["model.optimizer.lr=0.03", "trainer.max_epochs=2", "logger=csv"]
TEST_METRICS = ("test/elbo", "test/recon", "test/kl", "test/active_units", "test/mutual_info")


def evaluated(cfg, checkpoint: Path) -> dict[str, float]:
    """The test metrics of an evaluation of `checkpoint` on the run's data, on its own."""
    model = model_from_checkpoint(load_checkpoint_file(checkpoint), checkpoint)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    return trainer.test(model, datamodule=instantiate(cfg.data), verbose=False)[0]


def val_elbo_by_epoch(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv", newline="") as f:
        return {int(r["epoch"]): float(r["val/elbo"]) for r in csv.DictReader(f) if r["val/elbo"]}


def assert_tests(run: Path, cfg, checkpoint: Path, other: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_checkpoint"] == str(checkpoint)
    expected, elsewhere = evaluated(cfg, checkpoint), evaluated(cfg, other)
    assert expected["test/elbo"] != elsewhere["test/elbo"]  # the checkpoints tell apart
    for name in TEST_METRICS:
        assert summary["metrics"][name] == pytest.approx(expected[name], rel=1e-6), name


def test_the_test_evaluates_the_best_checkpoint_not_the_last(tiny_data, compose_train, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), *FALLING])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    elbo = val_elbo_by_epoch(run)
    best_epoch = max(elbo, key=elbo.get)
    assert best_epoch == 0 and len(elbo) == 2  # best and last differ
    best = run / "checkpoints" / f"best-epoch{best_epoch:03d}.ckpt"
    assert_tests(run, cfg, best, run / "checkpoints" / "last.ckpt")


def test_a_resumed_run_tests_the_best_checkpoint_of_its_whole_history(
    tiny_data, compose_train, tmp_path
):
    first_cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), *FALLING[:1], "logger=csv"])
    first_cfg.trainer.max_epochs = 1
    train(first_cfg)
    first = Path(first_cfg.paths.output_dir)
    resume = f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"
    cfg = compose_train(
        [*tiny_overrides(tiny_data, tmp_path), *FALLING, resume], run_dir=tmp_path / "resumed"
    )
    train(cfg)
    run = tmp_path / "resumed"
    # The best is epoch 0, trained before the resume: the resumed run keeps a copy of it.
    best = run / "checkpoints" / "best-epoch000.ckpt"
    assert best.read_bytes() == (first / "checkpoints" / "best-epoch000.ckpt").read_bytes()
    assert_tests(run, cfg, best, run / "checkpoints" / "last.ckpt")


def test_a_run_without_validation_tests_its_newest_epoch(tiny_data, compose_train, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), *FALLING, "data.val_size=0"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    newest = run / "checkpoints" / "epoch001.ckpt"
    assert sorted((run / "checkpoints").glob("epoch*.ckpt")) == [newest]  # the newest kept
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_checkpoint"] == str(newest)
    expected = evaluated(cfg, newest)
    for name in TEST_METRICS:
        assert summary["metrics"][name] == pytest.approx(expected[name], rel=1e-6), name
