"""Which checkpoint an evaluation reads: a file, a run folder's best checkpoint, its epoch."""

from pathlib import Path

import pytest
import torch

from vae_lightning.evaluation.checkpoint import (
    CheckpointError,
    _load_failure,
    checkpoint_epoch,
    load_checkpoint_file,
    load_model,
    resolve_checkpoint,
    run_folder_of,
)
from vae_lightning.models import VAE
from vae_lightning.models.objectives import OBJECTIVES

TWO_BEST = "best-epoch003.ckpt, best-epoch007.ckpt"
BEST_STATE = "ModelCheckpoint{'monitor': 'val/elbo', 'mode': 'max'}"


def _checkpoints(run: Path, *names: str) -> Path:
    folder = run / "checkpoints"
    folder.mkdir(parents=True)
    for name in names:
        torch.save({"epoch": 0}, folder / name)
    return folder


def _last(folder: Path, best: str, **earlier_callbacks: dict) -> None:
    """last.ckpt whose best ModelCheckpoint recorded `best`, after `earlier_callbacks` states."""
    callbacks = {**earlier_callbacks, BEST_STATE: {"best_model_path": str(folder / best)}}
    torch.save({"epoch": 3, "callbacks": callbacks}, folder / "last.ckpt")


def test_a_file_is_the_checkpoint_itself_with_the_home_folder_expanded(tmp_path, monkeypatch):
    folder = _checkpoints(tmp_path / "run", "last.ckpt")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_checkpoint("~/run/checkpoints/last.ckpt") == folder / "last.ckpt"


def test_a_run_folder_gives_its_one_best_checkpoint(tmp_path):
    folder = _checkpoints(tmp_path, "best-epoch004.ckpt", "last.ckpt", "snapshot-epoch0080.ckpt")
    assert resolve_checkpoint(tmp_path) == folder / "best-epoch004.ckpt"


def test_of_several_best_checkpoints_the_one_recorded_in_last_ckpt_is_chosen(tmp_path):
    folder = _checkpoints(tmp_path, "best-epoch003.ckpt", "best-epoch007.ckpt")
    # Snapshots are kept by a ModelCheckpoint too, whose best path is no best checkpoint, and
    # only ModelCheckpoint states are read.
    earlier = {
        "ModelCheckpoint{'every_n_epochs': 81}": {"best_model_path": "snapshot.ckpt"},
        "RngState": {"best_model_path": str(folder / "best-epoch007.ckpt")},
    }
    _last(folder, "best-epoch003.ckpt", **earlier)
    assert resolve_checkpoint(tmp_path) == folder / "best-epoch003.ckpt"


@pytest.mark.parametrize(
    "names, recorded, found",
    [
        ((), None, "none"),
        (("best-epoch003.ckpt", "best-epoch007.ckpt"), None, TWO_BEST),
        (("best-epoch003.ckpt", "best-epoch007.ckpt"), "best-epoch001.ckpt", TWO_BEST),
        (("best-epoch003.ckpt", "best-epoch007.ckpt"), "last.ckpt", TWO_BEST),
        (("best-epoch003.ckpt", "best-epoch007.ckpt"), "no callbacks", TWO_BEST),
    ],
)
def test_a_run_folder_without_one_choosable_best_checkpoint_is_refused(
    names, recorded, found, tmp_path
):
    folder = _checkpoints(tmp_path, *names)
    if recorded == "no callbacks":
        torch.save({"epoch": 3}, folder / "last.ckpt")
    elif recorded:
        _last(folder, recorded)
    with pytest.raises(CheckpointError, match="no single best checkpoint") as err:
        resolve_checkpoint(tmp_path)
    assert str(err.value) == (
        f"ckpt_path={str(tmp_path)!r} is a folder, but no single best checkpoint could be chosen "
        f"in {folder} (best checkpoints found: {found}). Give a run folder of "
        "`python -m vae_lightning.train`, or the path of one checkpoint file."
    )


def test_several_best_checkpoints_without_last_ckpt_are_refused(tmp_path):
    _checkpoints(tmp_path, "best-epoch003.ckpt", "best-epoch007.ckpt")
    with pytest.raises(CheckpointError, match="no single best checkpoint"):
        resolve_checkpoint(tmp_path)


def test_a_missing_path_is_refused_with_what_to_give(tmp_path):
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(tmp_path / "nope")
    assert str(err.value) == (
        f"ckpt_path={str(tmp_path / 'nope')!r} does not exist. Give a checkpoint file (e.g. "
        "outputs/train/runs/<run>/checkpoints/best-epoch009.ckpt) or a run folder."
    )


@pytest.mark.parametrize(
    "checkpoint, epoch",
    [
        ({"epoch": 2, "loops": {"fit_loop": {"epoch_progress": {"current": {"started": 2}}}}}, 1),
        ({"epoch": 1, "loops": {"fit_loop": {"epoch_progress": {"current": {"started": 1}}}}}, 0),
        ({"epoch": 5}, 5),  # no loop state: Lightning's epoch
        ({"epoch": 0, "loops": {"fit_loop": {"epoch_progress": {"current": {"started": 0}}}}}, 0),
    ],
)
def test_the_epoch_of_a_checkpoint_counts_from_zero(checkpoint, epoch):
    assert checkpoint_epoch(checkpoint) == epoch


def test_a_checkpoint_belongs_to_the_run_folder_above_its_checkpoints_folder(tmp_path):
    folder = _checkpoints(tmp_path / "run", "best-epoch001.ckpt")
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    assert run_folder_of(folder / "best-epoch001.ckpt") == (tmp_path / "run").resolve()


def test_a_checkpoint_outside_a_run_folder_is_refused(tmp_path):
    folder = _checkpoints(tmp_path / "run", "best-epoch001.ckpt")
    with pytest.raises(CheckpointError) as err:
        run_folder_of(folder / "best-epoch001.ckpt")  # no config.yaml
    assert str(err.value) == (
        f"{folder / 'best-epoch001.ckpt'} is not inside a run folder of `python -m "
        "vae_lightning.train` (<run>/checkpoints/*.ckpt next to <run>/config.yaml), whose data "
        "settings the evaluation uses. Evaluate it from its run folder."
    )
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "run" / "elsewhere").mkdir()
    moved = (folder / "best-epoch001.ckpt").rename(tmp_path / "run" / "elsewhere" / "b.ckpt")
    with pytest.raises(CheckpointError, match="not inside a run folder"):
        run_folder_of(moved)  # beside a config.yaml, but not in checkpoints/


def _model_checkpoint(path: Path, **hparams) -> tuple[Path, VAE]:
    model = VAE([1, 28, 28], latent_dim=2, hidden_dims=[8], **hparams)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path, model


def test_a_checkpoint_loads_as_the_vae_it_was_written_from_in_evaluation_mode(tmp_path):
    path, model = _model_checkpoint(tmp_path / "a.ckpt", activation="relu", compile=True)
    loaded = load_model(path)
    assert not loaded.training and loaded.hparams.activation == "relu"
    assert loaded.hparams.compile is False  # evaluated eagerly, whatever it was trained with
    assert loaded._objective is OBJECTIVES["elbo"]
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


REQUIRED = {"image_shape": [1, 28, 28], "latent_dim": 2, "likelihood": "bernoulli"}


def test_a_checkpoint_with_only_the_required_hyperparameters_loads(tmp_path):
    model = VAE([1, 28, 28], latent_dim=2, hidden_dims=[500])
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": REQUIRED}, tmp_path / "a")
    assert load_model(tmp_path / "a").hparams.hidden_dims == [500]  # the default


NOT_OURS = "is not a checkpoint of this project: it lacks the VAE's hyperparameters or weights."


@pytest.mark.parametrize(
    "content",
    [
        {"state_dict": {}},  # no hyperparameters
        {"state_dict": {}, "hyper_parameters": [2]},
        {"hyper_parameters": {"image_shape": [1, 28, 28], "latent_dim": 2, "likelihood": "x"}},
        {"state_dict": [], "hyper_parameters": {"latent_dim": 2}},
        {"state_dict": {}, "hyper_parameters": {"image_shape": [1], "latent_dim": 2}},
        {"state_dict": {}, "hyper_parameters": {**REQUIRED, "depth": 3}},  # not the VAE's
    ],
)
def test_a_file_without_the_vaes_settings_or_weights_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "a.ckpt")
    assert str(err.value) == (
        f"{tmp_path / 'a.ckpt'} {NOT_OURS} Give a .ckpt file written by "
        "`python -m vae_lightning.train`."
    )


def test_weights_of_another_shape_are_refused_naming_the_first_mismatch(tmp_path):
    path, _ = _model_checkpoint(tmp_path / "a.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_dims"] = [9]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert message.startswith(
        f"{path} does not match this project's VAE: its weights do not fit the network that "
        "its saved settings describe (RuntimeError: Error(s) in loading state_dict for VAE: "
        "size mismatch for vae."
    )
    assert "torch.Size([9" in message and "\n" not in message
    assert message.endswith(
        "Give a checkpoint written by `python -m vae_lightning.train` of this version of "
        "vae-lightning, unchanged."
    )


CUT_SHORT = object()  # a checkpoint cut short after 100 bytes


class NotPlainData:
    """An object a checkpoint could carry whose loading would run this class's code."""


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not a checkpoint", "UnpicklingError: Unsupported operand 110"),
        (b"", "EOFError"),  # no message
        (CUT_SHORT, "RuntimeError: PytorchStreamReader failed reading zip archive: failed "
         "finding central directory"),
    ],
)  # fmt: skip
def test_an_unreadable_file_is_refused_naming_why_in_a_few_words(tmp_path, content, error):
    if content is CUT_SHORT:
        torch.save({"w": torch.ones(100)}, tmp_path / "whole.ckpt")
        content = (tmp_path / "whole.ckpt").read_bytes()[:100]
    (tmp_path / "a.ckpt").write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(tmp_path / "a.ckpt")
    assert str(err.value) == (
        f"{tmp_path / 'a.ckpt'} is not a checkpoint of this project: it cannot be read as plain "
        f"tensors and numbers ({error}). Give a .ckpt file written by "
        "`python -m vae_lightning.train`."
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (EOFError("Ran out of input."), "EOFError: Ran out of input"),
        (RuntimeError("  The first sentence. The second.  "), "RuntimeError: The first sentence"),
        (OSError("the first line\nthe second line"), "OSError: the first line"),
        (ValueError(" . "), "ValueError"),  # nothing left to say
        (
            RuntimeError(
                "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
                "`False` will likely succeed.\nPlease file an issue.\n\nWeightsUnpickler error: "
                "Unsupported global: GLOBAL a.B was not an allowed global by default. Use "
                "safe_globals.\n\nCheck the recommended steps."
            ),
            "RuntimeError: Unsupported global: GLOBAL a.B was not an allowed global by default",
        ),
    ],
)
def test_a_load_failure_is_said_in_its_first_sentence_without_torchs_advice(error, said):
    assert _load_failure(error) == said


def test_a_file_that_would_run_code_when_loaded_is_refused_without_advice_to_run_it(tmp_path):
    torch.save({"state_dict": {}, "extra": NotPlainData()}, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(tmp_path / "a.ckpt")
    assert "(UnpicklingError: Unsupported global: GLOBAL test_checkpoint_files.NotPlainData " in (
        str(err.value)
    )
    assert "weights_only" not in str(err.value) and len(str(err.value).splitlines()) == 1


def test_a_file_holding_something_else_than_a_dict_is_refused(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(tmp_path / "a.ckpt")
    assert str(err.value) == f"{tmp_path / 'a.ckpt'} holds a list, not a checkpoint."
