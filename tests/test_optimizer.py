"""Fused optimiser steps (the default): the same updates as torch's default loop, and
checkpoints that resume across the two."""

from pathlib import Path

import pytest
import torch
from composing import compose_run
from conftest import tiny_overrides

from vae_lightning.train import train


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
