"""Evaluation through the real entry points: train a tiny model, evaluate its checkpoint."""

import csv
import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_overrides
from hydra import compose, initialize_config_dir
from PIL import Image

from vae_lightning.config import config_dir
from vae_lightning.errors import UserError
from vae_lightning.eval import evaluate
from vae_lightning.evaluation.checkpoint import checkpoint_epoch, load_checkpoint_file
from vae_lightning.evaluation.figures import save_manifold
from vae_lightning.models.vae import VariationalAutoencoder
from vae_lightning.train import train

EVAL_ARGS = ["num_importance_samples=50", "chunk_size=20"]


def compose_eval(overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("eval", overrides=[*EVAL_ARGS, *overrides])


def _eval_folders(run: Path) -> list[Path]:
    return sorted((run / "eval").glob("*")) if (run / "eval").is_dir() else []


@pytest.fixture(scope="module")
def mnist_run(tiny_data, tmp_path_factory) -> Path:
    """A run folder of `python -m vae_lightning.train`: tiny MNIST, 2-D latent, 2 epochs."""
    tmp_path = tmp_path_factory.mktemp("mnist_run")
    args = [*tiny_overrides(tiny_data, tmp_path), "logger=csv"]  # no W&B: not needed here
    result = run_cli("vae_lightning.train", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [summary] = (tmp_path / "outputs").rglob("summary.json")
    return summary.parent


def test_cli_evaluates_a_run_folder(mnist_run, tmp_path):
    result = run_cli("vae_lightning.eval", [f"ckpt_path={mnist_run}", *EVAL_ARGS], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing outside the run folder
    [folder] = _eval_folders(mnist_run)
    record = json.loads((folder / "eval.json").read_text())
    assert record["checkpoint"] == str(next((mnist_run / "checkpoints").glob("best-*.ckpt")))
    assert record["split"] == "test" and record["num_data_points"] == 100
    assert record["subset"] == {
        "num_points": 100,
        "split_size": 100,
        "seed": None,
        "indices_sha256": "all",
    }
    assert record["num_importance_samples"] == 50 and record["seed"] == 0
    assert record["binarize"] == "dynamic" and record["latent_dim"] == 2
    assert record["seconds"]["total"] > 0
    metrics = record["metrics"]
    elbo, recon, kl = (metrics[k]["mean"] for k in ("elbo", "recon", "kl"))
    assert elbo == pytest.approx(-(recon + kl))
    assert metrics["log_likelihood_is"]["mean"] >= elbo
    assert 0 < metrics["log_likelihood_is"]["sem"] < 10
    # K = 50 is the combination of two independent estimates at K = 25, each lower on average.
    assert metrics["log_likelihood_is_half_k"]["mean"] <= metrics["log_likelihood_is"]["mean"]
    assert metrics["is_half_k_difference"]["sem"] > 0
    gap = metrics["log_likelihood_is"]["mean"] - elbo
    assert metrics["is_minus_elbo"]["mean"] == pytest.approx(gap)
    assert "log_likelihood_exact" not in metrics
    coverage = record["latent_coverage"]  # of the 2-D latent means against the manifold grid
    assert coverage["grid_half_width"] == pytest.approx(1.96, abs=0.01)
    low, middle, high = coverage["mean_percentiles_1_50_99"]
    assert low[0] <= middle[0] <= high[0] and 0 <= coverage["fraction_inside_grid"] <= 1
    # Figures 8 inches wide: square grids (10 x 10 samples, 20 x 20 manifold) under a title.
    assert [row["index"] for row in per_point(folder)] == [str(i) for i in range(100)]
    sizes = {p.name: Image.open(p).size for p in folder.glob("*.png")}
    assert sizes == {
        "reconstructions.png": (800, 308),  # 10 digits across 8 inches, two titled rows
        "samples.png": (800, 860),
        "manifold.png": (800, 860),
        "latent_means.png": (800, 600),
        "training_curves.png": (800, 600),
    }
    assert record["figures"] == sorted(sizes, key=record["figures"].index)
    # The reconstructions are titled with the model, the checkpoint's epoch and latent size.
    epoch = int(Path(record["checkpoint"]).stem.removeprefix("best-epoch"))
    title = Image.open(folder / "reconstructions.png").text["Title"]
    assert title == f"VAE (elbo, bernoulli decoder), latent size 2, epoch {epoch}"
    for name, shows in (("samples", "of prior samples"), ("manifold", "learned manifold")):
        assert Image.open(folder / f"{name}.png").text["Title"].startswith(f"{title}: ")
        assert shows in Image.open(folder / f"{name}.png").text["Title"]
    # last.ckpt of the 2 epochs (0 and 1) holds the weights of epoch 1, whatever Lightning's
    # `epoch` says.
    assert checkpoint_epoch(load_checkpoint_file(mnist_run / "checkpoints" / "last.ckpt")) == 1
    assert "log_likelihood_is" in result.stdout and "Traceback" not in result.stderr
    assert record["manifold_grid"] == "prior"
    assert set(record["manifold_spread"]) == {"prior_grid", "latent_means_grid", "points"}
    assert "z at the prior's quantiles" in Image.open(folder / "manifold.png").text["Title"]


def test_manifold_on_the_latent_means_spans_where_the_points_lie(mnist_run):
    record = evaluate(compose_eval([f"ckpt_path={mnist_run}", "manifold_grid=latent_means"]))
    folder = Path(record["checkpoint"]).parents[1] / "eval"
    newest = max(folder.iterdir())
    assert record["manifold_grid"] == "latent_means"
    assert "quantiles of the latent means" in Image.open(newest / "manifold.png").text["Title"]
    # The coverage stays that of the prior's grid, the same whichever grid is drawn.
    assert record["latent_coverage"]["grid_half_width"] == pytest.approx(1.96, abs=0.01)


def per_point(folder: Path) -> list[dict[str, str]]:
    with open(folder / "per_point.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_metric_is_of_the_same_seeded_random_points(mnist_run):
    """num_points=20 draws 20 of the 100 test images with subset_seed, not the first 20, and
    the ELBO and the IS estimate of each are those of the same image in a whole-split run."""
    subset = ["num_points=20", "num_importance_samples=200", "chunk_size=50"]
    evaluate(compose_eval([f"ckpt_path={mnist_run}", *subset]))
    folder = _eval_folders(mnist_run)[-1]
    record = json.loads((folder / "eval.json").read_text())
    rows = per_point(folder)
    indices = [int(row["index"]) for row in rows]
    assert len(indices) == 20 == record["num_data_points"]
    assert indices == sorted(set(indices)) and indices != list(range(20))
    assert indices[0] >= 0 and indices[-1] < 100
    digest = hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()
    assert record["subset"] == {
        "num_points": 20,
        "split_size": 100,
        "seed": 0,
        "indices_sha256": digest,
    }
    for name in ("elbo", "kl", "log_likelihood_is"):
        values = [float(row[name]) for row in rows]
        assert record["metrics"][name]["mean"] == pytest.approx(sum(values) / 20, abs=1e-5)

    checkpoint = f"ckpt_path={mnist_run}"
    again = evaluate(compose_eval([checkpoint, *subset]))
    assert again["subset"] == record["subset"] and again["metrics"] == record["metrics"]
    other = evaluate(compose_eval([checkpoint, *subset, "subset_seed=1"]))
    assert other["subset"]["indices_sha256"] != digest and other["subset"]["seed"] == 1

    evaluate(compose_eval([checkpoint, *subset[1:]]))  # the whole split
    whole = {int(row["index"]): row for row in per_point(_eval_folders(mnist_run)[-1])}
    # The KL term is exact: the same image gives the same value in both runs.
    for row in rows:
        assert float(row["kl"]) == pytest.approx(float(whole[int(row["index"])]["kl"]), abs=1e-4)
    # The IS estimates of the same image agree within their noise, far closer than images do.
    ours = torch.tensor([float(row["log_likelihood_is"]) for row in rows])
    same = torch.tensor([float(whole[i]["log_likelihood_is"]) for i in indices])
    first = torch.tensor([float(whole[i]["log_likelihood_is"]) for i in range(20)])
    assert (ours - same).abs().mean() < 0.3 * (ours - first).abs().mean()


def test_num_points_beyond_the_split_is_refused(mnist_run):
    before = _eval_folders(mnist_run)
    with pytest.raises(UserError, match="num_points=101 is more than the 100"):
        evaluate(compose_eval([f"ckpt_path={mnist_run}", "num_points=101"]))
    assert _eval_folders(mnist_run) == before


def test_each_evaluation_gets_a_new_folder(mnist_run):
    checkpoint = mnist_run / "checkpoints" / "last.ckpt"
    before = _eval_folders(mnist_run)
    first = evaluate(compose_eval([f"ckpt_path={checkpoint}", "split=val"]))
    second = evaluate(
        compose_eval([f"ckpt_path={checkpoint}", "split=val", "seed=1", "num_points=20"])
    )
    new = sorted(set(_eval_folders(mnist_run)) - set(before))
    assert len(new) == 2 and all(p.name.endswith("_val") for p in new)
    assert first["checkpoint"] == str(checkpoint) and first["num_data_points"] == 50
    assert second["num_data_points"] == 20 and second["subset"]["seed"] == 0


def test_ppca_reports_its_exact_likelihood(tiny_data, compose_train, tmp_path):
    """PPCA on Frey Face (3-D latent): exact log p(x) >= ELBO; no manifold, no label plot."""
    overrides = [
        *tiny_overrides(tiny_data, tmp_path, "frey_face"),
        "model=ppca",
        "model.latent_dim=3",
        "logger=csv",
        "trainer.max_epochs=5",
        "test=false",
    ]
    cfg = compose_train(overrides)
    train(cfg)
    record = evaluate(compose_eval([f"ckpt_path={cfg.paths.output_dir}"]))
    metrics = {k: v["mean"] for k, v in record["metrics"].items()}
    assert record["likelihood"] == "linear_gaussian" and record["binarize"] == "none"
    assert metrics["elbo"] <= metrics["log_likelihood_exact"]
    assert metrics["log_likelihood_is"] <= metrics["log_likelihood_exact"] + 1.0
    assert "log_likelihood_ppca_closed_form" in metrics
    assert record["figures"] == ["reconstructions.png", "samples.png", "training_curves.png"]


def test_manifold_of_frey_face_has_the_grid_of_faces(tmp_path):
    vae = VariationalAutoencoder((1, 28, 20), 2, [8], "tanh", "gaussian")
    save_manifold(vae, tmp_path / "manifold.png", "Frey", size=5)
    # 5 x 5 faces of 20 x 28 pixels, 8 inches wide under a title: the grid's aspect kept.
    assert Image.open(tmp_path / "manifold.png").size == (800, round(800 * 28 / 20 + 60))
    with pytest.raises(ValueError, match="2-D"):
        frey_3d = VariationalAutoencoder((1, 28, 20), 3, [8], "tanh", "gaussian")
        save_manifold(frey_3d, tmp_path, "Frey")


class RunsCode:
    """A pickle that would create a file when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bad_inputs(run: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """{case: (overrides, a phrase of the error message)}."""
    text_file, foreign, malicious = tmp_path / "notes.ckpt", tmp_path / "other.ckpt", tmp_path
    text_file.write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, foreign)
    (malicious / "checkpoints").mkdir()
    (malicious / "config.yaml").write_text((run / "config.yaml").read_text())
    with open(malicious / "checkpoints" / "best-epoch000.ckpt", "wb") as f:
        pickle.dump(RunsCode(tmp_path / "code-was-run"), f, protocol=2)
    empty = tmp_path / "empty_run"
    (empty / "checkpoints").mkdir(parents=True)
    return {
        "missing": ([f"ckpt_path={tmp_path / 'nope.ckpt'}"], "does not exist"),
        "text file": ([f"ckpt_path={text_file}"], "not a checkpoint of this project"),
        "foreign checkpoint": ([f"ckpt_path={foreign}"], "not a checkpoint of this project"),
        "code in pickle": ([f"ckpt_path={malicious}"], "not a checkpoint of this project"),
        "no checkpoints": ([f"ckpt_path={empty}"], "no single best checkpoint"),
        "data not found": (
            [f"ckpt_path={run}", f"data.data_dir={tmp_path}", f"data.cache_dir={tmp_path}"],
            "not found",
        ),
        "K < 1": ([f"ckpt_path={run}", "num_importance_samples=0"], "num_importance_samples"),
        "unknown split": ([f"ckpt_path={run}", "split=train"], "split"),
        "subset seed": ([f"ckpt_path={run}", "subset_seed=one"], "subset_seed"),
        "threads": ([f"ckpt_path={run}", "threads=0"], "threads"),
        "no ckpt_path": ([], "ckpt_path"),
    }


def test_bad_input_is_refused_and_nothing_is_written(mnist_run, tmp_path):
    before = _eval_folders(mnist_run)
    for case, (overrides, phrase) in bad_inputs(mnist_run, tmp_path).items():
        with pytest.raises(UserError, match=phrase):
            evaluate(compose_eval(overrides))
        assert _eval_folders(mnist_run) == before, case
    assert not (tmp_path / "code-was-run").exists()
    assert not (tmp_path / "checkpoints" / "eval").exists()


def test_cli_bad_input_exits_with_one_paragraph(mnist_run, tmp_path):
    result = run_cli("vae_lightning.eval", [f"ckpt_path={tmp_path / 'nope'}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []
