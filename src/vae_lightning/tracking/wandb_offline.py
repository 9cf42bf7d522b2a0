"""Read an offline W&B run back (its `run-<id>.wandb` file) without the network.

`python -m vae_lightning.tracking.wandb_offline <run folder or .wandb file>` prints the run's name,
group, config keys, logged keys, images and summary as JSON.

The file is a LevelDB-style log, as wandb writes it: a 7-byte header (``:W&B``, magic 0xBEE1
little-endian, version 0), then 32 KiB blocks of records, each with a 7-byte header (CRC-32 of
type and data, little-endian uint32; length, uint16; type: 1 full, 2 first, 3 middle, 4 last)
and a chunk of a `wandb_internal_pb2.Record` protobuf.
"""

import json
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
SUMMARY_KINDS = ("min", "max", "mean", "best", "last", "first")


def wandb_file(path: str | Path) -> Path:
    """The .wandb file of a run folder (offline-run-*/), or the file itself."""
    path = Path(path)
    if path.is_file():
        return path
    files = sorted(path.rglob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb file under {path}, found {len(files)}")
    return files[0]


def read_records(path: str | Path) -> Iterator[Any]:
    """The `Record` protobufs of a .wandb file, in order; a torn last record is skipped."""
    from wandb.proto import wandb_internal_pb2

    data = wandb_file(path).read_bytes()
    if data[: len(HEADER)] != HEADER:
        raise ValueError(f"{path} is not a W&B run file (bad header)")
    pos, pending = len(HEADER), b""
    while pos + RECORD_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER:  # block trailer: zero padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER])
        chunk = data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind == 0 and length == 0:
            break
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
            break  # the writer stopped mid-record
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(path: str | Path) -> dict[str, Any]:
    """What a run logged: name, group, tags, config, history rows, metric definitions,
    summary, files, artifacts."""
    run: dict[str, Any] = {
        "history": [],
        "summary": {},
        "config": {},
        "metrics": {},
        "files": [],
        "artifacts": [],
        "exit_code": None,
    }
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, name=r.display_name, group=r.run_group, tags=list(r.tags))
            run["project"] = r.project
            for item in r.config.update:
                run["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                keys = list(item.nested_key) or [item.key]
                if len(keys) > 1 and keys[-1] != "_type":
                    continue  # image fields other than its type
                row["/".join(keys[:-1]) if len(keys) > 1 else keys[0]] = json.loads(item.value_json)
            run["history"].append(row)
        elif kind == "metric":  # define_metric: a chart's x axis and the summary kept
            metric = record.metric
            run["metrics"][metric.name or metric.glob_name] = {
                "step_metric": metric.step_metric,
                "summary": [k for k in SUMMARY_KINDS if getattr(metric.summary, k)],
            }
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "files":
            run["files"] += [f.path for f in record.files.files]
        elif kind == "artifact":
            run["artifacts"].append({"name": record.artifact.name, "type": record.artifact.type})
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def logged_values(path: str | Path) -> tuple[dict[tuple[int, str], float], int]:
    """({(step, metric): value} of the run's history, the number of pairs logged again), as
    metrics.csv holds them: the step is Lightning's (``trainer/global_step``); W&B's own keys
    (``_step``, ...), the trainer's axes, ``epoch`` and images are left out."""
    values: dict[tuple[int, str], float] = {}
    repeats = 0
    for row in read_run(path)["history"]:
        if "trainer/global_step" not in row:
            continue
        step = int(row["trainer/global_step"])
        for key, value in row.items():
            if key.startswith(("_", "trainer/")) or key == "epoch" or isinstance(value, str):
                continue
            repeats += (step, key) in values
            values[step, key] = float(value)
    return values, repeats


def describe(path: str | Path) -> dict[str, Any]:
    """A short account of a run: scalar keys, image keys, config keys, summary."""
    run = read_run(path)
    scalars, images = set(), set()
    for row in run["history"]:
        for key, value in row.items():
            if key.startswith("_"):
                continue
            (images if isinstance(value, str) and "image" in value else scalars).add(key)
    return {
        "name": run.get("name"),
        "group": run.get("group"),
        "project": run.get("project"),
        "scalars": sorted(scalars),
        "images": sorted(images),
        "image_files": sorted(f for f in run["files"] if f.startswith("media/")),
        "config_keys": sorted(k for k in run["config"] if not k.startswith("_")),
        "summary": {k: v for k, v in sorted(run["summary"].items()) if not k.startswith("_")},
        "artifacts": run["artifacts"],
        "exit_code": run["exit_code"],
    }


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(json.dumps(describe(argument), indent=2, default=str))
