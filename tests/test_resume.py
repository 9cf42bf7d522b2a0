"""What a run folder holds and which checkpoint a run resumes from, tested in this process
(so that a mutation run sees them): the refusal to train into a used folder, the folder's
lock and state, the choice and checks of the checkpoint to resume, and atomic files.
The kills and resumes through the CLI are in test_run_records.py."""

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_overrides
from omegaconf import OmegaConf

from vae_lightning.atomic_files import atomic_write
from vae_lightning.errors import ConfigError
from vae_lightning.evaluation.checkpoint import CheckpointError
from vae_lightning.training import checkpointing
from vae_lightning.training.checkpointing import (
    ModelCheckpoint,
    check_resume_checkpoint,
    copy_atomically,
    resume_checkpoint,
    resume_point,
)
from vae_lightning.training.run_folder import RunFolder, refuse_to_overwrite

MODEL = {"latent_dim": 2, "hidden_dims": [32], "activation": "tanh", "likelihood": "bernoulli"}


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _touch(path: Path, text: str = "x", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# What makes a folder hold a run: Hydra's own files do not, an empty checkpoints/ does not.
@pytest.mark.parametrize(
    ("files", "holds"),
    [
        ([], False),
        ([".hydra/config.yaml", "train.log", ".run.lock"], False),
        (["checkpoints/"], False),
        (["metrics.csv"], True),
        (["summary.json"], True),
        (["checkpoints/last.ckpt"], True),
    ],
)
def test_a_folder_holds_a_run_once_training_wrote_metrics_a_summary_or_a_checkpoint(
    tmp_path, files, holds
):
    for name in files:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            _touch(tmp_path / name)
    assert RunFolder(tmp_path).holds_run() is holds
    if holds:
        before = _listing(tmp_path)
        with pytest.raises(ConfigError) as err:
            refuse_to_overwrite(RunFolder(tmp_path))
        assert str(err.value) == (
            f"The run folder {tmp_path} already holds a training run, which is left as it is. "
            "Continue it with auto_resume=true, choose another folder (hydra.run.dir=...), or "
            "leave hydra.run.dir unset and pass "
            f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'} to continue it in a new one."
        )
        assert _listing(tmp_path) == before
    else:
        refuse_to_overwrite(RunFolder(tmp_path))


def test_a_missing_folder_holds_no_run_and_is_new(tmp_path):
    run = RunFolder(tmp_path / "missing")
    assert not run.holds_run() and run.state() == "new" and not run.remove_if_empty()


def test_one_process_at_a_time_claims_a_folder_and_the_lock_names_it(tmp_path):
    first, second = RunFolder(tmp_path / "run"), RunFolder(tmp_path / "run")
    first.claim()
    lock = (tmp_path / "run" / ".run.lock").read_text()
    assert lock == f"{os.getpid()} {os.uname().nodename}\n"
    with pytest.raises(ConfigError, match=r"Another process is training into .*run right now"):
        second.claim()
    assert second.state() == "new"  # nothing written yet, whoever holds it
    first.update_summary(status="running")
    assert first.state() == "running" and second.state() == "running"
    assert not second.remove_if_empty()
    first.release()
    first.release()  # a second release is harmless
    assert second.state() == "interrupted"  # "running", and no process holds it: killed
    second.claim()
    assert second.state() == "running"
    second.release()


@pytest.mark.parametrize(
    ("summary", "state"),
    [({"status": "completed"}, "completed"), ({"status": "failed"}, "failed"), ({}, "interrupted")],
)
def test_the_state_of_a_folder_is_its_summarys_status(tmp_path, summary, state):
    run = RunFolder(tmp_path)
    _touch(tmp_path / "metrics.csv")
    if summary:
        run.write_summary(summary)
    assert run.state() == state


def test_summaries_are_merged_replaced_whole_and_unreadable_ones_read_as_empty(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_summary() == {}
    run.write_summary({"status": "running", "seed": 1})
    assert run.update_summary(status="completed", wandb_run_id="abc") == {
        "status": "completed",
        "seed": 1,
        "wandb_run_id": "abc",
    }
    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text) == run.read_summary() and text.endswith("}\n")
    assert text == json.dumps(run.read_summary(), indent=2) + "\n"
    _touch(tmp_path / "summary.json", "{not json")
    assert run.read_summary() == {}
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]  # no temporary file left


def test_only_a_folder_holding_nothing_but_hydras_files_is_removed(tmp_path):
    for name in (".hydra/config.yaml", "train.log"):
        _touch(tmp_path / "a" / name)
    _touch(tmp_path / "b" / "train.log")
    _touch(tmp_path / "b" / "notes.txt")
    assert RunFolder(tmp_path / "a").remove_if_empty() and not (tmp_path / "a").exists()
    assert (
        not RunFolder(tmp_path / "b").remove_if_empty() and (tmp_path / "b" / "notes.txt").exists()
    )
    claimed = RunFolder(tmp_path / "c")
    claimed.claim()
    assert claimed.remove_if_empty() and not (tmp_path / "c").exists()  # its own claim


def test_resume_takes_the_newest_of_last_ckpt_and_the_highest_hpc_checkpoint(tmp_path):
    assert resume_checkpoint(tmp_path) is None
    last = _touch(tmp_path / "checkpoints" / "last.ckpt", mtime=1000)
    assert resume_checkpoint(tmp_path) == last
    _touch(tmp_path / "hpc_ckpt_10.ckpt", mtime=900)
    _touch(tmp_path / "hpc_ckpt_9.ckpt", mtime=2000)  # the requeue counter, not the time, ranks
    for stray in ("hpc_ckpt_11.ckpt.tmp", "hpc_ckpt_x.ckpt", "old_hpc_ckpt_12.ckpt"):
        _touch(tmp_path / stray, mtime=3000)
    assert resume_checkpoint(tmp_path) == last  # hpc_ckpt_10 is older than last.ckpt
    os.utime(tmp_path / "hpc_ckpt_10.ckpt", (1100, 1100))
    assert resume_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_10.ckpt"
    last.unlink()
    assert resume_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_10.ckpt"


def _checkpoint(path: Path, step: int = 7, **hparams) -> Path:
    torch.save(
        {"state_dict": {"w": torch.ones(1)}, "global_step": step, "hyper_parameters": hparams},
        path,
    )
    return path


def test_a_checkpoint_of_the_same_model_resumes_at_its_step(tmp_path):
    path = _checkpoint(tmp_path / "a.ckpt", 7, **MODEL, num_samples=3)
    # Settings other than the architecture's may change; hidden_dims compares as a list.
    config = OmegaConf.create({**MODEL, "num_samples": 1})
    assert check_resume_checkpoint(path, config) == 7


@pytest.mark.parametrize("key", checkpointing.ARCHITECTURE_KEYS)
def test_a_checkpoint_of_another_architecture_is_refused_naming_the_key(tmp_path, key):
    path = _checkpoint(tmp_path / "a.ckpt", **MODEL)
    changed = {"latent_dim": 5, "hidden_dims": [32, 32], "activation": "relu", "likelihood": "x"}
    config = OmegaConf.create({**MODEL, key: changed[key]})
    with pytest.raises(CheckpointError) as err:
        check_resume_checkpoint(path, config)
    saved, configured = MODEL[key], changed[key]
    assert str(err.value) == (
        f"{path} was trained with model.{key}={saved!r}, but this run's config has "
        f"model.{key}={configured!r}. Resume with the settings of the run it comes from "
        f"(model.{key}={saved!r}), or start a new run without ckpt_path."
    )


@pytest.mark.parametrize(
    "content",
    [
        {"state_dict": {}, "global_step": 1},  # no settings
        {"state_dict": {}, "global_step": 1, "hyper_parameters": [1]},
        {"global_step": 1, "hyper_parameters": MODEL},  # no weights
        {"state_dict": {}, "hyper_parameters": MODEL},  # no step
    ],
)
def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError) as err:
        check_resume_checkpoint(tmp_path / "a.ckpt", OmegaConf.create(MODEL))
    assert str(err.value) == (
        f"{tmp_path / 'a.ckpt'} is not a training checkpoint of this project (it lacks the "
        "weights, the step or the model's settings). Resume from a .ckpt file written by "
        "`python -m vae_lightning.train`, e.g. <run>/checkpoints/last.ckpt."
    )


def test_a_corrupt_checkpoint_is_refused_naming_it(tmp_path):
    _touch(tmp_path / "a.ckpt", "not a checkpoint")
    with pytest.raises(CheckpointError, match=r"a\.ckpt is not a checkpoint of this project"):
        check_resume_checkpoint(tmp_path / "a.ckpt", OmegaConf.create(MODEL))


def _resume_config(ckpt_path=None, auto_resume=False):
    return OmegaConf.create({"ckpt_path": ckpt_path, "auto_resume": auto_resume, "model": MODEL})


def test_resume_point_is_nothing_without_ckpt_path_or_auto_resume(tmp_path):
    run = RunFolder(tmp_path / "run")
    _checkpoint(_touch(run.path / "checkpoints" / "last.ckpt"), **MODEL)
    assert resume_point(_resume_config(), run) == (None, {})
    assert resume_point(_resume_config(auto_resume=True), RunFolder(tmp_path / "new")) == (None, {})


def test_auto_resume_continues_the_folders_own_newest_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "run")
    last = _checkpoint(_touch(run.path / "checkpoints" / "last.ckpt"), 12, **MODEL)
    run.write_summary({"status": "running", "wandb_run_id": "abc123"})
    assert resume_point(_resume_config(auto_resume=True), run) == (
        last,
        {"checkpoint": str(last), "step": 12, "run_dir": str(run.path), "wandb_run_id": "abc123"},
    )


def test_ckpt_path_resumes_another_runs_checkpoint_and_names_that_run(tmp_path):
    old = tmp_path / "old"
    last = _checkpoint(_touch(old / "checkpoints" / "last.ckpt"), 5, **MODEL)
    here = RunFolder(tmp_path / "new")
    here.write_summary({"wandb_run_id": "mine"})
    path, record = resume_point(_resume_config(ckpt_path=str(last), auto_resume=True), here)
    assert path == last
    assert record == {"checkpoint": str(last), "step": 5, "run_dir": str(old), "wandb_run_id": None}
    other = _resume_config(ckpt_path=str(last))
    other.model.latent_dim = 3
    with pytest.raises(CheckpointError, match=r"model\.latent_dim=2\)"):
        resume_point(other, here)


def test_an_atomic_write_replaces_the_file_whole_or_leaves_it(tmp_path):
    target = _touch(tmp_path / "sub" / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(target.parent) == ["a.txt"]
    with atomic_write(target) as file:
        file.write("new")
    assert target.read_text() == "new" and os.listdir(target.parent) == ["a.txt"]
    with atomic_write(tmp_path / "made" / "b.bin", "wb") as file:  # the folder is made
        file.write(b"\x00\x01")
    assert (tmp_path / "made" / "b.bin").read_bytes() == b"\x00\x01"


def test_checkpoint_bytes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """A crash of the machine (not only the process) after the rename must not leave an empty
    file: the temporary file is fsynced, then renamed over the old checkpoint."""
    from vae_lightning import atomic_files

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        atomic_files.os, "fsync", lambda fd: events.append(("fsync", fd)) or real_fsync(fd)
    )
    monkeypatch.setattr(
        atomic_files.os,
        "replace",
        lambda a, b: events.append(("replace", Path(b).name)) or real_replace(a, b),
    )
    checkpointing.AtomicCheckpointIO().save_checkpoint({"w": torch.ones(2)}, tmp_path / "a.ckpt")
    assert [e[0] for e in events] == ["fsync", "replace"] and events[1][1] == "a.ckpt"
    assert torch.equal(torch.load(tmp_path / "a.ckpt", weights_only=True)["w"], torch.ones(2))
    with pytest.raises(TypeError) as err:
        checkpointing.AtomicCheckpointIO().save_checkpoint({}, tmp_path / "b.ckpt", {"x": 1})
    assert str(err.value) == (
        "AtomicCheckpointIO does not take storage_options; got {'x': 1}. Use a CheckpointIO "
        "plugin that supports them."
    )
    assert not (tmp_path / "b.ckpt").exists()


def test_a_copy_is_made_through_a_temporary_file_and_an_existing_target_is_kept(tmp_path):
    source = _touch(tmp_path / "a.ckpt", "weights")
    assert copy_atomically(source, tmp_path / "out" / "a.ckpt") == tmp_path / "out" / "a.ckpt"
    assert (tmp_path / "out" / "a.ckpt").read_text() == "weights"
    _touch(tmp_path / "b.ckpt", "other")
    copy_atomically(tmp_path / "b.ckpt", tmp_path / "out" / "a.ckpt")
    assert (tmp_path / "out" / "a.ckpt").read_text() == "weights"


def test_the_first_batch_after_a_resume_counts_logged_steps_from_the_optimiser_step():
    callback = ModelCheckpoint()
    epoch_loop = SimpleNamespace(_batches_that_stepped=8)
    trainer = SimpleNamespace(global_step=7, fit_loop=SimpleNamespace(epoch_loop=epoch_loop))
    callback.on_train_batch_start(trainer, None, None, 0)
    assert epoch_loop._batches_that_stepped == 8  # not resumed: Lightning's count stands
    callback.on_load_checkpoint(trainer, None, {})
    callback.on_train_batch_start(trainer, None, None, 0)
    assert epoch_loop._batches_that_stepped == 7
    epoch_loop._batches_that_stepped = 9
    callback.on_train_batch_start(trainer, None, None, 1)  # only the first batch
    assert epoch_loop._batches_that_stepped == 9


def test_no_interval_checkpoint_is_saved_after_an_epochs_last_batch(monkeypatch):
    batches = []
    monkeypatch.setattr(
        checkpointing.LightningModelCheckpoint,
        "on_train_batch_end",
        lambda self, trainer, module, outputs, batch, batch_idx: batches.append(batch_idx),
    )
    trainer = SimpleNamespace(num_training_batches=3)
    for batch_idx in range(3):
        ModelCheckpoint().on_train_batch_end(trainer, None, None, None, batch_idx)
    assert batches == [0, 1]


# lr 0: the validation ELBO never improves after the first epoch, so Lightning alone would
# write last.ckpt only with the first epoch's best and at the interval checkpoints' steps
# (every 2nd), never at the odd steps that end epochs of 5 steps.
STILL = [
    "test=false",
    "model.optimizer.lr=0",
    "trainer.max_epochs=3",
    "callbacks.interval_checkpoint.every_n_train_steps=2",
    "callbacks.interval_checkpoint.train_time_interval=null",
]


def test_last_checkpoint_is_written_at_every_epoch_end_and_a_new_folder_keeps_the_best(
    tiny_data, compose_train, tmp_path
):
    from vae_lightning.train import train

    first = tmp_path / "first"
    train(compose_train([*tiny_overrides(tiny_data, tmp_path), *STILL], run_dir=first))
    checkpoints = first / "checkpoints"
    assert [p.name for p in checkpoints.glob("best-*.ckpt")] == ["best-epoch000.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 15

    # Resumed into a new folder, the best checkpoint of the old one is copied and ranked against.
    second = tmp_path / "second"
    resume = [f"ckpt_path={checkpoints / 'last.ckpt'}", "trainer.max_epochs=4"]
    overrides = [*tiny_overrides(tiny_data, tmp_path), *STILL, *resume]
    train(compose_train(overrides, run_dir=second))
    copied = second / "checkpoints" / "best-epoch000.ckpt"
    assert copied.read_bytes() == (checkpoints / "best-epoch000.ckpt").read_bytes()
    assert sorted(p.name for p in (second / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]
    summary = json.loads((second / "summary.json").read_text())
    assert summary["best_checkpoint"] == str(copied)
    assert summary["resumed_from"][0]["run_dir"] == str(first)
    assert summary["resumed_from"][0]["step"] == 15
    last = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 20
    state = next(v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert state["dirpath"] == str(second / "checkpoints")
    assert state["best_model_path"] == str(copied)


def _state(dirpath: Path, best: str | None = "best-epoch001.ckpt", **changes) -> dict:
    """A ModelCheckpoint state saved in `dirpath`, ranking `best` (if any)."""
    path = str(dirpath / best) if best else ""
    ranked = {path: torch.tensor(-90.0)} if best else {}
    return {
        "monitor": "val/elbo", "best_model_score": torch.tensor(-90.0), "best_model_path": path,
        "current_score": torch.tensor(-95.0), "dirpath": str(dirpath), "best_k_models": ranked,
        "kth_best_model_path": path, "kth_value": torch.tensor(-90.0),
        "last_model_path": str(dirpath / "last.ckpt"), **changes,
    }  # fmt: skip


def test_a_state_saved_in_the_same_folder_is_restored_as_lightning_restores_it(tmp_path):
    _touch(tmp_path / "best-epoch001.ckpt")
    callback = ModelCheckpoint(dirpath=tmp_path, monitor="val/elbo", mode="max")
    callback.load_state_dict(_state(tmp_path))
    assert callback.last_model_path == str(tmp_path / "last.ckpt")  # nothing rewritten
    assert callback.best_k_models == {str(tmp_path / "best-epoch001.ckpt"): torch.tensor(-90.0)}
    without_folder = {k: v for k, v in _state(tmp_path).items() if k != "dirpath"}
    ModelCheckpoint(dirpath=tmp_path).load_state_dict(without_folder)  # an older state


def test_a_state_from_a_moved_folder_ranks_the_copy_found_in_the_new_one(tmp_path):
    """The old folder is gone (moved or copied elsewhere): its best file, found under the
    same name in the new folder, is ranked; nothing is copied."""
    new = tmp_path / "new"
    _touch(new / "best-epoch001.ckpt", "weights")
    callback = ModelCheckpoint(dirpath=new, monitor="val/elbo", mode="max")
    callback.load_state_dict(_state(tmp_path / "gone"))
    found = str(new / "best-epoch001.ckpt")
    assert callback.best_model_path == callback.kth_best_model_path == found
    assert callback.best_k_models == {found: torch.tensor(-90.0)}
    assert callback.last_model_path == "" and (new / "best-epoch001.ckpt").read_text() == "weights"


def test_a_state_whose_best_file_is_lost_ranks_nothing(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "new", monitor="val/elbo", mode="max")
    callback.load_state_dict(_state(tmp_path / "old"))
    assert callback.best_model_path == callback.kth_best_model_path == ""
    assert callback.best_k_models == {}
    state = {k: v for k, v in _state(tmp_path / "old", best=None).items() if k != "best_k_models"}
    callback.load_state_dict(state)  # a state that ranked nothing
    assert callback.best_model_path == "" and callback.best_k_models == {}


def test_a_folder_holding_only_hydras_files_but_claimed_by_another_process_is_kept(tmp_path):
    holder = RunFolder(tmp_path / "run")
    holder.claim()
    _touch(tmp_path / "run" / "train.log")
    assert RunFolder(tmp_path / "run").remove_if_empty() is False
    assert (tmp_path / "run" / "train.log").exists()
    holder.release()


def test_a_claim_makes_the_folder_and_a_lock_file_readable_by_all(tmp_path):
    run = RunFolder(tmp_path / "runs" / "sweep" / "0")  # parents made too
    run.claim()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((run.path / ".run.lock").stat().st_mode) == 0o644 & ~umask
    with pytest.raises(ConfigError) as err:
        RunFolder(run.path).claim()
    assert str(err.value) == (
        f"Another process is training into {run.path} right now; this one stops without "
        "writing there. Give this run its own folder (leave hydra.run.dir unset, or set "
        "another one)."
    )
    run.release()
