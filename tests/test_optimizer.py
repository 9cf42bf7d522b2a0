"""The optimiser and its schedule: fused steps (the default) make the same updates as torch's
default loop, checkpoints resume across the two, and the configured schedule is the one used."""

from pathlib import Path

import pytest
import torch
from composing import compose_run
from conftest import tiny_overrides

from vae_lightning.models import VAE
from vae_lightning.train import train

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01, "fused": True}
STEP_LR = {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 1}


def _train(tiny_data, folder: Path, *extra: str) -> dict:
    """A run of the tiny job in `folder`; returns its last checkpoint."""
    overrides = [*tiny_overrides(tiny_data, folder), "test=false", *extra]
    train(compose_run(overrides, folder))
    return torch.load(folder / "run" / "checkpoints" / "last.ckpt", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][name], rtol=1e-4, atol=1e-5)


def _fused(checkpoint: dict) -> bool | None:
    [group] = checkpoint["optimizer_states"][0]["param_groups"]
    return group["fused"]


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_fused_steps_are_the_default_and_match_the_unfused_ones(optimizer, tiny_data, tmp_path):
    fused = _train(tiny_data, tmp_path / "fused", f"optimizer={optimizer}")
    plain = _train(
        tiny_data, tmp_path / "plain", f"optimizer={optimizer}", "model.optimizer.fused=false"
    )
    assert _fused(fused) is True and _fused(plain) is False
    assert fused["global_step"] == plain["global_step"] == 10
    _assert_same_weights(fused, plain)
    moved = [
        (a - b).abs().max().item()
        for a, b in zip(fused["state_dict"].values(), plain["state_dict"].values(), strict=True)
    ]
    assert max(moved) < 1e-4  # float rounding only, over 10 steps


@pytest.mark.parametrize("first, then", [(True, False), (False, True)])
def test_a_checkpoint_resumes_across_fused_and_unfused_steps(first, then, tiny_data, tmp_path):
    one_epoch = ["trainer.max_epochs=1", f"model.optimizer.fused={str(first).lower()}"]
    start = _train(tiny_data, tmp_path / "start", *one_epoch)
    last = tmp_path / "start" / "run" / "checkpoints" / "last.ckpt"
    resumed = _train(
        tiny_data, tmp_path / "resumed", f"model.optimizer.fused={str(then).lower()}",
        f"ckpt_path={last}",
    )  # fmt: skip
    straight = _train(tiny_data, tmp_path / "straight")
    assert start["global_step"] == 5 and resumed["global_step"] == 10
    assert _fused(resumed) is then
    _assert_same_weights(resumed, straight)


def _vae(optimizer: dict = ADAM, scheduler: dict | None = None) -> VAE:
    return VAE((1, 4, 4), latent_dim=2, hidden_dims=(3,), optimizer=optimizer, scheduler=scheduler)


def test_the_configured_optimizer_steps_every_parameter():
    model = _vae()
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.01
    [group] = optimizer.param_groups
    assert group["fused"] is True
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]


@pytest.mark.parametrize("interval", [None, "step"])
def test_the_configured_schedule_drives_the_optimizer_each_interval(interval):
    schedule = {**STEP_LR, "gamma": 0.5} | ({"interval": interval} if interval else {})
    configured = _vae(scheduler=schedule).configure_optimizers()
    assert set(configured) == {"optimizer", "lr_scheduler"}
    scheduler = configured["lr_scheduler"].pop("scheduler")
    assert configured["lr_scheduler"] == {"interval": interval or "epoch", "monitor": "val/elbo"}
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert scheduler.optimizer is configured["optimizer"] and scheduler.gamma == 0.5


@pytest.mark.parametrize("fused", [True, False])
def test_fused_steps_fall_back_to_torchs_default_only_where_torch_has_none(fused):
    model = _vae({**ADAM, "fused": fused})
    assert model._optimizer_settings()["fused"] is fused  # CPU: fused where asked
    model.to("meta")  # a device torch fuses no optimiser steps on
    assert model._optimizer_settings()["fused"] is (None if fused else False)


def test_a_loaded_checkpoint_steps_as_this_runs_config_says():
    checkpoint = {"optimizer_states": [{"param_groups": [{"fused": False}, {"fused": None}]}]}
    _vae().on_load_checkpoint(checkpoint)
    assert [g["fused"] for g in checkpoint["optimizer_states"][0]["param_groups"]] == [True] * 2
    weights_only = {"state_dict": {}}  # no optimiser state to change
    _vae().on_load_checkpoint(weights_only)
    assert weights_only == {"state_dict": {}}
