"""The README's recipes, each run for a few steps through Hydra compose (in-process) or, where
the entry point itself is the subject, through the CLI and console scripts."""

import csv
import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from composing import compose_run, console_script
from conftest import ROOT, tiny_overrides
from hydra.utils import instantiate

from vae_lightning.report import write_report
from vae_lightning.tracking.wandb_offline import describe
from vae_lightning.train import train

ONE_EPOCH = ["trainer.max_epochs=1", "test=false", "logger=csv"]


def _checkpoint(cfg) -> dict:
    return torch.load(Path(cfg.paths.output_dir) / "checkpoints/last.ckpt", weights_only=True)


def _optimizer(cfg) -> tuple[set[str], dict]:
    """(the names of the optimiser's per-parameter state, its first parameter group)."""
    state = _checkpoint(cfg)["optimizer_states"][0]
    return set(state["state"][0]), state["param_groups"][0]


ADAGRAD, ADAM = {"step", "sum"}, {"step", "exp_avg", "exp_avg_sq"}
DATA_MODULES = {"mnist": "MNISTDataModule", "frey_face": "FreyFaceDataModule"}


@pytest.mark.parametrize(
    ("experiment", "data", "optimizer", "lr", "weight_decay", "epochs"),
    [
        ("aevb_mnist", "mnist", ADAGRAD, 0.02, 2e-5, 1),
        # Validates every 10 epochs: 10 epochs of 2 steps give one validation.
        ("aevb_frey_face", "frey_face", ADAGRAD, 0.02, 6.4e-4, 10),
        ("modern_mnist", "mnist", ADAM, 1e-3, 0.0, 1),
    ],
)
def test_paper_experiments_train_with_their_settings(
    experiment, data, optimizer, lr, weight_decay, epochs, tiny_data, tmp_path
):
    overrides = [*tiny_overrides(tiny_data, tmp_path, data), *ONE_EPOCH]
    paper = compose_run([f"experiment={experiment}"], tmp_path)
    hidden, likelihood = {"mnist": ([500], "bernoulli"), "frey_face": ([200], "gaussian")}[data]
    assert (paper.model.latent_dim, paper.model.hidden_dims) == (20, hidden)
    assert (paper.model.activation, paper.model.likelihood) == ("tanh", likelihood)
    assert (paper.model.num_samples, paper.data.batch_size) == (1, 100)
    assert paper.data._target_.split(".")[-1] == DATA_MODULES[data]

    # Trained small: the tiny overrides (network, data, epochs) on top of the recipe.
    overrides = [*overrides, f"experiment={experiment}", f"trainer.max_epochs={epochs}"]
    cfg = compose_run(overrides, tmp_path)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/elbo"]))
    state, group = _optimizer(cfg)
    assert state == optimizer
    assert group["lr"] == pytest.approx(lr) and group["weight_decay"] == pytest.approx(weight_decay)


def test_optimizer_adagrad_with_its_step_size(tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), *ONE_EPOCH]
    cfg = compose_run([*overrides, "optimizer=adagrad", "model.optimizer.lr=0.05"], tmp_path)
    train(cfg)
    state, group = _optimizer(cfg)
    assert state == ADAGRAD and group["lr"] == pytest.approx(0.05)


def _column(run: Path, name: str) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


def test_learning_rate_scheduler_steps_each_epoch(tiny_data, tmp_path):
    """StepLR halving the rate each epoch: train/lr halves from one epoch to the next."""
    scheduler = (
        "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,"
        "step_size:1,gamma:0.5}"
    )
    overrides = [*tiny_overrides(tiny_data, tmp_path), *ONE_EPOCH, "trainer.max_epochs=3"]
    cfg = compose_run([*overrides, scheduler], tmp_path)
    train(cfg)
    rates = _column(Path(cfg.paths.output_dir), "train/lr")
    assert len(rates) == 3 and rates[0] == pytest.approx(1e-3)  # the rate epoch 0 trained with
    assert [b / a for a, b in itertools.pairwise(rates)] == pytest.approx([0.5, 0.5])
    [scheduler_state] = _checkpoint(cfg)["lr_schedulers"]
    assert (scheduler_state["step_size"], scheduler_state["gamma"]) == (1, 0.5)


def test_static_binarisation_and_split_seed_reach_the_training_data(tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), *ONE_EPOCH]
    cfg = compose_run([*overrides, "data.binarize=static", "data.split_seed=3"], tmp_path)
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert summary["binarize"] == "static"
    datamodules = [instantiate(compose_run([*overrides, *extra], tmp_path).data) for extra in (
        ["data.binarize=static", "data.split_seed=3"], ["data.binarize=static"]
    )]  # fmt: skip
    for datamodule in datamodules:
        datamodule.setup()
    train_x = datamodules[0].splits["train"]
    assert ((train_x == 0) | (train_x == 1)).all()
    assert not torch.equal(datamodules[0].splits["val"], datamodules[1].splits["val"])


@pytest.mark.parametrize(
    "steps",
    [7, 3],
    ids=["7 steps: one epoch of 5 and 2 of the next", "3 steps: ends before any validation"],
)
def test_max_steps_with_unlimited_epochs_stops_at_the_step(steps, tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), "logger=csv"]
    cfg = compose_run([*overrides, f"trainer.max_steps={steps}", "trainer.max_epochs=-1"], tmp_path)
    metrics = train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert summary["steps"] == steps and "test/elbo" in metrics


def test_without_the_media_callback_no_images_are_drawn(tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), *ONE_EPOCH]
    with_media = compose_run(overrides, tmp_path / "a")
    train(with_media)
    assert list((Path(with_media.paths.output_dir) / "media").glob("*.png"))
    without = compose_run([*overrides, "~callbacks.media"], tmp_path / "b")
    train(without)
    assert not (Path(without.paths.output_dir) / "media").exists()


def test_log_model_all_logs_every_checkpoint_as_saved(tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), "test=false", "~callbacks.media"]
    cfg = compose_run([*overrides, "logger=wandb", "logger.wandb.log_model=all"], tmp_path)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert not (run / "metrics.csv").exists()  # logger=wandb alone: no CSV logger
    [offline] = run.rglob("offline-run-*")
    artifacts = describe(offline)["artifacts"]
    # 2 epochs, each saving best-epochNNN.ckpt (the ELBO improves) and last.ckpt, and the
    # interval checkpoint's last.ckpt at the end of training.
    assert [a["type"] for a in artifacts] == ["model"] * 5, artifacts


def test_report_of_a_run_logged_to_wandb_only(tiny_data, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), *ONE_EPOCH, "~callbacks.media"]
    cfg = compose_run([*overrides, "logger=wandb"], tmp_path)
    train(cfg)
    write_report([Path(cfg.paths.output_dir)], tmp_path / "docs")
    assert (tmp_path / "docs/results.md").is_file()


@pytest.fixture(scope="module")
def console_run(tiny_data, tmp_path_factory) -> tuple[Path, Path, dict]:
    """`vae-train` with the data and cache folders given as environment variables only."""
    tmp_path = tmp_path_factory.mktemp("console")
    cache = tmp_path / "cache"
    overrides = [o for o in tiny_overrides(tiny_data, tmp_path) if not o.startswith("paths.")] + [
        "trainer.max_epochs=1"
    ]
    env = {**os.environ, "VAE_DATA_DIR": str(tiny_data[0]), "VAE_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [console_script("vae-train"), *overrides],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [summary] = (tmp_path / "outputs").rglob("summary.json")
    return tmp_path, summary.parent, env


def test_data_and_cache_folders_come_from_the_environment(console_run, tiny_data):
    tmp_path, run, _ = console_run
    config = (run / "config.yaml").read_text()
    assert f"data_dir: {tiny_data[0]}" in config and f"cache_dir: {tmp_path / 'cache'}" in config
    assert (tmp_path / "cache/MNIST/raw/train-images-idx3-ubyte").is_file()
    assert not (tmp_path / "data").exists()


def test_console_scripts_evaluate_report_and_read_the_offline_run(console_run):
    tmp_path, run, env = console_run

    def script(*command: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    script(console_script("vae-eval"), f"ckpt_path={run}", "num_importance_samples=5")
    [eval_json] = (run / "eval").rglob("eval.json")
    record = json.loads(eval_json.read_text())
    assert (record["num_importance_samples"], record["num_data_points"]) == (5, 100)
    script(console_script("vae-report"), str(run.parent), "--out", "docs")
    [row] = [
        r for r in (tmp_path / "docs/results.md").read_text().splitlines() if r.startswith("| 2 ")
    ][:1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert (cells[2], cells[6]) == ("all 100", "5")  # test points, K
    [offline] = run.rglob("offline-run-*")
    printed = script(sys.executable, "-m", "vae_lightning.tracking.wandb_offline", str(offline))
    described = json.loads(printed.stdout)
    assert {"val/elbo", "test/elbo"} <= set(described["scalars"])


@pytest.mark.slow
def test_importance_sampling_benchmark_runs_tiny(tmp_path):
    script = ROOT / "benchmarks/importance_sampling_throughput.py"
    result = subprocess.run(
        [sys.executable, str(script), "--samples", "3", "--repeats", "1", "--threads", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    shapes = [r for r in rows if len(r) >= 6 and r[0].isdigit() and r[1].isdigit()]
    assert len(shapes) == 7, result.stdout  # the shapes timed, before and after among them
    assert all(float(r[3]) > 0 and float(r[4]) > 0 for r in shapes)  # us per pair, bound/time


@pytest.mark.slow
def test_training_benchmark_runs_tiny(tiny_data, tmp_path):
    root, checksums = tiny_data
    script = ROOT / "benchmarks/train_throughput.py"
    data = ["val_size=50", *(f"checksums.{k}={v}" for k, v in checksums["mnist"].items())]
    args = ["--epochs", "1", "--repeats", "1", "--settings", "paper", "--data", *data]
    result = subprocess.run(
        [sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "VAE_DATA_DIR": str(root), "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line.split() for line in result.stdout.splitlines()]
    rows = {t[0]: t[1:] for t in table if len(t) == 7 and t[1].replace(".", "").isdigit()}
    for kind in ("project", "lightning", "plain", "plain-fused"):  # no pythae: paper setting
        rate, steps, epoch_s, start_s, rss, elbo = map(float, rows[kind])
        # Printed rounded: samples/s to 1, steps/s to 0.1 and epoch seconds to 0.01.
        assert steps == pytest.approx(rate / 100, abs=0.05 + 0.5 / 100 + 1e-9)  # minibatch 100
        epoch_tolerance = 0.005 + 250 * 0.5 / (rate - 0.5) ** 2 + 1e-9
        assert rate > 0 and epoch_s == pytest.approx(250 / rate, abs=epoch_tolerance)
        assert start_s > 0
        assert rss > 0 and elbo < 0
    assert "pythae" not in rows
    assert sum(line.startswith("project / ") for line in result.stdout.splitlines()) == 2


@pytest.mark.parametrize("setting", ["pytorch-examples", "paper", "conv", "conv-small"])
def test_training_benchmark_plain_loop_steps_the_projects_model(setting):
    """The plain loops' PlainVAE is the project's VAE: same initial weights from the same seed,
    the same ELBO per data point and the same gradients, so their speeds compare one step."""
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks/train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    plain = bench.PlainVAE.of(bench.SETTINGS[setting])
    torch.manual_seed(0)
    project = bench.project_model(bench.SETTINGS[setting])
    plain_params, project_params = list(plain.parameters()), list(project.parameters())
    assert [p.shape for p in plain_params] == [p.shape for p in project_params]
    assert all(torch.equal(a, b) for a, b in zip(plain_params, project_params, strict=True))
    x = torch.bernoulli(torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(2)
    plain_elbo = plain.elbo(x)
    torch.manual_seed(2)
    project_elbo = project.elbo(x).elbo
    torch.testing.assert_close(plain_elbo, project_elbo)
    plain_elbo.mean().backward()
    project_elbo.mean().backward()
    for a, b in zip(plain_params, project_params, strict=True):
        torch.testing.assert_close(a.grad, b.grad)
