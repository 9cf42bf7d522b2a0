"""The Python API (vae_lightning.load, load_data and the model's methods) on a tiny run that
was trained and evaluated as a user would: the numbers of its eval.json, from Python."""

import csv
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from composing import compose_run
from conftest import cli_environment, tiny_overrides
from hydra import compose, initialize_config_dir
from torch import distributions

import vae_lightning
from vae_lightning.config import config_dir
from vae_lightning.errors import ConfigError, DataError, UserError
from vae_lightning.eval import evaluate
from vae_lightning.evaluation import record
from vae_lightning.evaluation.metrics import combine_estimates
from vae_lightning.models.vae import VariationalAutoencoder
from vae_lightning.train import train

K = 200  # the evaluation's importance samples: two independent estimates at K/2 = 100
EVAL_BATCH, EVAL_CHUNK = 100, 20  # the evaluation's batch_size and chunk_size


@pytest.fixture(autouse=True)
def no_data_dir_from_the_environment(monkeypatch):
    """Each test names its data: $VAE_DATA_DIR of the shell running the tests is not used."""
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> Path:
    """A run folder trained on tiny MNIST (2-D latent, 2 epochs), with one test evaluation."""
    folder = tmp_path_factory.mktemp("api")
    cfg = compose_run([*tiny_overrides(tiny_data, folder), "logger=csv"], folder=folder)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        eval_cfg = compose(
            "eval",
            overrides=[
                f"ckpt_path={run}",
                f"num_importance_samples={K}",
                f"batch_size={EVAL_BATCH}",
                f"chunk_size={EVAL_CHUNK}",
            ],
        )
    evaluate(eval_cfg)
    return run


@pytest.fixture(scope="module")
def evaluation(run) -> tuple[dict, list[dict[str, str]]]:
    """The run's eval.json and the rows of its per_point.csv."""
    [folder] = (run / "eval").glob("*_test")
    with open(folder / "per_point.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return json.loads((folder / "eval.json").read_text()), rows


@pytest.fixture(scope="module")
def record_folder(run, tmp_path_factory) -> Path:
    """The run recorded as docs/runs/<name> is, by the record command, with its weights."""
    into = tmp_path_factory.mktemp("records")
    record.main([str(run), "--into", str(into), "--name", "tiny", "--weights"])
    return into / "tiny"


@pytest.fixture(scope="module")
def model(run) -> VariationalAutoencoder:
    return vae_lightning.load(run)


@pytest.fixture(scope="module")
def test_images(run) -> torch.Tensor:
    return vae_lightning.load_data(run).splits["test"]


def best_checkpoint(run: Path) -> Path:
    [best] = (run / "checkpoints").glob("best-*.ckpt")
    return best


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(tensor, b.state_dict()[name], rtol=0, atol=0, msg=name)


def test_load_gives_the_bare_model_in_eval_mode_with_its_config(run, model):
    assert type(model) is VariationalAutoencoder and not model.training
    assert all(not m.training for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.checkpoint == best_checkpoint(run).resolve()
    assert model.config.model.latent_dim == 2 and model.config.model.hidden_dims == [32]
    assert model.config.data.val_size == 50  # the run's own config.yaml, data and all
    assert model.latent_dim == 2 and model.image_shape == (1, 28, 28)


def test_load_takes_a_record_folder_and_checkpoint_files(run, model, record_folder, tmp_path):
    recorded = vae_lightning.load(record_folder)
    assert recorded.checkpoint == (record_folder / "checkpoints" / best_checkpoint(run).name)
    assert recorded.config.model == model.config.model
    assert_same_weights(recorded, model)

    last = vae_lightning.load(run / "checkpoints" / "last.ckpt")
    assert last.checkpoint == (run / "checkpoints" / "last.ckpt").resolve() and not last.training
    assert last.config.model == model.config.model

    # A checkpoint file outside its run folder: its config is the model's saved settings.
    alone = tmp_path / "alone.ckpt"
    shutil.copyfile(best_checkpoint(run), alone)
    loose = vae_lightning.load(str(alone))  # a str as well as a Path
    assert set(loose.config) == {"model"} and loose.config.model.latent_dim == 2
    assert loose.config.model.hidden_dims == [32]
    assert_same_weights(loose, model)


def test_load_puts_the_model_on_the_device_asked_for(run, test_images):
    on_cpu = vae_lightning.load(run, device=torch.device("cpu"))
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    if torch.cuda.is_available():
        on_gpu = vae_lightning.load(run, device="cuda")
        assert {p.device.type for p in on_gpu.parameters()} == {"cuda"}
        # Images on the CPU are moved to the model; the estimate comes back on the CPU.
        assert on_gpu.log_likelihood(test_images[:4], num_samples=10).device.type == "cpu"
    else:
        with pytest.raises(ConfigError, match=r"device=cuda needs a CUDA GPU.*use 'cpu'"):
            vae_lightning.load(run, device="cuda")
    with pytest.raises(ConfigError, match="'gpu0' is not a torch device; use 'cpu' or 'cuda'"):
        vae_lightning.load(run, device="gpu0")


def evaluation_draws(model: VariationalAutoencoder, images: torch.Tensor) -> torch.Tensor:
    """The evaluation's estimate at K from Python, draw for draw: two independent estimates at
    K/2, each over the images in batches of its batch_size, drawn after seeding torch with its
    seed (0), then combined (exactly the K-sample estimator)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        halves = [
            model.log_likelihood(images, K // 2, None, EVAL_BATCH, EVAL_CHUNK) for _ in range(2)
        ]
    return combine_estimates(halves, [K // 2] * 2)


def test_load_data_gives_the_images_and_draws_of_the_evaluation(
    run, model, test_images, evaluation
):
    """The same draws of z on load_data's test images give per_point.csv's log p(x) of each
    image to its 6 decimals: the same split and the same fixed binarisation as the evaluation's
    (another binarisation of the same digits gives other numbers)."""
    recorded, rows = evaluation
    assert recorded["num_importance_samples"] == K and recorded["seed"] == 0
    assert [int(row["index"]) for row in rows] == list(range(100))  # the whole test split
    per_point = {name: torch.tensor([float(row[name]) for row in rows]) for name in rows[0]}
    data = vae_lightning.load_data(run)
    assert torch.equal(data.splits["test"], test_images) and test_images.shape == (100, 1, 28, 28)
    assert set(test_images.unique().tolist()) == {0, 1}  # the fixed binarisation
    assert len(data.labels["test"]) == 100 and len(data.splits["val"]) == 50
    ours = evaluation_draws(model, test_images)
    torch.testing.assert_close(ours, per_point["log_likelihood_is"].double(), atol=2e-5, rtol=0)
    with torch.no_grad():
        kl = model.elbo(test_images).kl  # exact, whatever the draws
    torch.testing.assert_close(kl, per_point["kl"], atol=2e-5, rtol=0)

    redrawn = vae_lightning.load_data(run, split_seed=1).splits["test"]  # another draw
    assert not torch.equal(redrawn, test_images)
    assert (evaluation_draws(model, redrawn) - ours).abs().max() > 1
    # The same images from the run's checkpoint file, and from the run folder as a str.
    for path in (run / "checkpoints" / "last.ckpt", str(run)):
        assert torch.equal(vae_lightning.load_data(path).splits["test"], test_images)


def test_load_data_looks_in_the_folder_given_then_in_vae_data_dir(
    run, record_folder, test_images, tiny_data, tmp_path, monkeypatch
):
    assert torch.equal(vae_lightning.load_data(record_folder).splits["test"], test_images)
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))  # holds no data
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        vae_lightning.load_data(run)
    given = vae_lightning.load_data(run, data_dir=tiny_data[0])  # before $VAE_DATA_DIR
    assert torch.equal(given.splits["test"], test_images)
    monkeypatch.setenv("VAE_DATA_DIR", str(tiny_data[0]))
    assert torch.equal(vae_lightning.load_data(run).splits["test"], test_images)


def test_log_likelihood_agrees_with_eval_json_to_the_estimators_noise(
    model, test_images, evaluation
):
    """One K-sample estimate with seed 0, against the evaluation's K-sample estimate of the same
    images from other draws: they differ only by the estimator's own noise.

    Per image, that difference has variance 2 Var_K; the evaluation's two K/2 halves differ by
    variance 2 Var_(K/2), recorded as is_half_k_difference, and Var_K <= Var_(K/2) (about half
    of it at large K: a mean of K weights). So the standard error of the difference of the
    means is at most the recorded standard error of the halves' difference, and 4 of those
    are 4 standard errors or more: over 100 images, near normal, a false alarm once in 10^4
    seeds at most.
    """
    recorded, _ = evaluation
    metrics = recorded["metrics"]
    tolerance = 4 * metrics["is_half_k_difference"]["sem"]
    ours = model.log_likelihood(test_images, num_samples=K, seed=0, batch_size=50)
    assert ours.dtype == torch.float64 and ours.shape == (100,)
    assert abs(ours.mean().item() - metrics["log_likelihood_is"]["mean"]) <= tolerance
    # Not a loose test: the tolerance is a small part of the gap between IS and the ELBO.
    assert tolerance < 0.1 * metrics["is_minus_elbo"]["mean"]


def test_latent_diagnostics_are_the_evaluations(model, test_images, evaluation):
    """The same active units, KL per dimension and mutual information as eval.json's."""
    recorded = evaluation[0]["latent"]
    ours = model.latent_diagnostics(
        test_images,
        recorded["active_unit_threshold"],
        recorded["mutual_info_points"],
        seed=evaluation[0]["seed"],
    )
    assert ours["active_units"] == recorded["active_units"]
    assert ours["kl_per_dim"] == pytest.approx(recorded["kl_per_dim"], rel=1e-5, abs=1e-6)
    assert ours["mutual_info"] == pytest.approx(recorded["mutual_info"], rel=1e-5, abs=1e-6)
    assert ours["kl"] == pytest.approx(evaluation[0]["metrics"]["kl"]["mean"], rel=1e-5)


def test_seeded_calls_are_reproducible_and_leave_the_global_generator_alone(model, test_images):
    x = test_images[:8]
    state = torch.get_rng_state()
    samples = model.sample(6, seed=3)
    estimate = model.log_likelihood(x, num_samples=20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert samples.shape == (6, 1, 28, 28) and 0 <= samples.min() <= samples.max() <= 1
    assert torch.equal(model.sample(6, seed=3), samples)
    assert torch.equal(model.log_likelihood(x, num_samples=20, seed=3), estimate)
    assert not torch.equal(model.sample(6, seed=4), samples)
    assert not torch.equal(model.log_likelihood(x, num_samples=20, seed=4), estimate)
    model.sample(6, seed=None)  # unseeded: draws from the global generator
    assert not torch.equal(torch.get_rng_state(), state)


def test_encode_is_the_encoders_posterior(model, test_images):
    x = test_images[:5]
    with torch.no_grad():
        posterior = model.encode(x)
        mu, logvar = model.encoder(x)
    assert isinstance(posterior, distributions.Distribution)
    assert posterior.batch_shape == (5,) and posterior.event_shape == (2,)
    torch.testing.assert_close(posterior.mean, mu)
    torch.testing.assert_close(posterior.variance, logvar.exp())
    # Its KL from the prior N(0, I) is the ELBO's exact KL term.
    prior = distributions.Independent(distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    with torch.no_grad():
        kl = model.elbo(x).kl
    torch.testing.assert_close(distributions.kl_divergence(posterior, prior), kl)


def test_decode_distribution_is_the_decoders_likelihood(model, test_images):
    x = test_images[:5]
    with torch.no_grad():
        z = model.encode(x).sample((3,))  # (3, 5, latent): three draws of each image's z
        likelihood = model.decode_distribution(z)
        log_prob = likelihood.log_prob(x.flatten(1))
        assert log_prob.shape == (3, 5) and likelihood.event_shape == (784,)
        torch.testing.assert_close(log_prob, model.decoder.log_likelihood(x.flatten(1), z))
        means = model.decode(z[0])
    assert means.shape == (5, 1, 28, 28)
    torch.testing.assert_close(likelihood.mean[0].view(5, 1, 28, 28), means)
    with torch.no_grad():
        torch.testing.assert_close(model.reconstruct(x), model.decode(model.encode(x).mean))


def test_elbo_per_image_is_below_the_log_likelihood(model, test_images):
    x = test_images
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        terms = model.elbo(x, num_samples=50)
    assert terms.elbo.shape == terms.recon.shape == terms.kl.shape == (100,)
    torch.testing.assert_close(terms.elbo, -(terms.recon + terms.kl))
    assert (terms.kl > 0).all() and (terms.recon > 0).all()
    gap = model.log_likelihood(x, num_samples=K, seed=0) - terms.elbo.double()
    assert gap.mean() > 0  # the ELBO is a lower bound: below the IS estimate on average


class RunsCode:
    """A pickle that would create a file when loaded beyond plain weights."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bad_paths(run: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """{case: (a path for load, a phrase of the error message)}; each message also says what
    to give instead."""
    saved = torch.load(best_checkpoint(run), weights_only=True)
    paths = {name: tmp_path / f"{name}.ckpt" for name in ("empty", "text", "cut", "foreign")}
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("not a checkpoint")
    paths["cut"].write_bytes(best_checkpoint(run).read_bytes()[:3000])
    torch.save({"weights": torch.zeros(3)}, paths["foreign"])
    # A run folder whose best checkpoint is a pickle that would run code.
    code = tmp_path / "code_run"
    (code / "checkpoints").mkdir(parents=True)
    shutil.copyfile(run / "config.yaml", code / "config.yaml")
    with open(code / "checkpoints" / "best-epoch000.ckpt", "wb") as f:
        pickle.dump(RunsCode(tmp_path / "code-was-run"), f, protocol=2)
    # Weights of a 2-D latent under settings that say 3.
    shape = tmp_path / "other_shape.ckpt"
    torch.save({**saved, "hyper_parameters": {**saved["hyper_parameters"], "latent_dim": 3}}, shape)
    (tmp_path / "no_checkpoint" / "checkpoints").mkdir(parents=True)
    not_ours = "is not a checkpoint of this project"
    return {
        "missing": (tmp_path / "nope", "does not exist"),
        "folder without a checkpoint": (tmp_path / "no_checkpoint", "no single best checkpoint"),
        "empty file": (paths["empty"], not_ours),
        "text file": (paths["text"], not_ours),
        "cut short": (paths["cut"], not_ours),
        "foreign file": (paths["foreign"], not_ours),
        "code in a pickle": (code / "checkpoints" / "best-epoch000.ckpt", not_ours),
        "code in a pickle, by its folder": (code, not_ours),
        "another shape": (shape, "weights do not fit the network"),
    }


def test_bad_input_raises_one_clear_user_error_naming_the_path_and_the_fix(run, tmp_path):
    for case, (path, phrase) in bad_paths(run, tmp_path).items():
        with pytest.raises(UserError) as err:
            vae_lightning.load(path)
        message = str(err.value)
        assert phrase in message, case
        assert str(path) in message, case
        assert "Give" in message, case  # what to give instead
        assert "weights_only=False" not in message and "Traceback" not in message, case
    assert not (tmp_path / "code-was-run").exists()  # nothing was unpickled beyond weights


def test_bad_input_to_load_data_is_refused_naming_the_path(run, tmp_path):
    alone = tmp_path / "alone.ckpt"
    shutil.copyfile(best_checkpoint(run), alone)
    with pytest.raises(UserError, match=f"{alone} is not inside a run or record folder"):
        vae_lightning.load_data(alone)
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    with pytest.raises(UserError, match=f"{no_config} has no config.yaml: give a run folder"):
        vae_lightning.load_data(no_config)
    with pytest.raises(UserError, match="does not exist"):
        vae_lightning.load_data(tmp_path / "nope")
    with pytest.raises(ConfigError, match="binarise"):
        vae_lightning.load_data(run, binarise="dynamic")  # a key the data config has not


def run_cli_code(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -c <code>` in a new interpreter of this venv, as a user's script would run."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_api_leaves_matplotlibs_backend_alone(run, tmp_path):
    """In a notebook, plots stay inline after load and load_data (the evaluation's figures
    module, which switches matplotlib to Agg for its PNG files, is not imported)."""
    code = (
        "import sys, matplotlib, vae_lightning; "
        f"vae_lightning.load({str(run)!r}); vae_lightning.load_data({str(run)!r}); "
        "print(matplotlib.get_backend(), 'vae_lightning.evaluation.figures' in sys.modules)"
    )
    result = run_cli_code(code, tmp_path, MPLBACKEND="svg")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "False"]
