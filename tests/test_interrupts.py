"""Ctrl-C and SIGTERM keep the work: the step under way is finished and checkpointed, the run
is marked interrupted and the printed command resumes it to the record of a run never stopped
(a file of its own, so that the test workers share the run-record tests evenly)."""

import json
import shlex

import pytest
import torch
from conftest import run_cli
from test_run_records import _assert_same_record, _env, _fault, _train, uninterrupted

__all__ = ["uninterrupted"]  # the module's fixture: the run that was never stopped


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_checkpoints_its_step_and_says_how_to_resume(
    name, code, uninterrupted, tiny_data, tmp_path
):
    """Ctrl-C (or SIGTERM) during step 7 of 15: that step is finished and checkpointed, the
    run is marked interrupted, the exit status is 128 + the signal, and the printed command
    resumes it to the record of the run that was never stopped."""
    run = tmp_path / "run"
    stop = [*_fault("SignalAtStep", 7), f"+callbacks.kill.signal={name}"]
    result = _train(tiny_data, tmp_path, run, *stop)
    assert result.returncode == code, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["interrupted"] == {"signal": name, "step": 8}
    last = run / "checkpoints" / "last.ckpt"
    assert summary["last_checkpoint"] == str(last)
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 8
    first_process_seconds = saved["callbacks"]["EpochTable"]["elapsed_s"]
    assert first_process_seconds > 0
    output = result.stdout + result.stderr
    [line] = [x for x in output.splitlines() if "Resume with: " in x]
    assert f"Interrupted by {name} at step 8; checkpoint {last}." in line
    command = shlex.split(line.split("Resume with: ", 1)[1])  # as a shell reads it
    assert command[:3] == ["python", "-m", "vae_lightning.train"]
    assert command[-2:] == [f"hydra.run.dir={run}", "auto_resume=true"]
    without_fault = [a for a in command[3:] if not a.startswith("+callbacks.kill")]
    resumed = run_cli("vae_lightning.train", without_fault, tmp_path, **_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)
    summary = json.loads((run / "summary.json").read_text())
    first_seconds = summary["wall_time_s"] - summary["process_wall_time_s"]
    # Both processes counted: the first one's training time, as its checkpoint holds it.
    assert first_seconds == pytest.approx(first_process_seconds, abs=0.02)
    assert "interrupted" not in summary and summary["resumed_from"][0]["step"] == 8


def test_an_interrupt_in_an_epochs_last_validation_resumes_with_the_next_epoch(
    uninterrupted, tiny_data, tmp_path
):
    """SIGTERM as the validation at the end of epoch 0 (step 5) starts, which Lightning would
    stop after the first of its 5 batches: the validation is finished, the checkpoint is of
    step 5, and the resumed run is the run never stopped, every epoch and every validation
    once, numbered and valued as there."""
    run, step = tmp_path / "run", 5
    fault = _fault("SignalInValidationAtStep", step, signal="SIGTERM")
    result = _train(tiny_data, tmp_path, run, *fault)
    assert result.returncode == 143, result.stderr[-3000:]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == step
    resumed = _train(tiny_data, tmp_path, run, "auto_resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_record(run, uninterrupted)
