"""Fault injection at scale: kill a training run at N seeded points, resume it, count losses.

Each point trains a small model on tiny MNIST-format files written to a temporary folder, is
killed with SIGKILL (at the start of a random step, or halfway through writing a random
checkpoint), and is then resumed with the README's command (same command, ``auto_resume=true``)
until it completes. Against a run that was never stopped it checks that `metrics.csv` holds
every logged (step, metric) exactly once with the same value (relative 1e-6), that the final
metrics agree, that the offline W&B record is one run and that it holds every (step, metric)
of the uninterrupted run's metrics.csv exactly once. It prints one line per point and the
totals of records lost, for metrics.csv and for W&B. It also times a checkpoint write of the
paper's MNIST model and the cost per training step at the default interval (every 10 minutes).

    python benchmarks/fault_injection.py --points 20
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
STEPS_PER_EPOCH, EPOCHS = 5, 4
ARGS = [
    "trainer=cpu",
    f"trainer.max_epochs={EPOCHS}",
    "test=false",
    "data.download=false",
    "data.batch_size=50",
    "data.eval_batch_size=50",
    "data.val_size=50",
    "model.hidden_dims=[32]",
    "model.latent_dim=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar.refresh_rate=0",
    "callbacks.interval_checkpoint.every_n_train_steps=2",
    "callbacks.interval_checkpoint.train_time_interval=null",
]
TIMING = "train/samples_per_sec"


def train(folder: Path, data: list[str], *extra: str) -> int:
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "vae_lightning.train", *ARGS, *data]
    command += [f"hydra.run.dir={folder}", *extra]
    return subprocess.run(command, env=env, capture_output=True, cwd=folder.parent).returncode


def logged(folder: Path) -> tuple[dict[tuple[str, str], float], int]:
    """{(step, metric): value} of metrics.csv and the number of pairs logged more than once."""
    values, repeats = {}, 0
    with open(folder / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if key in ("step", "epoch", TIMING) or value == "":
                    continue
                repeats += (row["step"], key) in values
                values[row["step"], key] = float(value)
    return values, repeats


def wandb_logged(folder: Path) -> tuple[dict[tuple[str, str], float], int]:
    """As `logged`, from the run's W&B record: its offline run outside wandb/superseded/."""
    from vae_lightning.tracking.wandb_offline import logged_values

    runs = sorted((folder / "wandb").glob("offline-run-*"))
    values, repeats = logged_values(runs[-1]) if runs else ({}, 0)
    return {(str(s), k): v for (s, k), v in values.items() if k != TIMING}, repeats


def compare(folder: Path, reference: Path) -> dict[str, float]:
    got, repeats = logged(folder)
    expected, _ = logged(reference)
    in_wandb, wandb_repeats = wandb_logged(folder)
    differences = [abs(got[k] - v) / max(abs(v), 1e-12) for k, v in expected.items() if k in got]
    final = json.loads((folder / "summary.json").read_text())
    runs = {p.name.rsplit("-", 1)[-1] for p in (folder / "wandb").glob("offline-run-*")}
    return {
        "lost": len(expected.keys() - got.keys()),
        "extra": len(got.keys() - expected.keys()),
        "repeated": repeats,
        "max_rel_diff": max(differences),
        "status": final["status"],
        "wandb_runs": len(runs),
        "wandb_lost": len(expected.keys() - in_wandb.keys()),
        "wandb_extra": len(in_wandb.keys() - expected.keys()),
        "wandb_repeated": wandb_repeats,
    }


def checkpoint_cost() -> tuple[float, float]:
    """Median seconds of one atomic checkpoint write of the paper's MNIST model (latent 20)."""
    import torch

    from vae_lightning.models import VAE
    from vae_lightning.training.checkpointing import AtomicCheckpointIO

    model = VAE([1, 28, 28], latent_dim=20, hidden_dims=[500])
    optimizer = torch.optim.Adagrad(model.parameters())
    state = {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}
    io, times = AtomicCheckpointIO(), []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(9):
            start = time.perf_counter()
            io.save_checkpoint(state, Path(tmp) / "last.ckpt")
            times.append(time.perf_counter() - start)
        size = (Path(tmp) / "last.ckpt").stat().st_size
    return sorted(times)[len(times) // 2], size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from conftest import make_tiny_data

    rng = random.Random(args.seed)
    total_steps = STEPS_PER_EPOCH * EPOCHS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sums = make_tiny_data(tmp / "data")["mnist"]
        data = [f"paths.data_dir={tmp / 'data'}", f"paths.cache_dir={tmp / 'cache'}"]
        data += [f"data.checksums.{k}={v}" for k, v in sums.items()]
        reference = tmp / "reference"
        assert train(reference, data) == 0
        totals = {"lost": 0, "extra": 0, "repeated": 0, "wandb_lost": 0, "wandb_repeated": 0}
        totals["wandb_extra"] = 0
        for point in range(args.points):
            during_write = rng.random() < 0.3
            step = rng.randrange(1, total_steps)
            kind = "KillDuringCheckpointWrite" if during_write else "KillAtStep"
            kill = [
                f"+callbacks.kill._target_=fault_injection.{kind}",
                f"+callbacks.kill.step={step}",
            ]
            folder = tmp / f"point{point}"
            killed = train(folder, data, *kill)
            resumes = 0
            while train(folder, data, "auto_resume=true") != 0 and resumes < 3:
                resumes += 1
            result = compare(folder, reference)
            for key in totals:
                totals[key] += result[key]
            print(
                f"point {point:2d}: {kind:<25} step {step:2d} (exit {killed}) -> "
                + ", ".join(
                    f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in result.items()
                ),
                flush=True,
            )
        for record, prefix in (("metrics.csv", ""), ("W&B", "wandb_")):
            print(
                f"{args.points} kill points, {record}: {totals[prefix + 'lost']} records lost, "
                f"{totals[prefix + 'repeated']} logged twice, {totals[prefix + 'extra']} not in "
                "the uninterrupted run"
            )
    seconds, megabytes = checkpoint_cost()
    print(
        f"checkpoint of the paper's MNIST model (latent 20, {megabytes:.1f} MB): "
        f"{seconds * 1e3:.1f} ms a write (median of 9); every 10 minutes that is "
        f"{seconds / 600 * 1e6:.1f} us a second of training, {seconds / 600:.1e} of the time"
    )


if __name__ == "__main__":
    main()
