"""What keeps training fast: per-step work done on the device, no per-step host reads."""

import os
from pathlib import Path
from typing import ClassVar

import lightning as L
import pytest
import torch
import torch._inductor.config as inductor_config
from conftest import tiny_overrides

from vae_lightning.errors import NonFiniteLossError
from vae_lightning.models import VAE
from vae_lightning.train import train
from vae_lightning.training.cuda_check import NVML_CHECK, pytorch_cuda_check


class RecordNvmlCheck(L.Callback):
    """Records the NVML check variable as the training steps see it."""

    seen: ClassVar[list[str | None]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        RecordNvmlCheck.seen.append(os.environ.get(NVML_CHECK))


def test_training_steps_run_with_pytorchs_cuda_check_and_the_variable_comes_back(
    tiny_data, compose_train, tmp_path
):
    assert os.environ.get(NVML_CHECK) == "1"  # set by importing Lightning
    RecordNvmlCheck.seen.clear()
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    cfg = compose_train([*overrides, f"+callbacks.probe._target_={__name__}.RecordNvmlCheck"])
    train(cfg)
    assert RecordNvmlCheck.seen == [None] * 5
    assert os.environ.get(NVML_CHECK) == "1"


def test_forking_strategies_keep_the_nvml_check():
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_fork", logger=False)
    with pytorch_cuda_check(trainer):
        assert os.environ.get(NVML_CHECK) == "1"


@pytest.mark.parametrize(
    ("every_n_steps", "message"),
    [
        (3, "loss is not finite at step 7 .* training stopped at step 8"),  # read at step 8
        (100, "loss is not finite at step 7 .* training stopped at step 10"),  # at epoch end
    ],
)
def test_a_late_read_of_the_nan_check_names_the_first_bad_step_and_writes_no_checkpoint(
    every_n_steps, message, tiny_data, compose_train, tmp_path
):
    """The device-side check of accelerators, run on the CPU: 5 steps per epoch, NaN at 7."""
    cfg = compose_train(
        [
            *tiny_overrides(tiny_data, tmp_path),
            "trainer.max_epochs=3",
            f"callbacks.stop_on_non_finite_loss.every_n_steps={every_n_steps}",
            "+callbacks.poison._target_=fault_injection.PoisonAtStep",
            "+callbacks.poison.step=7",
        ]
    )
    with pytest.raises(NonFiniteLossError, match=message):
        train(cfg)
    last = torch.load(Path(cfg.paths.output_dir, "checkpoints", "last.ckpt"), weights_only=True)
    assert last["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())


def test_compiled_model_trains_like_the_eager_one_and_its_checkpoint_loads_eagerly(
    tiny_data, compose_train, tmp_path, monkeypatch
):
    # Compiled in this process: inductor's pool of compile workers takes longer to start on
    # two cores than this tiny model takes to compile.
    monkeypatch.setattr(inductor_config, "compile_threads", 1)
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    eager = train(compose_train(overrides))
    cfg = compose_train(
        [*overrides, "model.compile=true", "paths.output_dir=" + str(tmp_path / "c")]
    )
    compiled = train(cfg)
    # Compiled code draws its noise with its own generator: close, not equal.
    assert compiled["val/elbo"] == pytest.approx(eager["val/elbo"], rel=0.02)
    model = VAE.load_from_checkpoint(Path(cfg.paths.output_dir, "checkpoints", "last.ckpt"))
    assert model.hparams.compile and all("_orig_mod" not in k for k in model.state_dict())
