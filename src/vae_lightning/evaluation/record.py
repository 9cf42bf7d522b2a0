"""A run's record for the repository: `python -m vae_lightning.evaluation.record RUN --into DIR`.

Copies the small files that the results report reads from a training run folder and its
newest test evaluation (``eval/*_test/``, or the one given by --eval) into ``DIR/<name>/``:
``config.yaml``, ``overrides.yaml`` (the command line's overrides), ``metrics.csv``,
``summary.json``, ``eval.json``, the evaluation's ``per_point.csv`` (each test image's metrics,
for paired differences between records evaluated on the same images: about 0.8 MB for MNIST's
10,000 images, which git stores compressed to under half) and its ``manifold.png`` and
``samples.png``; with --weights, also the evaluated checkpoint's weights and settings (no
optimiser state) as
``checkpoints/<its name>``, so that ``python -m vae_lightning.eval ckpt_path=DIR/<name>``
evaluates the record again; with --snapshots, the newest test evaluation of each evaluated
``checkpoints/snapshot-*.ckpt`` (the weights kept every few epochs) as
``snapshots/<checkpoint name>.json``, for the learning curve of the test log-likelihood; with
--no-figures, without the two figures (e.g. the records of a study, whose report section
shows none). The folder appears whole or not at all: the files are copied into a temporary
folder beside it, which is then renamed. An existing record is replaced only with --replace.
"""

import argparse
import json
import shutil
import tempfile
from fnmatch import fnmatch
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vae_lightning.errors import UserError
from vae_lightning.evaluation.checkpoint import load_checkpoint_file

RUN_FILES = {"config.yaml": "config.yaml", ".hydra/overrides.yaml": "overrides.yaml"}
RUN_FILES |= {"metrics.csv": "metrics.csv", "summary.json": "summary.json"}
EVAL_FILES = ("eval.json", "per_point.csv")
EVAL_FIGURES = ("manifold.png", "samples.png")
SNAPSHOT_PATTERN = "snapshot-*.ckpt"
REQUIRED = ("config.yaml", "metrics.csv", "summary.json")
# What evaluating a checkpoint reads: the weights, the model's settings and the counters.
WEIGHTS_KEYS = ("state_dict", "hyper_parameters", "epoch", "global_step")
WEIGHTS_KEYS += ("pytorch-lightning_version",)


def save_weights(checkpoint: Path, target: Path) -> None:
    """``checkpoint`` without its optimiser, loop and callback states, at ``target``."""
    full = load_checkpoint_file(checkpoint)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: full[k] for k in WEIGHTS_KEYS if k in full}, target)


def newest_test_evaluation(run: Path) -> Path | None:
    """The newest ``eval/<time>_test/`` folder with an eval.json (folder names sort by time)."""
    found = sorted((run / "eval").glob("*_test/eval.json"))
    return found[-1].parent if found else None


def snapshot_evaluations(run: Path) -> dict[str, Path]:
    """{snapshot checkpoint name: the eval.json of its newest test evaluation} of a run."""
    evaluated = {}
    for path in sorted((run / "eval").glob("*_test/eval.json")):  # oldest first
        checkpoint = Path(json.loads(path.read_text())["checkpoint"])
        if fnmatch(checkpoint.name, SNAPSHOT_PATTERN):
            evaluated[checkpoint.stem] = path
    return dict(sorted(evaluated.items()))


def default_name(run: Path) -> str:
    """<data>_latent<size>_<samples seen>, e.g. mnist_latent20_1e7 or frey_face_latent2_2.5e6."""
    summary = json.loads((run / "summary.json").read_text())
    mantissa, exponent = f"{summary['samples_seen']:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    data = OmegaConf.load(run / "config.yaml").data._target_.rsplit(".", 1)[-1]
    stem = {"MNISTDataModule": "mnist", "FreyFaceDataModule": "frey_face"}.get(data, data)
    return f"{stem}_latent{summary['latent_dim']}_{mantissa}e{int(exponent)}"


def collect(
    run: Path,
    into: Path,
    name: str | None = None,
    evaluation: Path | None = None,
    replace: bool = False,
    weights: bool = False,
    figures: bool = True,
    snapshots: bool = False,
) -> Path:
    """Copy the record of ``run`` into ``into/<name>``; returns that folder."""
    missing = [f for f in REQUIRED if not (run / f).is_file()]
    if missing:
        raise UserError(
            f"{run} is not a finished run folder of `python -m vae_lightning.train` (missing: "
            f"{', '.join(missing)}). Give the folder holding its summary.json."
        )
    status = json.loads((run / "summary.json").read_text()).get("status", "completed")
    if status != "completed":
        raise UserError(
            f"{run} is a run whose summary.json says status={status!r}, not 'completed': "
            "record it once it has finished (resume it first if it stopped)."
        )
    evaluation = evaluation or newest_test_evaluation(run)
    if evaluation is not None and not (evaluation / "eval.json").is_file():
        raise UserError(f"--eval {evaluation} holds no eval.json: give an evaluation folder.")
    if weights and evaluation is None:
        raise UserError(
            f"--weights records the evaluated checkpoint, but {run} has no test "
            "evaluation: run `python -m vae_lightning.eval` on it first."
        )
    snapshot_evals = snapshot_evaluations(run) if snapshots else {}
    if snapshots and not snapshot_evals:
        raise UserError(
            f"--snapshots records the test evaluations of {run}/checkpoints/{SNAPSHOT_PATTERN}, "
            "and none was evaluated: run `python -m vae_lightning.eval ckpt_path=<snapshot>` "
            "on them first."
        )
    target = into / (name or default_name(run))
    if target.exists() and not replace:
        raise UserError(f"{target} exists already; pass --replace to replace that record.")
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=into))
    staging.chmod(0o755)
    try:
        for source, copy in RUN_FILES.items():
            if (run / source).is_file():
                shutil.copyfile(run / source, staging / copy)
        for file in (*EVAL_FILES, *(EVAL_FIGURES if figures else ())) if evaluation else ():
            if (evaluation / file).is_file():
                shutil.copyfile(evaluation / file, staging / file)
        for stem, path in snapshot_evals.items():
            (staging / "snapshots").mkdir(exist_ok=True)
            shutil.copyfile(path, staging / "snapshots" / f"{stem}.json")
        if weights:
            evaluated = Path(json.loads((evaluation / "eval.json").read_text())["checkpoint"])
            save_weights(evaluated, staging / "checkpoints" / evaluated.name)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=into))
            target.rename(old / target.name)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders")
    parser.add_argument("--into", type=Path, required=True, help="records folder, e.g. docs/runs")
    parser.add_argument("--name", help="record name (one run only); default from the run")
    parser.add_argument("--eval", type=Path, help="evaluation folder (one run only)")
    parser.add_argument("--replace", action="store_true", help="replace an existing record")
    parser.add_argument(
        "--weights", action="store_true", help="also the evaluated checkpoint, without optimiser"
    )
    parser.add_argument(
        "--snapshots", action="store_true", help="also the test evaluations of its snapshots"
    )
    parser.add_argument(
        "--no-figures", action="store_true", help="without the evaluation's manifold and samples"
    )
    args = parser.parse_args(argv)
    if len(args.runs) > 1 and (args.name or args.eval):
        parser.exit(2, "--name and --eval apply to one run: give one run folder.\n")
    try:
        for run in args.runs:
            target = collect(
                run, args.into, args.name, args.eval, args.replace, args.weights,
                not args.no_figures, args.snapshots,
            )  # fmt: skip
            print(f"Recorded {run} in {target}")
    except UserError as err:
        parser.exit(2, f"{err}\n")


if __name__ == "__main__":
    main()
