"""Every mistake a user makes on the command line: exit 2, at most three lines, the key named.

Each command runs in a fork of the test process (`run_forked`); test_bad_input.py runs the
same kind of mistakes through a new interpreter."""

import pytest
import torch
from conftest import run_forked

TRAIN, EVAL = "vae_lightning.train", "vae_lightning.eval"
CKPT = "ckpt_path={tmp}/run"  # a run folder that does not exist (checked after the schema)

# (module, arguments, words the answer must hold: the key and the fix or a close key)
MISTAKES = [
    (TRAIN, ["model.latnet_dim=5"], ["model.latnet_dim", "model.latent_dim"]),
    (TRAIN, ["+model.latnet_dim=5"], ["model.latnet_dim", "model.latent_dim"]),
    (TRAIN, ["+model.kl_weigth=0.5"], ["model.kl_weigth", "model.kl_weight"]),
    (TRAIN, ["+trainer.max_epoch=3"], ["trainer.max_epoch", "trainer.max_epochs"]),
    (TRAIN, ["trainer.gradient_clip_val=1.0"], ["add it with a +", "+trainer.gradient_clip_val="]),
    (TRAIN, ["model.optimizer.lr=fast"], ["model.optimizer.lr=fast", "a number"]),
    (TRAIN, ["trainer.max_epochs=ten"], ["trainer.max_epochs=ten", "an integer"]),
    (TRAIN, ["trainer.precision=fp8"], ["trainer.precision=fp8", "bf16-mixed"]),
    (TRAIN, ["trainer.precision=bf16-mix"], ["Did you mean trainer.precision=bf16-mixed?"]),
    (TRAIN, ["model.objective=iwa"], ["Did you mean model.objective=iwae?"]),
    (TRAIN, ["hydra.run.dir=/proc/forbidden"], ["Cannot make the folder /proc/forbidden"]),
    (TRAIN, ["-m", "model.latent_dim=2,5,x"], ["Job 2 of 3 (model.latent_dim=x)", "integer"]),
    (
        TRAIN,
        ["-m", "model.latent_dim=2,x", "hydra/launcher=parallel"],
        ["Job 1 of 2 (model.latent_dim=x)"],
    ),
    (
        TRAIN,
        ["-m", "hparams_search=optuna", "model.latent_dim=choice(2,0)"],
        ["(model.latent_dim=0 model.optimizer.lr=", "positive integer"],
    ),
    (
        TRAIN,
        ["-m", "model.latent_dim=2,5", "model.kl_weight=-1,1"],
        ["Job 0 of 4 (model.latent_dim=2 model.kl_weight=-1)", "model.kl_weight"],
    ),
    (TRAIN, ["test=maybe"], ["test=maybe", "true or false"]),
    (TRAIN, ["seed=abc"], ["value seed=abc", "an integer"]),
    (TRAIN, ["callbacks.media.every_n_epochs=often"], ["callbacks.media.every_n_epochs"]),
    (TRAIN, ["data=mnst"], ["data", "data=mnist"]),
    (TRAIN, ["optimizer=sgd"], ["optimizer", "adagrad, adam"]),
    (TRAIN, ["model.latent_dim=[5"], ["model.latent_dim=[5"]),
    (TRAIN, ["+model.latent_dim=5"], ["model.latent_dim"]),
    (TRAIN, ["model.latent_dim=0"], ["model.latent_dim", "positive integer"]),
    (TRAIN, ["data=frey_face", "data.split_block=0"], ["data.split_block", "positive integer"]),
    (TRAIN, ["model.objective=iwea"], ["model.objective", "iwae"]),
    (TRAIN, ["logger.wandb.mode=sometimes"], ["logger.wandb.mode", "offline"]),
    (TRAIN, ["ckpt_path=nowhere.ckpt"], ["ckpt_path", "nowhere.ckpt"]),
    pytest.param(
        TRAIN,
        ["trainer=gpu"],
        ["trainer.accelerator=gpu", "trainer=cpu"],
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPU"),
    ),
    (EVAL, [], ["ckpt_path", "ckpt_path=outputs/train/runs/"]),
    (EVAL, [CKPT, "+K=100"], ["K", "num_importance_samples"]),
    (EVAL, [CKPT, "num_importance_samples=many"], ["num_importance_samples=many", "integer"]),
    (EVAL, [CKPT, "+devise=cuda"], ["devise", "device"]),
    (EVAL, [CKPT, "split=train"], ["split", "test, val"]),
    (EVAL, [CKPT, "split=valid"], ["Did you mean split=val?"]),
    (EVAL, [CKPT, "data=mnist"], ["reads the data its run was trained on", "data.data_dir="]),
    (EVAL, [CKPT, "+data=mnist"], ["reads the data its run was trained on", "data.data_dir="]),
]


@pytest.mark.parametrize(("module", "args", "words"), MISTAKES)
def test_a_mistake_is_a_short_answer_naming_the_key(module, args, words, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in args]
    # No data here: a mistake that went unnoticed would fail later, without naming the key.
    no_data = [f"paths.data_dir={tmp_path}/data", "data.download=false"] if module == TRAIN else []
    result = run_forked(module, [*args, *no_data], tmp_path)
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode == 2, output
    assert len(lines) <= 3, output
    for word in words:
        assert word in output, output
    assert "Traceback" not in output
    assert not list(tmp_path.rglob("*.ckpt")), "nothing is trained on a mistake"
    assert not list(tmp_path.rglob("*.*")), "nothing is written on a mistake"


@pytest.mark.parametrize("key", ["paths.data_dir", "data.data_dir"])
def test_a_data_folder_that_is_a_file_is_refused_by_the_key_the_user_set(key, tmp_path):
    """Named as set, and refused before any download is tried (download stays on)."""
    result = run_forked(TRAIN, [f"{key}=/etc/passwd"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{key}=/etc/passwd is a file, not a folder. Point {key} at" in output
    assert "Download" not in output and "Traceback" not in output
    assert not list(tmp_path.rglob("*.*"))
