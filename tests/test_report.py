"""Records and the results report through the real entry points: a tiny sweep, one
evaluation, its records, and the report regenerated from them byte for byte."""

import contextlib
import filecmp
import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli, tiny_overrides
from hydra import compose, initialize_config_dir
from PIL import Image

from vae_lightning import report
from vae_lightning.config import config_dir
from vae_lightning.eval import evaluate
from vae_lightning.evaluation import record
from vae_lightning.report.figures import log_spaced
from vae_lightning.report.records import Record, load_record, training_hours
from vae_lightning.report.tables import validation_elbos_at

# The record and report commands run in this process (their command lines as given to
# `python -m ...`); one report run below goes through the real `python -m` entry point.

# Tiny MNIST: 250 training images in minibatches of 50, 2 epochs.
SAMPLES_SEEN = 2 * 250


def run_main(main, args: list[str], cwd: Path, capsys=None) -> tuple[int, str]:
    """`main(args)` of a command run in `cwd`: its exit code and what it wrote to stderr."""
    with contextlib.chdir(cwd):
        try:
            main(args)
            code = 0
        except SystemExit as exit:
            code = exit.code
    return code, capsys.readouterr().err if capsys else ""


def evaluate_in_process(overrides: list[str]) -> None:
    """`python -m vae_lightning.eval <overrides>`, composed and run in this process."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        evaluate(compose("eval", overrides=overrides))


def same_tree(a: Path, b: Path) -> bool:
    """The same files with the same bytes under both folders."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


@pytest.fixture(scope="module")
def records(tiny_data, tmp_path_factory) -> Path:
    """records/<name>/ of a latent 2 and 3 sweep, the latent-2 run evaluated on 50 points."""
    tmp_path = tmp_path_factory.mktemp("report")
    sweep = tmp_path / "sweep"
    args = [*tiny_overrides(tiny_data, tmp_path), "model.latent_dim=2,3", "logger=csv"]
    result = run_cli("vae_lightning.train", [*args, f"hydra.sweep.dir={sweep}", "-m"], tmp_path)
    assert result.returncode == 0, result.stderr
    evaluation = ["num_importance_samples=10", "chunk_size=5", "num_points=50"]
    evaluate_in_process([*evaluation, f"ckpt_path={sweep / '0'}"])
    command = ["sweep/0", "sweep/1", "--into", "records"]
    assert run_main(record.main, command, tmp_path) == (0, "")
    (tmp_path / "records" / "discussion.md").write_text(
        "The budget is ${samples(mnist_latent2_*)} samples.\n"
    )
    return tmp_path


def test_records_hold_the_small_files_and_are_never_overwritten(records, capsys):
    folder = records / "records"
    assert sorted(p.name for p in folder.iterdir()) == [
        "discussion.md",
        "mnist_latent2_5e2",
        "mnist_latent3_5e2",
    ]
    assert sorted(p.name for p in (folder / "mnist_latent2_5e2").iterdir()) == [
        "config.yaml",
        "eval.json",
        "manifold.png",
        "metrics.csv",
        "overrides.yaml",
        "per_point.csv",
        "samples.png",
        "summary.json",
    ]
    # Each test image's values, as the report reads them for paired differences.
    per_point = load_record(folder / "mnist_latent2_5e2").per_point
    evaluated = json.loads((folder / "mnist_latent2_5e2" / "eval.json").read_text())
    assert len(per_point) == evaluated["num_data_points"] == 50
    mean = sum(point["elbo"] for point in per_point.values()) / 50
    assert mean == pytest.approx(evaluated["metrics"]["elbo"]["mean"], abs=1e-5)
    assert not (folder / "mnist_latent3_5e2" / "eval.json").exists()  # never evaluated
    code, err = run_main(record.main, ["sweep/1", "--into", "records"], records, capsys)
    assert code == 2 and "exists already" in err
    unfinished = records / "unfinished"
    shutil.copytree(records / "sweep" / "1", unfinished)
    (unfinished / "summary.json").write_text(json.dumps({"status": "running", "latent_dim": 3}))
    code, err = run_main(record.main, ["unfinished", "--into", "records"], records, capsys)
    assert code == 2 and "status='running'" in err
    replace = ["sweep/1", "--into", "records", "--replace"]
    assert run_main(record.main, replace, records) == (0, "")
    assert sorted(p.name for p in folder.iterdir())[1:] == [
        "mnist_latent2_5e2",
        "mnist_latent3_5e2",
    ]


def assert_tables_are_whole(markdown: str) -> None:
    """Every row of every table has as many cells as its header."""
    tables = [[]]
    for line in markdown.splitlines():
        if line.startswith("|"):
            tables[-1].append(line.strip("|").split(" | "))
        elif tables[-1]:
            tables.append([])
    for table in filter(None, tables):
        assert {len(row) for row in table} == {len(table[0])}, table[:2]


def test_report_is_regenerated_byte_for_byte_from_records(records):
    result = run_cli("vae_lightning.report", ["records", "--out", "first"], cwd=records)
    assert result.returncode == 0, result.stderr
    assert run_main(report.main, ["records", "--out", "second"], records) == (0, "")
    assert same_tree(records / "first", records / "second")
    text = (records / "first" / "results.md").read_text()
    assert str(records) not in text  # relative paths only
    assert_tables_are_whole(text)
    rows = [line.strip("| ").split(" | ") for line in text.splitlines()]
    rows = [row for row in rows if row[0] in ("2", "3") and len(row) == 12]  # the results table
    assert [row[1] for row in rows] == [f"{SAMPLES_SEEN:,}"] * 2
    latent2, latent3 = rows
    assert latent2[2] == "50 of 100 (seed 0)" and latent2[6] == "10"
    assert " ± " in latent2[3] and " ± " in latent2[4] and " ± " in latent2[5]
    # The evaluation's latent diagnostics: its active units of the latent size.
    diagnostics = json.loads((records / "records" / "mnist_latent2_5e2" / "eval.json").read_text())
    assert latent2[7] == f"{diagnostics['latent']['active_units']} of 2"
    assert latent3[2] == "all" and latent3[4] == "—" and latent3[7] == "—"  # no evaluation
    assert latent2[11] == "dynamic" and latent2[10].endswith("CPU")
    assert "Active units, as Burda et al. (2016), section 5.2, count them" in text
    assert "above 0.01, out of the latent size." in text and "predates" not in text
    assert "standard error over the points" in text and "lower bound on the mean KL" in text
    assert "The budget is 5 x 10^2 samples." in text  # the template, filled in
    assert "- `records/mnist_latent2_5e2`" in text and "- `records/mnist_latent3_5e2`" in text
    figures = records / "first" / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [
        "mnist_elbo_curves.png",
        "mnist_latent2_500_manifold.png",
        "mnist_latent2_500_samples.png",
    ]
    assert Image.open(figures / "mnist_elbo_curves.png").size == (800, 450)  # two panels
    assert Image.open(figures / "mnist_latent2_500_manifold.png").width == 800


def test_a_study_is_reported_in_its_own_section_with_the_settings_that_differ(records):
    study = records / "with_study" / "latent_study"
    command = ["sweep/0", "sweep/1", "--into", str(study), "--no-figures"]
    assert run_main(record.main, command, records) == (0, "")
    assert not list(study.rglob("*.png")) and (study / "mnist_latent2_5e2" / "eval.json").is_file()
    (study / "study.md").write_text("# Latent sizes\n\nTwo sizes side by side.\n")
    # In this process: the report's command line is tested above.
    text = report.write_report([records / "with_study"], records / "out").read_text()
    assert "## Latent sizes\n\nTwo sizes side by side.\n" in text
    assert "## MNIST" not in text  # study records are not also in the grid
    rows = [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    assert [row[:3] for row in rows] == [
        ["`mnist_latent2_5e2`", "`model.latent_dim=2`", "2"],
        ["`mnist_latent3_5e2`", "`model.latent_dim=3`", "3"],
    ]
    evaluated = json.loads((study / "mnist_latent2_5e2" / "eval.json").read_text())["metrics"]
    train = json.loads((study / "mnist_latent2_5e2" / "summary.json").read_text())["metrics"]
    assert rows[0][4] == "50 of 100 (seed 0)" and rows[1][6] == "—"  # latent 3: no evaluation
    assert rows[0][8].endswith(" of 2") and rows[1][8] == "—"  # active units
    assert rows[0][9] == f"{train['train/elbo'] - evaluated['elbo']['mean']:.2f}"


def test_report_writes_outside_docs_by_default(records):
    assert run_main(report.main, ["records"], records) == (0, "")
    assert (records / "outputs" / "report" / "results.md").is_file()
    assert not (records / "docs").exists()


def test_curves_are_thinned_to_log_spaced_points():
    curve = [(50 * (i + 1), float(i)) for i in range(2000)]
    thinned = log_spaced(curve, 40)
    assert thinned[0] == curve[0] and thinned[-1] == curve[-1] and len(thinned) <= 40
    step = math.log(curve[-1][0] / curve[0][0]) / 39  # of the log-spaced grid
    gaps = [math.log(b[0] / a[0]) for a, b in itertools.pairwise(thinned[10:])]
    assert max(gaps) < 2 * step  # no holes where the epochs are dense
    assert log_spaced(curve[:1]) == curve[:1]  # a one-epoch run keeps its point


def test_validation_elbo_at_a_budget_is_the_first_epoch_end_past_it(tmp_path):
    rows = ["epoch,step,train/elbo,val/elbo", "0,99,-200,", "0,99,,-150", "1,199,,-140"]
    (tmp_path / "metrics.csv").write_text("\n".join([*rows, "2,299,,-130"]) + "\n")
    run = Record(
        folder=tmp_path, data="MNISTDataModule", summary={}, batch_size=100, evaluation=None,
        eval_folder=None, experiment=None, overrides=[], study=None, snapshots=[],
    )  # fmt: skip
    # 100 steps of 100 samples; the run stopped before 30,001.
    assert validation_elbos_at(run, (10_000, 10_001, 30_001)) == [-150, -140, None]


COMMITTED = ROOT / "docs" / "runs"


@pytest.mark.skipif(
    not any(COMMITTED.glob("*/summary.json")), reason="no records committed under docs/runs"
)
def test_committed_records_regenerate_docs_results(tmp_path):
    """`python -m vae_lightning.report docs/runs --out docs` made docs/results.md and figures."""
    out = tmp_path / "docs"
    result = run_cli("vae_lightning.report", ["docs/runs", "--out", str(out)], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (out / "results.md").read_text() == (ROOT / "docs" / "results.md").read_text()
    assert_tables_are_whole((out / "results.md").read_text())
    for figure in (out / "figures").iterdir():
        assert filecmp.cmp(figure, ROOT / "docs" / "figures" / figure.name, shallow=False)


def test_a_record_run_of_a_published_model_is_set_beside_its_published_value(tiny_data, tmp_path):
    # Trained through the CLI: the record's overrides.yaml (Hydra's) names the experiment.
    args = [
        "experiment=burda_vae_fast", *tiny_overrides(tiny_data, tmp_path), "logger=csv",
        "data.val_size=50", f"hydra.run.dir={tmp_path / 'run'}",
        "callbacks.snapshots.every_n_epochs=1",
    ]  # fmt: skip
    assert run_cli("vae_lightning.train", args, tmp_path).returncode == 0
    # Weights kept at each epoch's end, each evaluated on 20 seeded test points.
    snapshots = sorted((tmp_path / "run" / "checkpoints").glob("snapshot-*.ckpt"))
    assert [p.name for p in snapshots] == ["snapshot-epoch0000.ckpt", "snapshot-epoch0001.ckpt"]
    assert "optimizer_states" not in torch.load(snapshots[0], weights_only=True)
    for snapshot in snapshots:
        quick = ["num_importance_samples=10", "chunk_size=5", "num_points=20"]
        evaluate_in_process([*quick, f"ckpt_path={snapshot}"])
    evaluate_in_process(
        ["num_importance_samples=10", "chunk_size=5", f"ckpt_path={tmp_path / 'run'}"]
    )
    command = ["run", "--into", "records", "--name", "burda", "--weights", "--snapshots"]
    assert run_main(record.main, command, tmp_path) == (0, "")
    [weights] = (tmp_path / "records" / "burda" / "checkpoints").glob("best-*.ckpt")
    assert "optimizer_states" not in torch.load(weights, weights_only=True)
    again = tmp_path / "records" / "burda"
    evaluate_in_process(["num_importance_samples=10", "chunk_size=5", f"ckpt_path={again}"])
    [evaluated_again] = (tmp_path / "records" / "burda" / "eval").glob("*_test/eval.json")
    assert run_main(report.main, ["records", "--out", "out"], tmp_path) == (0, "")
    text = (tmp_path / "out" / "results.md").read_text()
    assert "## MNIST" not in text and "## Comparison with the paper" not in text  # no grid run
    [row] = [line for line in text.splitlines() if line.startswith("| `burda_vae_fast` |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    evaluated = json.loads((tmp_path / "records" / "burda" / "eval.json").read_text())
    ours = evaluated["metrics"]["log_likelihood_is"]["mean"]
    assert cells[1] == "all 100" and cells[4] == "10" and cells[6] == f"{SAMPLES_SEEN:,}"
    assert cells[5] == f"{evaluated['latent']['active_units']} of 2"
    assert cells[2].startswith(f"{ours:.2f} ± ") and cells[8].startswith("-86.76 (Burda")
    assert cells[9] == f"{ours + 86.76:+.2f}"
    # The committed weights alone give the record's number again.
    assert json.loads(evaluated_again.read_text())["metrics"] == evaluated["metrics"]
    assert (tmp_path / "out" / "figures" / "records_learning_curves.png").is_file()
    # The snapshots' evaluations, for the learning curve of the test log-likelihood.
    kept = load_record(tmp_path / "records" / "burda").snapshots
    assert [e["checkpoint_step"] for e in kept] == [5, 10]  # 250 training images, batch 50
    assert [e["subset"]["num_points"] for e in kept] == [20, 20]
    # Each is drawn at the hours of the epoch end it was saved at (rows logged at step - 1).
    ends = {step for _, step in training_hours(load_record(tmp_path / "records" / "burda"))}
    assert {e["checkpoint_step"] - 1 for e in kept} <= ends
