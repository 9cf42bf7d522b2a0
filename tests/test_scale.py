"""Scaling out: DDP, mixed precision, launchers and sweepers, fault tolerance (all on CPU)."""

import json
import math
import os
import shutil
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import run_cli, tiny_overrides
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import OmegaConf

from vae_lightning.config import config_dir
from vae_lightning.errors import NonFiniteLossError
from vae_lightning.models import VAE
from vae_lightning.train import train
from vae_lightning.training.checkpointing import AtomicCheckpointIO

TESTS = Path(__file__).resolve().parent
# One epoch of a few batches: 250 training images in batches of 50 give 5 steps per epoch.
QUICK = ["trainer.max_epochs=1", "test=false"]


def _run_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


def _with_tests_on_path() -> dict[str, str]:
    """Environment in which the CLI can import the fault-injection callbacks of the tests."""
    return {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _evaluate(checkpoint: Path, cfg) -> dict[str, float]:
    """Single-process validation and test ELBO of a checkpoint."""
    datamodule = instantiate(cfg.data)
    model = VAE.load_from_checkpoint(checkpoint, weights_only=True)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    metrics = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    metrics.update(trainer.test(model, datamodule=datamodule, verbose=False)[0])
    return metrics


@pytest.mark.slow
def test_ddp_multirun_gives_one_complete_folder_per_job_and_the_single_process_elbo(
    tiny_data, compose_train, tmp_path
):
    # 51 validation points over 2 processes: 26 + 25, so any padding would show in the mean.
    args = [*tiny_overrides(tiny_data, tmp_path), *QUICK, "test=true", "data.val_size=51"]
    result = run_cli(
        "vae_lightning.train", [*args, "trainer=ddp_cpu", "model.latent_dim=2,3", "-m"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = tmp_path / "outputs" / "train"
    assert not (outputs / "runs").exists()  # the re-executed ranks made no run folders
    [sweep] = list((outputs / "multiruns").iterdir())  # and started no sweep of their own
    runs = _run_folders(sweep)
    assert [r.name for r in runs] == ["0", "1"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    cfg = compose_train(args)
    for run in runs:
        names = {p.name for p in run.iterdir()}
        assert {".hydra", "config.yaml", "metrics.csv", "summary.json", "checkpoints"} <= names
        assert not any("ddp_process" in name for name in names)  # no log file of rank 1
        summary = json.loads((run / "summary.json").read_text())
        assert summary["latent_dim"] == 2 + int(run.name)
        metrics = summary["metrics"]
        # One epoch: the best checkpoint holds the weights the 2-process validation saw.
        single = _evaluate(Path(summary["best_checkpoint"]), cfg)
        for split in ("val", "test"):
            assert metrics[f"{split}/elbo"] == pytest.approx(single[f"{split}/elbo"], rel=1e-6)


def test_bf16_mixed_trains_close_to_fp32_with_fp32_elbo_terms(tiny_data, compose_train, tmp_path):
    overrides = [*tiny_overrides(tiny_data, tmp_path), "test=false"]
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        cfg = compose_train([*overrides, f"trainer.precision={precision}"])
        results[precision] = train(cfg)
        shutil.rmtree(cfg.paths.output_dir)
    fp32, bf16 = results["32-true"]["val/elbo"], results["bf16-mixed"]["val/elbo"]
    assert math.isfinite(bf16) and math.isfinite(results["bf16-mixed"]["train/elbo"])
    # Stated tolerance: within 0.5% of the fp32 validation ELBO after the same steps.
    assert abs(bf16 - fp32) <= 5e-3 * abs(fp32), (fp32, bf16)

    model = VAE(image_shape=[28, 28], latent_dim=2, hidden_dims=[32])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = model(torch.rand(4, 28, 28).round()).terms
    assert terms.recon.dtype == terms.kl.dtype == terms.elbo.dtype == torch.float32


def test_trainer_configs_and_multi_node_slurm_config_compose(compose_train, tmp_path):
    cfg = compose_train(["trainer=ddp_cpu"])
    trainer = instantiate(cfg.trainer)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.world_size == 2
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    gpu = compose_train(["trainer=gpu", "trainer.precision=16-mixed"]).trainer
    assert (gpu.accelerator, gpu.devices, gpu.precision) == ("gpu", 1, "16-mixed")
    cfg = compose_train(
        ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "hydra/launcher=slurm"]
    )
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes) == ("ddp", 4, 2)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)


@pytest.mark.slow
def test_basic_sweep_runs_8_jobs_with_per_dataset_defaults(tiny_data, tmp_path):
    # A copy of conf/ whose data configs accept the tiny files (their checksums and sizes).
    conf = tmp_path / "conf"
    shutil.copytree(config_dir(), conf)
    root, checksums = tiny_data
    sizes = {"mnist": {"val_size": 50}, "frey_face": {"val_size": 20, "test_size": 20}}
    for data in ("mnist", "frey_face"):
        path = conf / "data" / f"{data}.yaml"
        node = OmegaConf.merge(OmegaConf.load(path), {"checksums": checksums[data]}, sizes[data])
        OmegaConf.save(node, path)
    args = [
        f"--config-path={conf}",
        f"paths.data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.download=false",
        "trainer=cpu",
        "callbacks.progress_bar.refresh_rate=0",
        "trainer.enable_model_summary=false",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        *QUICK,
        "model.latent_dim=2,5,10,20",
        "data=mnist,frey_face",
        "-m",
    ]
    result = run_cli("vae_lightning.train", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _run_folders(tmp_path / "outputs")
    assert len(runs) == 8
    defaults = {"mnist": ("bernoulli", [500]), "frey_face": ("gaussian", [200])}
    seen = set()
    for run in runs:
        saved = yaml.safe_load((run / "config.yaml").read_text())
        data = json.loads((run / "summary.json").read_text())["data"]
        assert (saved["model"]["likelihood"], saved["model"]["hidden_dims"]) == defaults[data]
        seen.add((data, saved["model"]["latent_dim"]))
    assert seen == {(d, k) for d in defaults for k in (2, 5, 10, 20)}


@pytest.mark.slow
def test_parallel_launcher_reports_a_nan_job_and_finishes_the_other(tiny_data, tmp_path):
    args = [
        *tiny_overrides(tiny_data, tmp_path),
        *QUICK,
        "hydra/launcher=parallel",
        "+callbacks.poison._target_=fault_injection.PoisonAtStep",
        "+callbacks.poison.step=1000,2",  # job 0 never, job 1 at step 2
        "-m",
    ]
    result = run_cli("vae_lightning.train", args, tmp_path, **_with_tests_on_path())
    assert result.returncode != 0  # the sweep reports its failed job
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    status = {
        p.name: json.loads((p / "summary.json").read_text())["status"] for p in _run_folders(sweep)
    }
    assert status == {"0": "completed", "1": "failed"}  # the other job finished
    log = (sweep / "1" / "train.log").read_text()
    assert "Job 1" in log and "failed" in log and "at step 2" in log
    assert "loss is nan at step 2" in result.stdout + result.stderr


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_job(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), *QUICK, "hydra/launcher=slurm_local"]
    result = run_cli("vae_lightning.train", [*args, "model.latent_dim=2,3", "-m"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _run_folders(tmp_path / "outputs" / "train" / "multiruns")
    assert [r.name for r in runs] == ["0", "1"]
    assert all((r / "checkpoints" / "last.ckpt").is_file() for r in runs)
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert (sweep / ".submitit").is_dir()


@pytest.mark.slow
def test_optuna_search_maximises_the_validation_elbo(tiny_data, tmp_path):
    args = [a for a in tiny_overrides(tiny_data, tmp_path) if not a.startswith("model.latent")]
    args += [*QUICK, "hparams_search=optuna"]
    result = run_cli("vae_lightning.train", [*args, "hydra.sweeper.n_trials=2", "-m"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    runs = _run_folders(sweep)
    assert len(runs) == 2
    elbos = [json.loads((r / "summary.json").read_text())["metrics"]["val/elbo"] for r in runs]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(elbos))
    assert set(best["best_params"]) == {"model.latent_dim", "model.optimizer.lr"}


def test_killed_run_resumes_to_the_same_final_metrics(tiny_data, compose_train, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=3", "test=false"]
    run = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=fault_injection.KillAtStep", "+callbacks.kill.step=7"]
    killed = run_cli(
        "vae_lightning.train",
        [*args, *kill, f"hydra.run.dir={run}"],
        tmp_path,
        **_with_tests_on_path(),
    )
    assert killed.returncode == -signal.SIGKILL  # killed mid-epoch 1 (5 steps per epoch)
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert not list(run.glob("**/*.tmp"))
    resumed = run_cli(
        "vae_lightning.train", [*args, f"hydra.run.dir={run}", "auto_resume=true"], tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 15 and summary["epochs"] == 3

    uninterrupted = train(compose_train(args))
    for key, value in summary["metrics"].items():
        if key != "train/samples_per_sec":
            assert value == pytest.approx(uninterrupted[key], rel=1e-6, abs=1e-6), key


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tiny_data, compose_train, tmp_path
):
    cfg = compose_train(
        [
            *tiny_overrides(tiny_data, tmp_path),
            "trainer.max_epochs=3",
            "+callbacks.poison._target_=fault_injection.PoisonAtStep",
            "+callbacks.poison.step=7",
        ]
    )
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 7 "):
        train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    assert len(list(checkpoints.glob("best-*.ckpt"))) == 1


def test_atomic_checkpoint_io_never_leaves_a_partial_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dies_mid_write(obj, file, *args, **kwargs):
        file.write(b"partial checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
