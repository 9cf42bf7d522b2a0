"""Run records (`python -m vae_lightning.evaluation.record`) of run folders written here in
the formats training and evaluation write, so every option is exercised in this process."""

import filecmp
import json
import shutil
from pathlib import Path

import pytest
import torch

from vae_lightning.errors import UserError
from vae_lightning.evaluation import record as record_module
from vae_lightning.evaluation.record import WEIGHTS_KEYS, collect, default_name, main, save_weights
from vae_lightning.report.records import load_record

DATA = {"mnist": "MNISTDataModule", "frey": "FreyFaceDataModule"}
RECORD_FILES = ["config.yaml", "eval.json", "manifold.png", "metrics.csv", "overrides.yaml"]
RECORD_FILES += ["per_point.csv", "samples.png", "summary.json"]


def _evaluation(run: Path, time: str, checkpoint: str, split: str = "test") -> Path:
    folder = run / "eval" / f"{time}_{split}"
    folder.mkdir(parents=True)
    record = {"checkpoint": str(run / "checkpoints" / checkpoint), "split": split, "time": time}
    (folder / "eval.json").write_text(json.dumps(record))
    (folder / "per_point.csv").write_text(f"index,elbo\n0,-{len(time)}.5\n7,-{time[-8:-6]}.25\n")
    for figure in ("manifold.png", "samples.png"):
        (folder / figure).write_bytes(f"{time} {figure}".encode())
    return folder


def _run(
    root: Path, name: str = "run", data: str = "mnist", samples: float = 1e7, latent: int = 2
) -> Path:
    """A finished run folder, its best checkpoint and two snapshots evaluated on the test split."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    target = f"vae_lightning.data.{DATA[data]}" if data in DATA else data
    (run / "config.yaml").write_text(f"data:\n  _target_: {target}\n  batch_size: 100\nseed: 1\n")
    (run / ".hydra" / "overrides.yaml").write_text("- model.latent_dim=2\n")
    (run / "metrics.csv").write_text("epoch,step,val/elbo\n0,9,-100.0\n")
    summary = {"status": "completed", "samples_seen": samples, "latent_dim": latent}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "checkpoints").mkdir()
    full = {key: torch.tensor([1.0]) for key in WEIGHTS_KEYS}
    full |= {"optimizer_states": [torch.zeros(3)], "callbacks": {}, "loops": {}}
    for checkpoint in ("best-epoch009.ckpt", "snapshot-epoch0004.ckpt", "snapshot-epoch0009.ckpt"):
        torch.save(full, run / "checkpoints" / checkpoint)
    _evaluation(run, "2026-01-01_10-00-00", "snapshot-epoch0004.ckpt")
    _evaluation(run, "2026-01-01_11-00-00", "snapshot-epoch0009.ckpt")
    _evaluation(run, "2026-01-01_12-00-00", "snapshot-epoch0004.ckpt")  # evaluated again
    _evaluation(run, "2026-01-01_13-00-00", "best-epoch009.ckpt")
    _evaluation(run, "2026-01-01_14-00-00", "best-epoch009.ckpt", split="val")  # not a test
    return run


def _drop_evaluations(run: Path, pattern: str) -> None:
    for eval_json in run.glob("eval/*/eval.json"):
        if pattern in json.loads(eval_json.read_text())["checkpoint"]:
            shutil.rmtree(eval_json.parent)


def _record(*argv: str | Path) -> int:
    try:
        main([str(a) for a in argv])
    except SystemExit as exit:
        return exit.code
    return 0


def _newest_test(run: Path) -> Path:
    return run / "eval" / "2026-01-01_13-00-00_test"


def test_a_record_holds_copies_of_the_small_files_and_the_newest_test_evaluation(tmp_path, capsys):
    run = _run(tmp_path)
    assert _record(run, "--into", tmp_path / "records") == 0
    record = tmp_path / "records" / "mnist_latent2_1e7"
    assert capsys.readouterr().out == f"Recorded {run} in {record}\n"
    assert sorted(p.name for p in record.iterdir()) == RECORD_FILES
    assert (record.stat().st_mode & 0o777) == 0o755
    copies = [("config.yaml", "config.yaml"), (".hydra/overrides.yaml", "overrides.yaml")]
    for source, copy in copies:
        assert filecmp.cmp(run / source, record / copy, shallow=False)
    for name in ("eval.json", "per_point.csv", "manifold.png", "samples.png"):
        assert filecmp.cmp(_newest_test(run) / name, record / name, shallow=False)
    # The report reads each test image's values from the record, for paired differences.
    assert load_record(record).per_point == {0: {"elbo": -19.5}, 7: {"elbo": -13.25}}
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == [record.name]  # no staging


@pytest.mark.parametrize(
    "data, samples, latent, name",
    [
        ("mnist", 1e7, 20, "mnist_latent20_1e7"),
        ("frey", 2.5e6, 2, "frey_face_latent2_2.5e6"),
        ("mnist", 1.29e8, 50, "mnist_latent50_1.3e8"),
        ("mnist", 500, 3, "mnist_latent3_5e2"),
        ("my.data.OtherModule", 1e6, 5, "OtherModule_latent5_1e6"),
        ("OtherModule", 1e6, 5, "OtherModule_latent5_1e6"),
    ],
)
def test_a_record_is_named_by_data_latent_size_and_samples_seen(
    data, samples, latent, name, tmp_path
):
    assert default_name(_run(tmp_path, data=data, samples=samples, latent=latent)) == name


def test_weights_snapshots_and_no_figures_are_recorded_as_asked(tmp_path):
    run = _run(tmp_path)
    options = ["--weights", "--snapshots", "--no-figures", "--name", "record"]
    assert _record(run, "--into", tmp_path / "records", *options) == 0
    record = tmp_path / "records" / "record"
    assert sorted(p.name for p in record.iterdir()) == [
        "checkpoints", "config.yaml", "eval.json", "metrics.csv", "overrides.yaml",
        "per_point.csv", "snapshots", "summary.json",
    ]  # fmt: skip
    [weights] = (record / "checkpoints").iterdir()
    assert weights.name == "best-epoch009.ckpt"  # the evaluated checkpoint
    assert sorted(torch.load(weights, weights_only=True)) == sorted(WEIGHTS_KEYS)
    snapshots = sorted(p.name for p in (record / "snapshots").iterdir())
    assert snapshots == ["snapshot-epoch0004.json", "snapshot-epoch0009.json"]
    newest = json.loads((record / "snapshots" / "snapshot-epoch0004.json").read_text())
    assert newest["time"] == "2026-01-01_12-00-00"  # its newest evaluation


def test_a_chosen_evaluation_is_recorded_instead_of_the_newest(tmp_path):
    run = _run(tmp_path)
    chosen = run / "eval" / "2026-01-01_10-00-00_test"
    assert _record(run, "--into", tmp_path / "records", "--eval", chosen, "--name", "r") == 0
    for name in ("eval.json", "per_point.csv"):
        assert filecmp.cmp(chosen / name, tmp_path / "records" / "r" / name, shallow=False)


def test_an_evaluation_without_per_point_values_is_recorded_without_them(tmp_path):
    run = _run(tmp_path)
    (_newest_test(run) / "per_point.csv").unlink()  # written before evaluations kept them
    record = collect(run, tmp_path / "records")
    assert sorted(p.name for p in record.iterdir()) == [
        name for name in RECORD_FILES if name != "per_point.csv"
    ]
    assert load_record(record).per_point is None


def test_a_record_is_replaced_only_when_asked(tmp_path, capsys):
    run, records = _run(tmp_path), tmp_path / "records"
    assert _record(run, "--into", records, "--snapshots") == 0
    (run / "metrics.csv").write_text("epoch,step,val/elbo\n0,9,-90.0\n")
    assert _record(run, "--into", records) == 2
    assert "exists already; pass --replace" in capsys.readouterr().err
    record = records / "mnist_latent2_1e7"
    assert (record / "snapshots").is_dir()  # untouched
    assert _record(run, "--into", records, "--replace") == 0
    assert filecmp.cmp(run / "metrics.csv", record / "metrics.csv", shallow=False)
    assert not (record / "snapshots").exists()  # the new record, whole
    assert sorted(p.name for p in records.iterdir()) == [record.name]


def test_an_unevaluated_run_is_recorded_without_evaluation(tmp_path):
    run = _run(tmp_path)
    _drop_evaluations(run, "")
    assert _record(run, "--into", tmp_path / "records") == 0
    record = tmp_path / "records" / "mnist_latent2_1e7"
    assert sorted(p.name for p in record.iterdir()) == [
        "config.yaml", "metrics.csv", "overrides.yaml", "summary.json",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "change, options, message",
    [
        (lambda run: (run / "metrics.csv").unlink(), [], "(missing: metrics.csv)"),
        (
            lambda run: [(run / f).unlink() for f in ("metrics.csv", "summary.json")],
            [],
            "(missing: metrics.csv, summary.json)",
        ),
        (
            lambda run: (run / "summary.json").write_text('{"status": "running"}'),
            [],
            "says status='running', not 'completed': record it once it has finished (resume it "
            "first if it stopped).",
        ),
        (lambda run: None, ["--eval", "{run}/checkpoints"], "holds no eval.json"),
        (lambda run: _drop_evaluations(run, ""), ["--weights"], "has no test evaluation"),
        (
            lambda run: _drop_evaluations(run, "snapshot"),
            ["--snapshots"],
            "and none was evaluated: run `python -m vae_lightning.eval ckpt_path=<snapshot>` on "
            "them first.",
        ),
    ],
)
def test_what_cannot_be_recorded_is_refused_and_nothing_is_written(
    change, options, message, tmp_path, capsys
):
    run = _run(tmp_path)
    change(run)
    argv = [option.format(run=run) for option in options]
    assert _record(run, "--into", tmp_path / "records", *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_name_and_eval_apply_to_one_run_only(tmp_path, capsys):
    one, two = _run(tmp_path, "one"), _run(tmp_path, "two")
    assert _record(one, two, "--into", tmp_path / "records", "--name", "both") == 2
    assert capsys.readouterr().err.endswith(
        "--name and --eval apply to one run: give one run folder.\n"
    )
    assert _record(one, two, "--into", tmp_path / "records", "--eval", _newest_test(one)) == 2
    assert not (tmp_path / "records").exists()


def test_a_record_by_default_has_the_figures_and_no_weights_or_snapshots(tmp_path):
    run, records = _run(tmp_path), tmp_path / "records"
    summary = json.loads((run / "summary.json").read_text())
    del summary["status"]  # written before runs had a status: a finished run
    (run / "summary.json").write_text(json.dumps(summary))
    record = collect(run, records)
    assert sorted(p.name for p in record.iterdir()) == RECORD_FILES
    with pytest.raises(UserError, match="exists already"):
        collect(run, records)


def test_saved_weights_keep_only_what_evaluation_reads(tmp_path):
    run = _run(tmp_path)
    target = tmp_path / "a" / "b" / "weights.ckpt"
    for _ in range(2):  # into new folders, then into the same ones
        save_weights(run / "checkpoints" / "best-epoch009.ckpt", target)
        assert sorted(torch.load(target, weights_only=True)) == sorted(WEIGHTS_KEYS)


def test_the_help_says_what_each_option_does(capsys):
    assert _record("--help") == 0
    help = " ".join(capsys.readouterr().out.split())
    assert "A run's record for the repository: `python -m vae_lightning.evaluation.record" in help
    for option, text in [
        ("runs", "training run folders"),
        ("--into INTO", "records folder, e.g. docs/runs"),
        ("--name NAME", "record name (one run only); default from the run"),
        ("--eval EVAL", "evaluation folder (one run only)"),
        ("--replace", "replace an existing record"),
        ("--weights", "also the evaluated checkpoint, without optimiser"),
        ("--snapshots", "also the test evaluations of its snapshots"),
        ("--no-figures", "without the evaluation's manifold and samples"),
    ]:
        assert f"{option} {text}" in help
    assert _record("run") == 2
    assert "the following arguments are required: --into" in capsys.readouterr().err


def test_a_record_is_assembled_beside_its_place_and_renamed_into_it(tmp_path, monkeypatch):
    run, records = _run(tmp_path), tmp_path / "records" / "nested"
    staged, removed = [], []
    copy, remove = record_module.shutil.copyfile, record_module.shutil.rmtree
    monkeypatch.setattr(
        record_module.shutil, "copyfile", lambda a, b: (staged.append(Path(b).parent), copy(a, b))
    )
    monkeypatch.setattr(
        record_module.shutil, "rmtree", lambda path: (removed.append(Path(path)), remove(path))
    )
    assert _record(run, "--into", records, "--name", "r") == 0
    assert {folder.parent for folder in staged} == {records}
    assert all(folder.name.startswith(".r-") for folder in staged) and not removed
    assert _record(run, "--into", records, "--name", "r", "--replace") == 0
    [old] = removed  # the replaced record, moved aside beside it, then deleted
    assert old.parent == records and old.name.startswith(".r-old-")
    assert sorted(p.name for p in records.iterdir()) == ["r"]


def test_a_record_that_fails_to_copy_leaves_nothing_behind(tmp_path, monkeypatch):
    run, records = _run(tmp_path), tmp_path / "records"
    copy, copied = record_module.shutil.copyfile, []

    def copy_twice(source, target):
        if len(copied) == 2:
            raise OSError("disk full")
        copied.append(target)
        copy(source, target)

    monkeypatch.setattr(record_module.shutil, "copyfile", copy_twice)
    with pytest.raises(OSError, match="disk full"):
        collect(run, records)
    assert list(records.iterdir()) == []
