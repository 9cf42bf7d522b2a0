"""Minibatches of an in-memory tensor by indexing: no per-sample Python work, no collation."""

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class EpochOrder:
    """The order of one epoch's data points, sharded over `world_size` processes.

    Shuffled orders are seeded by (seed, epoch), so a resumed run replays the same orders.
    Lightning calls `set_epoch` at the start of every epoch. With `even` (training), every
    process gets the same number of points; otherwise (evaluation) each point is served to
    exactly one process, with no padding or repeats, in blocks of `block` consecutive points:
    with `block` = batch size, process r gets batches r, r + world_size, ... of the batches a
    single process would see, so each batch is the same under any number of processes.
    """

    def __init__(
        self,
        num_items: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool = False,
        block: int = 1,
    ) -> None:
        self.num_items, self.shuffle, self.seed = num_items, shuffle, seed
        self.rank, self.world_size, self.even, self.block = rank, world_size, even, block
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=generator)
        else:
            order = torch.arange(self.num_items)
        if self.even:
            order = order[: self.num_items - self.num_items % self.world_size]
            return order[self.rank :: self.world_size]
        return order[self._mine()]

    def _mine(self) -> Tensor:
        """Mask of the positions of this process: the blocks rank, rank + world_size, ..."""
        blocks = torch.arange(self.num_items) // self.block
        return blocks % self.world_size == self.rank

    def __len__(self) -> int:
        if self.even:
            return self.num_items // self.world_size
        return int(self._mine().sum())


class TensorBatchLoader:
    """Iterates over `data[indices]` in batches of `batch_size`, in the order of `sampler`.

    Lightning finds `sampler.set_epoch` through the `sampler` attribute, as on a DataLoader.
    The loader is resumable mid-epoch: its state is the epoch and the number of batches
    training has consumed (`consumed`, which the data module reads from the trainer, since
    Lightning fetches one batch ahead), and a loader given that state starts that epoch's
    next iteration after those batches. Lightning saves the state in checkpoints.
    """

    batch_sampler = None  # batches are slices of the sampler's order

    def __init__(
        self,
        data: Tensor,
        batch_size: int,
        sampler: EpochOrder,
        consumed: Callable[[], int] | None = None,
    ) -> None:
        self.data, self.batch_size, self.sampler = data, batch_size, sampler
        self.consumed = consumed
        self._served = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self):
        indices = self.sampler.indices().to(self.data.device)
        first = 0
        if self._resume is not None and self._resume["epoch"] == self.sampler.epoch:
            first = self._resume["batches"] * self.batch_size
        self._resume = None
        self._served = first // self.batch_size
        for start in range(first, len(indices), self.batch_size):
            self._served += 1
            yield self.data[indices[start : start + self.batch_size]]

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        batches = self.consumed() if self.consumed is not None else self._served
        return {"epoch": self.sampler.epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}
