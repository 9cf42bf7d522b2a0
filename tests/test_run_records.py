"""Run records nothing can lose: kills at random steps, resumes, refusals before writing."""

import csv
import json
import os
import random
import shutil
import signal
from pathlib import Path

import pytest
import torch
from conftest import run_cli, run_forked, tiny_overrides

from vae_lightning.tracking.wandb_offline import logged_values
from vae_lightning.training.run_folder import RunFolder

TESTS = Path(__file__).resolve().parent
# 3 epochs of 5 steps; a checkpoint every 2 steps as well as at each epoch's end; validation
# in 5 batches, so that a stop can come in the middle of one.
ARGS = [
    "trainer.max_epochs=3",
    "data.eval_batch_size=10",
    "test=false",
    "callbacks.interval_checkpoint.every_n_train_steps=2",
    "callbacks.interval_checkpoint.train_time_interval=null",
]
# Seeded kill points (global steps), mid-epoch and at epoch boundaries alike.
KILL_STEPS = sorted(random.Random(11).sample(range(1, 15), 3))
THROUGHPUT = "train/samples_per_sec"  # timing, the one value a resume may change


def _env() -> dict[str, str]:
    """The CLI's environment, with the fault-injection callbacks importable."""
    return {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _train(tiny_data, tmp_path: Path, run: Path, *extra: str):
    args = [*tiny_overrides(tiny_data, tmp_path), *ARGS, f"hydra.run.dir={run}", *extra]
    return run_cli("vae_lightning.train", args, tmp_path, **_env())


def _logged(run: Path) -> dict[tuple[int, str], float]:
    """{(step, metric): value} of metrics.csv, asserting that no pair is logged twice."""
    values: dict[tuple[int, str], float] = {}
    with open(run / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if key in ("step", "epoch", THROUGHPUT) or value == "":
                    continue
                pair = (int(row["step"]), key)
                assert pair not in values, f"{pair} logged twice in {run / 'metrics.csv'}"
                values[pair] = float(value)
    return values


def _wandb_logged(run: Path) -> dict[tuple[int, str], float]:
    """{(step, metric): value} of the run's W&B record (its one offline run outside
    wandb/superseded/, read back offline), asserting that no pair is there twice."""
    [folder] = sorted((run / "wandb").glob("offline-run-*"))
    values, repeats = logged_values(folder)
    assert repeats == 0, f"{repeats} pairs logged twice in {folder}"
    return {pair: value for pair, value in values.items() if pair[1] != THROUGHPUT}


def _assert_wandb_holds_metrics_csv(run: Path) -> None:
    """The W&B record holds every (step, metric) of metrics.csv, once, with its value."""
    in_wandb, in_csv = _wandb_logged(run), _logged(run)
    assert sorted(set(in_csv) - set(in_wandb)) == [], "missing from W&B"
    assert sorted(set(in_wandb) - set(in_csv)) == [], "in W&B only"
    for pair, value in in_csv.items():
        assert in_wandb[pair] == pytest.approx(value, rel=1e-6, abs=1e-9), pair


def _fault(callback: str, step: int, **args: int | str) -> list[str]:
    """Overrides adding the fault-injection callback `callback` (fault_injection.py) at `step`."""
    extra = [f"+callbacks.kill.{key}={value}" for key, value in args.items()]
    return [
        f"+callbacks.kill._target_=fault_injection.{callback}",
        f"+callbacks.kill.step={step}",
        *extra,
    ]


def _wandb_run_ids(run: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    result = _train(tiny_data, tmp_path, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "run"


def _assert_same_record(resumed: Path, reference: Path) -> None:
    """Every logged step once, and every value as in the run that was never stopped."""
    got, expected = _logged(resumed), _logged(reference)
    assert got.keys() == expected.keys()
    for pair, value in expected.items():
        assert got[pair] == pytest.approx(value, rel=1e-6, abs=1e-9), pair
    summary = json.loads((resumed / "summary.json").read_text())
    reference_metrics = json.loads((reference / "summary.json").read_text())["metrics"]
    assert summary["status"] == "completed"
    for key, value in reference_metrics.items():
        if key != THROUGHPUT:
            assert summary["metrics"][key] == pytest.approx(value, rel=1e-6), key
    assert len(_wandb_run_ids(resumed)) == 1  # one W&B run, resumed
    _assert_wandb_holds_metrics_csv(reference)
    _assert_wandb_holds_metrics_csv(resumed)


@pytest.mark.parametrize("step", KILL_STEPS)
def test_run_killed_at_a_random_step_resumes_to_the_uninterrupted_record(
    step, uninterrupted, tiny_data, tmp_path
):
    run = tmp_path / "run"
    kill = _fault("KillAtStep", step)
    assert _train(tiny_data, tmp_path, run, *kill).returncode == -signal.SIGKILL
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    assert RunFolder(run).state() == "interrupted"

    resumed = _train(tiny_data, tmp_path, run, "auto_resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)
    summary = json.loads((run / "summary.json").read_text())
    assert [r["step"] for r in summary["resumed_from"]] == [step - step % 2]


def test_run_killed_between_an_epochs_last_batch_and_its_end_resumes_to_the_same_record(
    uninterrupted, tiny_data, tmp_path
):
    """Step 10 ends epoch 1 and is due an interval checkpoint: it waits for the epoch's end,
    since Lightning resumes one saved after the last batch as a finished epoch (no validation,
    no epoch-end row). Killed in that validation, the run resumes from step 8."""
    run = tmp_path / "run"
    kill = _fault("SignalInValidationAtStep", 10)
    assert _train(tiny_data, tmp_path, run, *kill).returncode == -signal.SIGKILL
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 8
    first_process_seconds = saved["callbacks"]["EpochTable"]["elapsed_s"]
    assert first_process_seconds > 0

    resumed = _train(tiny_data, tmp_path, run, "auto_resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)


def test_run_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(
    uninterrupted, tiny_data, tmp_path
):
    run = tmp_path / "run"
    kill = _fault("KillDuringCheckpointWrite", 7)
    assert _train(tiny_data, tmp_path, run, *kill).returncode == -signal.SIGKILL
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 6  # the previous one, whole
    assert list((run / "checkpoints").glob(".*.tmp"))  # the write that was cut short

    resumed = _train(tiny_data, tmp_path, run, "auto_resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)
    with open(run / "metrics_superseded.csv", newline="") as file:
        superseded = list(csv.DictReader(file))
    assert superseded and {r["superseded_at_step"] for r in superseded} == {"6"}


def test_run_killed_twice_before_and_after_its_first_checkpoint_keeps_one_record(
    uninterrupted, tiny_data, tmp_path
):
    run = tmp_path / "run"
    for step in (1, 9):  # before any checkpoint (a fresh start), then mid-epoch 1
        kill = _fault("KillAtStep", step)
        extra = ["auto_resume=true"] if step == 9 else []
        assert _train(tiny_data, tmp_path, run, *kill, *extra).returncode == -signal.SIGKILL
    resumed = _train(tiny_data, tmp_path, run, "auto_resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)


def test_failed_auto_resume_from_a_corrupt_checkpoint_changes_no_record(uninterrupted, tmp_path):
    run = tmp_path / "run"
    # A copy of a finished run whose last.ckpt was cut short (written by another tool).
    shutil.copytree(uninterrupted, run)
    (run / "summary.json").write_text(json.dumps({"status": "running"}))
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}

    result = run_cli(
        "vae_lightning.train",
        [*_overrides_of(run), f"hydra.run.dir={run}", "auto_resume=true"],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert str(last) in result.stdout + result.stderr
    for path, content in before.items():
        if path.name == "train.log":
            assert path.read_bytes().startswith(content)  # only appended to
        else:
            assert path.read_bytes() == content, path


def _overrides_of(run: Path) -> list[str]:
    """The command-line overrides a run folder was made with (Hydra's record)."""
    import yaml

    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    return [o for o in overrides if not o.startswith("hydra.run.dir=")]


def test_resume_into_a_new_folder_keeps_the_best_checkpoint_and_says_where_it_came_from(
    uninterrupted, tiny_data, tmp_path
):
    first = tmp_path / "first"
    stop = _fault("KillAtStep", 11)
    assert _train(tiny_data, tmp_path, first, *stop).returncode == -signal.SIGKILL
    old_best = next((first / "checkpoints").glob("best-*.ckpt"))

    second = tmp_path / "second"
    last = first / "checkpoints" / "last.ckpt"
    result = _train(tiny_data, tmp_path, second, f"ckpt_path={last}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dirpath has changed" not in result.stdout + result.stderr
    summary = json.loads((second / "summary.json").read_text())
    assert summary["resumed_from"][0]["run_dir"] == str(first)
    assert summary["resumed_from"][0]["step"] == 10
    # The best of all epochs, before and after the resume, is in the new folder.
    reference = json.loads((uninterrupted / "summary.json").read_text())
    assert Path(summary["best_checkpoint"]).name == Path(reference["best_checkpoint"]).name
    assert Path(summary["best_checkpoint"]).parent == second / "checkpoints"
    assert old_best.is_file()  # the old folder keeps its own
    assert _wandb_run_ids(second) == _wandb_run_ids(first)  # one W&B run across both


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir()) if root.is_dir() else []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["trainer=gpu"], "trainer=cpu"),
        (["model.latent_dim=0"], "model.latent_dim"),
        (["ckpt_path=CORRUPT"], "CORRUPT"),
        (["ckpt_path=OTHER_MODEL"], "model.latent_dim"),
        (["paths.data_dir=EMPTY"], "EMPTY"),
    ],
)
def test_bad_input_is_refused_before_any_run_folder_or_wandb_run_is_made(
    extra, named, uninterrupted, tiny_data, tmp_path
):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes((uninterrupted / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    other = uninterrupted / "checkpoints" / "last.ckpt"  # trained with latent_dim=2
    (tmp_path / "empty").mkdir()
    paths = {"CORRUPT": str(corrupt), "EMPTY": str(tmp_path / "empty")}
    extra = [e.replace("CORRUPT", paths["CORRUPT"]).replace("EMPTY", paths["EMPTY"]) for e in extra]
    if extra == ["ckpt_path=OTHER_MODEL"]:
        extra = [f"ckpt_path={other}", "model.latent_dim=3"]
    named = paths.get(named, named)
    outputs = tmp_path / "outputs"
    args = [*tiny_overrides(tiny_data, tmp_path), *ARGS, f"paths.log_dir={outputs}", *extra]
    result = run_forked("vae_lightning.train", args, tmp_path)  # the CLI, without its start-up
    assert result.returncode == 2, result.stderr[-3000:]
    assert named in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(outputs.rglob("*.*")), list(outputs.rglob("*"))  # no folder, no W&B run


def test_a_folder_another_process_trains_into_is_refused_untouched(tiny_data, tmp_path):
    run = tmp_path / "run"
    holder = RunFolder(run)
    holder.claim()  # another training process, alive
    (run / "metrics.csv").write_text("epoch,step\n")
    try:
        result = _train(tiny_data, tmp_path, run, "auto_resume=true")
    finally:
        holder.release()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Another process is training into" in result.stdout + result.stderr
    assert (run / "metrics.csv").read_text() == "epoch,step\n"
    assert not (run / "summary.json").exists() and not (run / "wandb").exists()


def test_sigusr1_saves_an_hpc_checkpoint_and_the_requeued_job_resumes(
    uninterrupted, tiny_data, tmp_path
):
    """SLURM's pre-emption signal, then the requeued job (same command, auto_resume=true)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    # SLURM's requeue command: records its call, then ends the job as SLURM would.
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "requeued"}\nkill -9 $PPID\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "vae",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    run = tmp_path / "run"
    signal_at = [
        "+callbacks.preempt._target_=fault_injection.SignalAtStep",
        "+callbacks.preempt.step=7",
    ]
    args = [*tiny_overrides(tiny_data, tmp_path), *ARGS, f"hydra.run.dir={run}", "auto_resume=true"]
    first = run_cli("vae_lightning.train", [*args, *signal_at], tmp_path, **_env(), **slurm)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]
    assert list(run.glob("hpc_ckpt_*.ckpt")), first.stderr[-3000:]
    requeued = run_cli("vae_lightning.train", args, tmp_path, **_env(), **slurm)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    _assert_same_record(run, uninterrupted)
    # Resumed from the pre-emption's checkpoint (step 7), not the older last.ckpt (step 6).
    [resume] = json.loads((run / "summary.json").read_text())["resumed_from"]
    assert Path(resume["checkpoint"]).name.startswith("hpc_ckpt_") and resume["step"] == 7


def test_unpacked_copies_are_used_only_from_the_named_folders_verified_files(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    first = run_cli("vae_lightning.train", [*args, f"hydra.run.dir={tmp_path / 'a'}"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    copy = cache / "MNIST" / "raw" / "train-images-idx3-ubyte"
    size = copy.stat().st_size

    # The cache holds unpacked copies, but the folder named on the command line is empty.
    (tmp_path / "empty").mkdir()
    empty = run_cli(
        "vae_lightning.train",
        [*args, f"paths.data_dir={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'b'}"],
        tmp_path,
    )
    assert empty.returncode == 2
    assert str(tmp_path / "empty") in empty.stdout + empty.stderr
    assert not (tmp_path / "b").exists()

    # A truncated unpacked copy is unpacked again from the verified .gz, not read.
    copy.write_bytes(copy.read_bytes()[: size // 2])
    again = run_cli("vae_lightning.train", [*args, f"hydra.run.dir={tmp_path / 'c'}"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert copy.stat().st_size == size


@pytest.mark.slow
def test_a_sweep_killed_during_job_3_resumes_without_retraining_finished_jobs(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *tiny_overrides(tiny_data, tmp_path),
        *ARGS,
        "model.latent_dim=2,3,4,5",
        f"hydra.sweep.dir={sweep}",
    ]
    kill = _fault("KillAtStep", 7, job=2)
    killed = run_cli("vae_lightning.train", [*args, *kill], tmp_path, **_env())
    assert killed.returncode == -signal.SIGKILL
    assert [RunFolder(sweep / str(j)).state() for j in range(4)] == [
        "completed",
        "completed",
        "interrupted",
        "new",
    ]
    finished = {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for j in (0, 1)
        for p in (sweep / str(j)).rglob("*")
        if p.is_file()
    }
    assert any(".hydra" in p.parts for p in finished) and any(
        p.name == "train.log" for p in finished
    )

    # The README's command to resume a sweep: the same one, with auto_resume=true.
    again = run_cli("vae_lightning.train", [*args, "auto_resume=true"], tmp_path, **_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished} == finished
    assert [RunFolder(sweep / str(j)).state() for j in range(4)] == ["completed"] * 4
    resumed = json.loads((sweep / "2" / "summary.json").read_text())["resumed_from"]
    assert [r["step"] for r in resumed] == [6]
    assert "already holds a completed run" in again.stdout + again.stderr


def test_an_epoch_resumed_after_its_last_batch_logs_no_throughput():
    """A checkpoint Lightning saved after an epoch's last batch (SLURM's signal can land there)
    resumes straight into that epoch's end: no batch was timed, so no rate is logged."""
    from types import SimpleNamespace

    from vae_lightning.training.callbacks import EpochTimer

    logged = []
    module = SimpleNamespace(log=lambda *args, **kwargs: logged.append(args))
    timer = EpochTimer()
    timer.on_train_start(SimpleNamespace(), module)
    timer.on_train_epoch_end(SimpleNamespace(world_size=1), module)
    assert logged == [] and timer.samples_per_sec == []
