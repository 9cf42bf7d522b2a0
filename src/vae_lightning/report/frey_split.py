"""The test frames of a Frey Face split, exactly as the data module draws them.

The data module's ``hold_out`` cuts the frames into runs of ``split_block`` consecutive
frames (the last run shorter when the block does not divide the frames), shuffles the runs
with ``split_seed``, and gives the first ``val_size`` frames of the result to validation, the
next ``test_size`` to test and the rest to training. So a test split is whole runs, except
that the run at its end may be cut. Frames are numbered from 0 in the file's order.
"""

import torch

from vae_lightning.data.datamodule import hold_out
from vae_lightning.literature import FREY_FACE_FRAMES
from vae_lightning.report.records import TEST_IMAGE_SETTINGS, Record

DEFAULTS = TEST_IMAGE_SETTINGS["FreyFaceDataModule"]


def split_of(record: Record) -> dict[str, set[int]]:
    """{split: its frames} of a Frey Face record's split."""
    data = {key: record.setting(f"data.{key}") for key in DEFAULTS}
    sizes = {"val": data["val_size"], "test": data["test_size"]}
    frames = torch.arange(FREY_FACE_FRAMES)
    splits = hold_out(frames, None, sizes, data["split_seed"], data["split_block"])
    return {split: set(chosen.tolist()) for split, (chosen, _) in splits.items()}


def runs(frames: set[int]) -> list[tuple[int, int]]:
    """The runs of consecutive frames, as (first, last)."""
    found: list[tuple[int, int]] = []
    for frame in sorted(frames):
        if found and found[-1][1] == frame - 1:
            found[-1] = (found[-1][0], frame)
        else:
            found.append((frame, frame))
    return found


def next_to_training(record: Record) -> int:
    """How many test frames have a neighbouring frame (one before or after) in training."""
    split = split_of(record)
    return sum(bool({frame - 1, frame + 1} & split["train"]) for frame in split["test"])


def cut(record: Record) -> str:
    """How the record's split cuts the frames, e.g. '39 runs of 50 and one of 15 (frames
    1950-1964)'."""
    block = record.setting("data.split_block")
    whole, rest = divmod(FREY_FACE_FRAMES, block)
    text = f"{whole:,} runs of {block}"
    return text + (
        f" and one of {rest} (frames {whole * block}-{FREY_FACE_FRAMES - 1})" if rest else ""
    )


def test_frames_table(records: list[Record]) -> str:
    """A markdown table: per record its split seed, its test frames as runs (for splits in
    runs) and how many of them have a neighbour in training."""
    lines = [
        "| record | split seed | test frames | test frames next to a training frame |",
        "| --- | --- | --- | --- |",
    ]
    for r in records:
        test = split_of(r)["test"]
        shown = ", ".join(f"{a}-{b}" if a < b else f"{a}" for a, b in runs(test))
        if r.setting("data.split_block") == 1:
            shown = f"{len(test)} drawn one by one"
        seed = r.setting("data.split_seed")
        lines.append(
            f"| `{r.folder.name}` | {seed} | {shown} | {next_to_training(r)} of {len(test)} |"
        )
    return "\n".join(lines)
