"""Bad input fails early with a short message that names the key or file and the fix."""

import pytest
from conftest import run_cli, tiny_overrides

from vae_lightning.errors import ConfigError, DataError, UserError
from vae_lightning.train import train


@pytest.mark.parametrize(
    ("override", "error", "names"),
    [
        ("model.latent_dim=0", ConfigError, ["model.latent_dim", "positive integer"]),
        ("model.latent_dim=-3", ConfigError, ["model.latent_dim"]),
        ("model.hidden_dims=[]", ConfigError, ["model.hidden_dims", "non-empty list"]),
        ("model.hidden_dims=[64,0]", ConfigError, ["model.hidden_dims", "positive integers"]),
        ("model.num_samples=0", ConfigError, ["model.num_samples", ">= 1"]),
        ("model.likelihood=poisson", ConfigError, ["model.likelihood", "bernoulli, gaussian"]),
        ("model.activation=swishy", ConfigError, ["model.activation", "tanh"]),
        ("data.binarize=sometimes", ConfigError, ["data.binarize", "dynamic, static, none"]),
        ("data.batch_size=0", ConfigError, ["data.batch_size"]),
        ("model.likelihood=gaussian", ConfigError, ["model.likelihood=gaussian", "data.binarize"]),
        ("ckpt_path=nowhere.ckpt", ConfigError, ["ckpt_path", "nowhere.ckpt"]),
        (
            "callbacks.interval_checkpoint.every_n_train_steps=100",
            ConfigError,
            ["every_n_train_steps", "train_time_interval=null"],
        ),
        (
            "paths.data_dir=/nonexistent",
            DataError,
            ["train-images-idx3-ubyte.gz", "point paths.data_dir (or the VAE_DATA_DIR"],
        ),
    ],
)
def test_bad_config_is_refused_before_training(
    override, error, names, tiny_data, compose_train, tmp_path
):
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), override])
    with pytest.raises(error) as raised:
        train(cfg)
    for name in names:
        assert name in str(raised.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("data", "overrides", "names"),
    [
        (
            "frey_face",  # 20 validation images in one batch of 50
            ["trainer=ddp_cpu"],
            ["data.eval_batch_size=50 makes 1 validation batch of 20 images (data.val_size)",
             "for 2 processes", "data.eval_batch_size=10 or less"],
        ),
        (
            "mnist",  # no validation; the 10,000 test images in 10 batches
            ["trainer=ddp_cpu", "trainer.devices=16", "data.val_size=0",
             "data.eval_batch_size=1000"],
            ["10 test batches of 10,000 images (the official test split) for 16 processes",
             "data.eval_batch_size=625 or less"],
        ),
    ],
)  # fmt: skip
def test_fewer_evaluation_batches_than_processes_are_refused(
    data, overrides, names, tiny_data, compose_train, tmp_path
):
    """Under DDP a process without an evaluation batch would wait forever for the others."""
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path, data), *overrides])
    with pytest.raises(ConfigError) as raised:
        train(cfg)
    for name in names:
        assert name in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_unreachable_download_is_a_clear_error(tiny_data, compose_train, tmp_path):
    overrides = [
        *tiny_overrides(tiny_data, tmp_path, "frey_face"),
        f"paths.data_dir={tmp_path / 'empty'}",
        "data.download=true",
        "data.url=http://127.0.0.1:9/frey_rawface.mat",
    ]
    with pytest.raises(DataError, match="Download failed") as raised:
        train(compose_train(overrides))
    assert "http://127.0.0.1:9/frey_rawface.mat" in str(raised.value)


@pytest.mark.parametrize(
    "precious", ["checkpoints/last.ckpt", "metrics.csv", "summary.json"], ids=lambda p: p
)
def test_a_run_folder_that_holds_a_run_is_never_trained_into(
    precious, tiny_data, compose_train, tmp_path
):
    path = tmp_path / "run" / precious
    path.parent.mkdir(parents=True)
    path.write_bytes(b"precious")
    with pytest.raises(UserError, match="already holds a training run"):
        train(compose_train(tiny_overrides(tiny_data, tmp_path)))
    assert path.read_bytes() == b"precious"


def test_cli_reports_bad_input_in_one_paragraph_and_exits_non_zero(tiny_data, tmp_path):
    result = run_cli(
        "vae_lightning.train",
        [*tiny_overrides(tiny_data, tmp_path), "model.latent_dim=0"],
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "model.latent_dim" in output and "Traceback" not in output

    unknown = run_cli("vae_lightning.train", ["model.latnet_dim=3"], tmp_path)
    assert unknown.returncode != 0 and "latnet_dim" in unknown.stderr
