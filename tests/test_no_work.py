"""Configurations that would train on nothing or test on nothing: refused with exit 2, the keys
and the sizes that fit named, before anything is written (the run folder included)."""

import pytest
import torch
from conftest import TINY_FREY, TINY_MNIST, run_cli, run_forked, tiny_overrides

TRAIN = "vae_lightning.train"

# (overrides, words the refusal holds). The tiny MNIST has 300 training-file images (50
# validation by default) and 100 test images; Frey Face 120 frames (20 + 20 held out).
NO_WORK = [
    (["trainer.max_epochs=0"], ["trainer.max_epochs=0", "trains nothing"]),
    (["trainer.max_steps=0"], ["trainer.max_steps=0", "trains nothing"]),
    (["data.val_size=300"], ["data.val_size=300", "0 of the 300 images", "at most 299"]),
    (["data.val_size=1000"], ["data.val_size=1000", "0 of the 300 images", "at most 299"]),
    (
        ["data=frey_face", "data.val_size=60", "data.test_size=60"],
        ["data.val_size=60 and data.test_size=60", f"of the {TINY_FREY} images", "at most 119"],
    ),
    (["trainer.limit_train_batches=0"], ["trainer.limit_train_batches=0", "at least 1"]),
    (["trainer.limit_train_batches=0.1"], ["trainer.limit_train_batches=0.1", "of the 5"]),
    (["trainer.limit_test_batches=0"], ["test=true", "trainer.limit_test_batches=0"]),
    (["data=frey_face", "data.test_size=0"], ["test=true", "no test images", "test=false"]),
]


@pytest.mark.parametrize(("overrides", "words"), NO_WORK)
def test_a_run_that_would_do_no_work_is_refused_before_anything_is_written(
    overrides, words, tiny_data, tmp_path
):
    data = "frey_face" if "data=frey_face" in overrides else "mnist"
    args = [a for a in tiny_overrides(tiny_data, tmp_path, data) if not a.startswith("data=")]
    result = run_forked(TRAIN, [f"data={data}", *args, *overrides], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    for word in words:
        assert word in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3, output
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.*"))


def test_resuming_a_checkpoint_that_trained_the_whole_budget_is_refused(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "logger=csv"]
    first = run_cli(TRAIN, args, tmp_path)
    assert first.returncode == 0, first.stderr
    [last] = (tmp_path / "outputs").rglob("last.ckpt")
    steps = torch.load(last, weights_only=True)["global_step"]
    assert steps == (TINY_MNIST["train"] - 50) // 50
    runs = set((tmp_path / "outputs").rglob("summary.json"))
    again = run_forked(TRAIN, [*args, f"ckpt_path={last}"], tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 2, output
    assert f"has trained {steps} steps (1 epochs of {steps})" in output
    assert "trainer.max_epochs above 1" in output
    assert set((tmp_path / "outputs").rglob("summary.json")) == runs  # no new run folder
