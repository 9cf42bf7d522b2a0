"""W&B charts read like Figure 2 of the paper: the ELBO against training samples seen."""

from conftest import tiny_overrides

from vae_lightning.tracking.wandb_offline import read_run
from vae_lightning.train import train


def test_elbo_charts_have_training_samples_seen_as_x_axis(tiny_data, compose_train, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=2", "test=false"]
    train(compose_train(overrides))
    [run_dir] = (tmp_path / "run").rglob("offline-run-*")
    run = read_run(run_dir)

    for split in ("train", "val"):
        assert run["metrics"][f"{split}/elbo"] == {
            "step_metric": "trainer/samples_seen",
            "summary": ["max"],
        }
    rows = [row for row in run["history"] if "trainer/samples_seen" in row]
    seen = [row["trainer/samples_seen"] for row in rows]
    assert seen == sorted(seen) and all(n % 50 == 0 for n in seen)
    # 250 training images in minibatches of 50: 250 samples seen at the end of each epoch.
    assert [row["trainer/samples_seen"] for row in rows if "val/elbo" in row] == [250, 500]
