"""Run records as the report reads them.

A record is a folder with a run's ``config.yaml``, ``summary.json``, ``metrics.csv`` and the
``eval.json`` (and, where kept, ``per_point.csv``) of its test evaluation, as
``python -m vae_lightning.evaluation.record`` copies them into ``docs/runs/<name>/``. A
training run folder is read the same way, its evaluation being the newest ``eval/*_test/``.
A record's name is its path below the folder it was found under (``mnist_latent20_1e7``,
``frey_split/latent2_frames_seed0``): the discussion's placeholders name records so.
"""

import csv
import fnmatch
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vae_lightning.errors import UserError

# The data module class of a run's config (data._target_) -> (file name stem, title).
DATA_SETS = {
    "MNISTDataModule": ("mnist", "MNIST"),
    "FreyFaceDataModule": ("frey_face", "Frey Face"),
}
# The data settings that choose (and, for MNIST, binarise) the test images, with their
# defaults: two records of a data set with the same values were tested on the same images.
TEST_IMAGE_SETTINGS = {
    "MNISTDataModule": {"split_seed": 0, "binarize": "dynamic"},
    "FreyFaceDataModule": {"split_seed": 0, "split_block": 1, "val_size": 200, "test_size": 200},
}
STUDY = "study.md"


@dataclass
class Record:
    """One run: its data set, summary, global minibatch size and test evaluation, if any."""

    folder: Path
    data: str  # the data module class, e.g. MNISTDataModule
    summary: dict[str, Any]
    batch_size: int
    evaluation: dict[str, Any] | None
    eval_folder: Path | None
    experiment: str | None  # the `experiment=` of its command line
    overrides: list[str]  # its command line's overrides
    study: Path | None  # the folder of the study it belongs to (STUDY), if any
    snapshots: list[dict[str, Any]]  # test evaluations of its snapshots (record --snapshots)
    name: str = ""  # its path below the folder it was found under
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return self.summary["latent_dim"]

    @property
    def samples_seen(self) -> int:
        return self.summary.get("samples_seen", self.summary["steps"] * self.batch_size)

    @property
    def title(self) -> str:
        return DATA_SETS.get(self.data, (self.data, self.data))[1]

    @property
    def stem(self) -> str:
        return DATA_SETS.get(self.data, (self.data, self.data))[0]

    @property
    def latent_diagnostics(self) -> dict[str, Any] | None:
        """The evaluation's latent diagnostics (eval.json's ``latent``: ``active_units``,
        ``active_unit_threshold``, ``kl_per_dim``, ...); None for an evaluation that predates
        them, or none."""
        return (self.evaluation or {}).get("latent")

    def metric(self, name: str) -> dict[str, float] | None:
        """{mean, sem} of an evaluation metric, if the evaluation computed it."""
        return (self.evaluation or {}).get("metrics", {}).get(name)

    def setting(self, path: str) -> Any:
        """The value at a dotted path of the run's config, e.g. 'model.optimizer.lr'; a data
        setting of TEST_IMAGE_SETTINGS that an older config lacks has its default."""
        value: Any = self.config
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                defaults = TEST_IMAGE_SETTINGS.get(self.data, {})
                if path.startswith("data.") and (default := path[5:]) in defaults:
                    return defaults[default]
                raise UserError(f"{self.name}: its config has no {path!r}.")
            value = value[key]
        return value

    @property
    def test_images(self) -> tuple:
        """What fixes the evaluated test images: the data set, the evaluation's subset and the
        data settings of TEST_IMAGE_SETTINGS."""
        subset = (self.evaluation or {}).get("subset") or {}
        defaults = TEST_IMAGE_SETTINGS.get(self.data, {})
        chosen = tuple(self.setting(f"data.{key}") for key in defaults)
        return self.data, subset.get("indices_sha256"), subset.get("split_size"), chosen

    @cached_property
    def per_point(self) -> dict[int, dict[str, float]] | None:
        """{test image index: {metric: value}} of the evaluation's per_point.csv, if kept."""
        path = self.eval_folder / "per_point.csv" if self.eval_folder else None
        if path is None or not path.is_file():
            return None
        with open(path, newline="") as f:
            return {
                int(row.pop("index")): {k: float(v) for k, v in row.items()}
                for row in csv.DictReader(f)
            }

    @cached_property
    def rows(self) -> list[dict[str, str]]:
        """The rows of its metrics.csv (none for a run logged to W&B only)."""
        path = self.folder / "metrics.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))


def overrides(folder: Path) -> list[str]:
    """The command line's overrides of a record (overrides.yaml) or run folder (.hydra/)."""
    for path in (folder / "overrides.yaml", folder / ".hydra" / "overrides.yaml"):
        if path.is_file():
            return [str(item) for item in OmegaConf.load(path)]
    return []


def experiment(folder: Path) -> str | None:
    """The `experiment=` override of a record or run folder."""
    chosen = [o.split("=", 1)[1] for o in overrides(folder) if o.startswith("experiment=")]
    return chosen[-1] if chosen else None


def load_record(folder: Path, root: Path | None = None) -> Record:
    """The record in ``folder`` (named by its path below ``root``): its own eval.json, else
    the newest ``eval/*_test/``."""
    evaluations = [folder / "eval.json"] if (folder / "eval.json").is_file() else []
    evaluations = evaluations or sorted((folder / "eval").glob("*_test/eval.json"))[-1:]
    config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    data = config["data"]
    summary = json.loads((folder / "summary.json").read_text())
    steps = summary.get("steps") or 0
    return Record(
        folder=folder,
        data=data["_target_"].rsplit(".", 1)[-1],
        summary=summary,
        # samples seen / steps is the global minibatch (all processes).
        batch_size=summary.get("samples_seen", steps * data["batch_size"]) // steps
        if steps
        else data["batch_size"],
        evaluation=json.loads(evaluations[0].read_text()) if evaluations else None,
        eval_folder=evaluations[0].parent if evaluations else None,
        experiment=experiment(folder),
        overrides=overrides(folder),
        study=folder.parent if (folder.parent / STUDY).is_file() else None,
        snapshots=[json.loads(p.read_text()) for p in sorted(folder.glob("snapshots/*.json"))],
        name=folder.relative_to(root).as_posix() if root else folder.name,
        config=config,
    )


def find_records(roots: list[Path]) -> list[Record]:
    """The records (folders with a summary.json) under the roots, by data set, latent size and
    training samples."""
    folders = {p.parent: root for root in roots for p in root.rglob("summary.json")}
    known = list(DATA_SETS)

    def order(record: Record) -> tuple:
        rank = known.index(record.data) if record.data in known else len(known)
        return rank, record.data, record.latent_dim, record.samples_seen, shown(record.folder)

    return sorted((load_record(folder, root) for folder, root in folders.items()), key=order)


def shown(path: Path) -> str:
    """The path relative to the working directory if inside it, else its last two parts."""
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix()
    return "/".join(resolved.parts[-2:])


def read_curve(record: Record, key: str) -> list[tuple[int, float]]:
    """[(step + 1, value)] of the rows of metrics.csv where ``key`` is set (epoch ends)."""
    curve = []
    for row in record.rows:
        if row.get(key) and math.isfinite(value := float(row[key])):
            curve.append((int(float(row["step"])) + 1, value))
    return curve


def training_hours(record: Record) -> list[tuple[float, int]]:
    """[(hours of training steps so far, step)] at each epoch end: each epoch's samples over
    its `train/samples_per_sec`, summed (an epoch logged twice by a resume counts once;
    validation excluded, summed over every process that resumed the run)."""
    rates: dict[int, tuple[int, float]] = {}
    for row in record.rows:
        if row.get("train/samples_per_sec"):
            rates[int(row["epoch"])] = (int(row["step"]), float(row["train/samples_per_sec"]))
    hours, seconds, previous = [], 0.0, -1
    for _, (step, rate) in sorted(rates.items()):
        seconds += (step - previous) * record.batch_size / rate
        hours.append((seconds / 3600, step))
        previous = step
    return hours


def points(evaluation: dict[str, Any]) -> str:
    """An evaluation's points: 'all 10,000', '1,000 of 10,000 (seed 0)' or as first-N ones."""
    subset = evaluation.get("subset")
    if subset is None:  # evaluations before seeded subsets took the first N points
        return f"first {evaluation['num_data_points']:,}"
    if subset["indices_sha256"] == "all":
        return f"all {subset['split_size']:,}"
    return f"{subset['num_points']:,} of {subset['split_size']:,} (seed {subset['seed']})"


def matching(records: list[Record], pattern: str) -> list[Record]:
    """The records whose name matches a shell pattern (fnmatch), in the report's order."""
    found = [r for r in records if fnmatch.fnmatchcase(r.name, pattern)]
    if not found:
        raise UserError(f"No record matches {pattern!r}.")
    return found
