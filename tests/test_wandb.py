"""W&B tracking, offline: runs read back from their .wandb files; media; fallbacks; bad options."""

import csv
import functools
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import wandb
from conftest import run_cli, run_forked, tiny_overrides
from PIL import Image

from vae_lightning.errors import ConfigError
from vae_lightning.tracking import wandb_options
from vae_lightning.tracking import wandb_run as tracking
from vae_lightning.tracking.wandb_offline import describe, read_run
from vae_lightning.train import train

TERMS = ("elbo", "recon", "kl")
IMAGES = ["media/manifold", "media/reconstructions", "media/samples"]


def _wandb_runs(root: Path) -> list[Path]:
    return sorted(root.rglob("offline-run-*"))


def test_cli_run_logs_scalars_media_config_and_checkpoints_offline(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1"]
    result = run_cli("vae_lightning.train", [*args, "logger.wandb.log_model=true"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [run_dir] = _wandb_runs(tmp_path / "outputs")
    # One line says where the run is and how to upload it.
    lines = [line for line in result.stdout.splitlines() if "wandb sync" in line]
    assert len(lines) == 1 and str(run_dir) in lines[0]

    run = describe(run_dir)
    expected = {f"{s}/{t}" for s in ("train", "val", "test") for t in TERMS}
    expected |= {f"train/{t}_step" for t in TERMS} | {"train/lr", "trainer/global_step"}
    assert expected <= set(run["scalars"])
    assert run["images"] == IMAGES
    for name in ("samples", "reconstructions", "manifold"):
        [png] = [f for f in run["image_files"] if f"/{name}_" in f]
        pixels = np.asarray(Image.open(run_dir / "files" / png))
        assert pixels.dtype == np.uint8 and pixels.max() > 128  # not blank
    # The best ELBO is what the runs table shows.
    assert set(run["summary"]["val/elbo"]) == {"max"}
    assert run["project"] == "vae-lightning" and run["exit_code"] == 0
    # Named by its overrides, short and as typed, without paths or checksums.
    assert run["name"].startswith("data=mnist,download=false,batch_size=50")
    assert "/" not in run["name"] and "checksums" not in run["name"]
    # log_model=true: the best and the last checkpoint, as model artifacts.
    assert [a["type"] for a in run["artifacts"]] == ["model", "model"]

    config = read_run(run_dir)["config"]
    assert config["model"]["latent_dim"] == 2 and config["data"]["batch_size"] == 50
    assert config["num_params"] > 0 and config["logger"]["wandb"]["project"] == "vae-lightning"
    # With an image-capable logger, no PNGs are written into the run folder.
    assert not list((tmp_path / "outputs").rglob("media/samples_epoch*.png"))


@pytest.mark.slow
def test_multirun_jobs_are_separate_runs_in_one_group(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1", "test=false"]
    result = run_cli("vae_lightning.train", [*args, "model.latent_dim=2,3", "-m"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [sweep] = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    runs = [read_run(r) for r in _wandb_runs(sweep)]
    assert len(runs) == 2
    assert {r["group"] for r in runs} == {sweep.name}
    assert sorted(r["name"] for r in runs) == ["latent_dim=2", "latent_dim=3"]
    assert len({r["id"] for r in runs}) == 2 and all(r["exit_code"] == 0 for r in runs)
    for r in runs:
        assert r["name"] == f"latent_dim={r['config']['model']['latent_dim']}"


def test_csv_only_run_saves_media_as_pngs(tiny_data, compose_train, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), "logger=csv"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    for name in ("samples", "reconstructions", "manifold"):
        assert sorted(p.name for p in (run / "media").glob(f"{name}_*.png")) == [
            f"{name}_epoch000.png",
            f"{name}_epoch001.png",
        ]
        title = Image.open(run / "media" / f"{name}_epoch001.png").text["Title"]
        assert title.startswith("VAE (elbo, bernoulli decoder), latent size 2, epoch 1: ")
    assert not _wandb_runs(tmp_path)
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    learning_rates = [float(r["train/lr"]) for r in rows if r.get("train/lr")]
    assert learning_rates == pytest.approx([1e-3, 1e-3])  # one per epoch


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+logger.wandb.projct=x", "Unknown W&B option logger.wandb.projct. Did you mean project"),
        ("logger.wandb.mode=offlin", "logger.wandb.mode='offlin'"),
        ("+logger.wandb.settings.init_timeot=3", "Invalid W&B settings in logger.wandb.settings"),
    ],
)
def test_bad_wandb_options_are_refused_before_training(
    override, message, tiny_data, compose_train, tmp_path
):
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), override])
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_wandb_option_exits_with_code_2(tiny_data, tmp_path):
    args = [*tiny_overrides(tiny_data, tmp_path), "+logger.wandb.colour=red"]
    result = run_forked("vae_lightning.train", args, cwd=tmp_path)  # the CLI, without start-up
    assert result.returncode == 2
    assert "Unknown W&B option logger.wandb.colour" in result.stdout + result.stderr


@pytest.mark.parametrize("failing_modes", [("online",), ("online", "offline")])
def test_wandb_that_cannot_start_leaves_training_going(
    failing_modes, tiny_data, compose_train, tmp_path, monkeypatch, caplog
):
    real_init = wandb.init

    @functools.wraps(real_init)
    def init(**kwargs):
        if kwargs["mode"] in failing_modes:
            raise wandb.errors.CommError("network unreachable")
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setenv("WANDB_MODE", "online")
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1"])
    with caplog.at_level(logging.INFO, logger="vae_lightning.tracking.wandb_run"):
        metrics = train(cfg)
    assert "val/elbo" in metrics
    run = Path(cfg.paths.output_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "summary.json").is_file()
    warnings = [
        r.message
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "vae_lightning.tracking.wandb_run"
    ]
    if failing_modes == ("online",):
        assert len(warnings) == 1 and "going on offline" in warnings[0]
        [run_dir] = _wandb_runs(run)
        assert "val/elbo" in describe(run_dir)["scalars"]
    else:
        assert len(warnings) == 2 and "going on without W&B" in warnings[1]
        assert not _wandb_runs(run)
        assert len((run / "metrics.csv").read_text().splitlines()) > 1
        assert sorted(p.name for p in (run / "media").glob("samples_*.png"))  # PNGs instead


def test_a_failing_wandb_call_is_logged_once_and_never_raises(caplog):
    class Broken:
        def log(self, *args, **kwargs):
            raise ConnectionError("service died")

    logger = tracking.WandbLogger(project="p", mode="offline", experiment=Broken())
    with caplog.at_level(logging.WARNING, logger="vae_lightning.tracking.wandb_run"):
        logger.log_metrics({"val/elbo": -100.0}, step=1)
        logger.log_metrics({"val/elbo": -90.0}, step=2)
        logger.log_image("media/samples", [[[0.0]]], step=2)
    [record] = caplog.records
    assert "W&B logging is off for the rest of this run" in record.message


def test_mode_follows_config_then_env_then_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_options.resolve_mode(None) == "offline"  # no credentials
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "a" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_options.resolve_mode(None) == "online"  # `wandb login`
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "b" * 40)
    assert wandb_options.resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert wandb_options.resolve_mode(None) == "offline"
    assert wandb_options.resolve_mode("disabled") == "disabled"


def test_a_wandb_run_starts_without_importing_launch_unless_inputs_can_be_staged(
    tmp_path, monkeypatch
):
    from wandb.sdk.wandb_run import Run

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delitem(sys.modules, tracking.LAUNCH_INPUTS, raising=False)
    with tracking._no_launch_import_without_inputs():
        run = wandb.init(mode="offline", settings={"show_info": False})
    run.finish()
    assert tracking.LAUNCH_INPUTS not in sys.modules  # nothing staged: not imported

    calls = []
    monkeypatch.setattr(Run, "_detect_and_apply_job_inputs", lambda run: calls.append(run))
    with tracking._no_launch_import_without_inputs():
        Run._detect_and_apply_job_inputs("skipped")
    Run._detect_and_apply_job_inputs("after")  # the step is back once the run has started
    # Once the module is imported, inputs may have been staged: they are applied.
    monkeypatch.setitem(sys.modules, tracking.LAUNCH_INPUTS, types.ModuleType("staged"))
    with tracking._no_launch_import_without_inputs():
        Run._detect_and_apply_job_inputs("applied")
    assert calls == ["after", "applied"]


def test_pydantic_models_defined_while_wandb_starts_skip_their_docstrings_only_then():
    from pydantic import BaseModel, ConfigDict

    def define():
        class Options(BaseModel):
            model_config = ConfigDict(use_attribute_docstrings=True)
            show_info: bool = True
            """Whether to print W&B's info lines."""

        return Options.model_fields["show_info"].description

    with wandb_options.no_field_docstrings():
        assert define() is None
    assert define() == "Whether to print W&B's info lines."
    assert wandb_options.import_wandb() is wandb
