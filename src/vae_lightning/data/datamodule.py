"""A LightningDataModule that holds each split in memory as one tensor."""

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
from torch import Tensor

from vae_lightning.data.files import default_cache_dir
from vae_lightning.data.loader import EpochOrder, TensorBatchLoader
from vae_lightning.errors import DataError

BINARIZATIONS = ("dynamic", "static", "none")
# Images with their labels (or None), as a data module reads them.
Labelled = tuple[Tensor, Tensor | None]


def block_permutation(n: int, block: int, seed: int) -> Tensor:
    """A seeded permutation of range(n) that keeps runs of `block` consecutive indices
    together (the last run may be shorter); block = 1 is torch.randperm(n)."""
    blocks = torch.randperm(-(-n // block), generator=torch.Generator().manual_seed(seed))
    order = (blocks[:, None] * block + torch.arange(block)).flatten()
    return order[order < n]


def hold_out(
    images: Tensor, labels: Tensor | None, sizes: dict[str, int], seed: int, block: int = 1
) -> dict[str, Labelled]:
    """Split images into 'train' and the held-out splits of `sizes` ({split: count}).

    The held-out splits take, in the order of `sizes`, the next `count` positions of
    `block_permutation(len(images), block, seed)`; training gets the rest, in that order.
    """
    order = block_permutation(len(images), block, seed)
    held, start = {}, 0
    for split, count in sizes.items():
        held[split], start = order[start : start + count], start + count
    parts = {"train": order[start:], **held}
    return {
        split: (images[idx], None if labels is None else labels[idx])
        for split, idx in parts.items()
    }


def unit_interval(images: Tensor) -> Tensor:
    """Images as float32 in [0, 1]: uint8 grey levels divided by 255, floats as they are."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


class InMemoryDataModule(L.LightningDataModule):
    """Images in [0, 1] of shape `image_shape`, split into train/val/test tensors.

    Binarisation of grey levels p into x ~ Bernoulli(p):
      - ``dynamic``: a fresh draw for every training batch; validation and test use one
        fixed draw (the i-th split of train, val, test seeded by 10 * ``split_seed`` + i), so
        their ELBO is comparable across epochs and the same test images are drawn again;
      - ``static``: one fixed draw of every split, made once;
      - ``none``: grey levels as they are.
    On an accelerator the splits are moved to the device once, in `setup`, so batches are
    cut there with no per-step host-to-device copy. Subclasses say what the data are and
    how to load them.
    """

    name: ClassVar[str]
    image_shape: ClassVar[tuple[int, ...]]
    default_likelihood: ClassVar[str]  # the paper's decoder for these data
    default_hidden_dims: ClassVar[tuple[int, ...]]  # the paper's hidden layer size

    def __init__(
        self,
        data_dir: str | Path = "data",
        cache_dir: str | Path | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: str = "none",
        split_seed: int = 0,
        download: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.binarize, self.split_seed = binarize, split_seed
        self.download, self.seed = download, seed
        self.splits: dict[str, Tensor] = {}
        self.labels: dict[str, Tensor | None] = {}
        self._loading: Future | None = None

    def locate(self) -> None:
        """Make sure the data files are present and intact, downloading them if allowed."""
        raise NotImplementedError

    def load(self) -> dict[str, Labelled]:
        """{split: (images as float in [0, 1] of shape (n, *image_shape), labels or None)}."""
        raise NotImplementedError

    def split_sizes(self) -> dict[str, int]:
        """{split: number of images} as the files and the split settings give them, read
        from the files' headers without loading the images (after `prepare_data`). A split
        the settings leave empty, or one they ask more images of than there are, is 0."""
        raise NotImplementedError

    # The setting that chose `data_dir`, named in messages (the entry points set the one the
    # user set: data.data_dir, paths.data_dir or $VAE_DATA_DIR).
    data_dir_key = "data.data_dir"

    def prepare_data(self) -> None:
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise DataError(
                f"{self.data_dir_key}={self.data_dir} is a file, not a folder. Point "
                f"{self.data_dir_key} at the folder that holds the data files (MNIST/raw/..., "
                "frey_rawface.mat)."
            )
        self.locate()

    def start_loading(self) -> None:
        """Read the data files in a thread of this process; `setup` waits for them.

        Training starts its loggers (W&B) and the Trainer meanwhile, so that the time spent
        on reading the files (torch and file reads release the GIL) is not added to theirs.
        """
        if not self.splits and self._loading is None:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-data")
            self._loading = pool.submit(self.load)
            pool.shutdown(wait=False)  # the thread ends when the files are read

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        loading, self._loading = self._loading, None
        loaded = loading.result() if loading is not None else self.load()
        for index, (split, (images, labels)) in enumerate(loaded.items()):
            if self.binarize == "static" or (self.binarize == "dynamic" and split != "train"):
                # One draw per split, the same in both modes: static's test set is dynamic's.
                generator = torch.Generator().manual_seed(self.split_seed * 10 + index)
                images = torch.bernoulli(images, generator=generator)
            self.splits[split], self.labels[split] = images.to(device), labels

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        if self.binarize == "dynamic" and self.trainer is not None and self.trainer.training:
            return torch.bernoulli(batch)
        return batch

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> TensorBatchLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        # Evaluation batches are whole blocks, the same on any number of processes.
        order = EpochOrder(
            len(self.splits[split]), shuffle, self.seed, rank, world, even=shuffle, block=batch_size
        )
        return TensorBatchLoader(self.splits[split], batch_size, order)

    def train_dataloader(self) -> TensorBatchLoader:
        loader = self._loader("train", self.batch_size, shuffle=True)
        if self.trainer is not None:  # batches trained this epoch, for mid-epoch checkpoints
            progress = self.trainer.fit_loop.epoch_loop.batch_progress
            loader.consumed = lambda: progress.current.processed
        return loader

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


class PooledDataModule(InMemoryDataModule):
    """Data that come as one pool of images, from which the splits are drawn.

    A permutation seeded by ``split_seed`` sets aside ``val_size`` and then ``test_size``
    images; the rest are for training. With ``split_block`` = b > 1 the permutation moves
    runs of b consecutive images as one (for frames of a video: a held-out frame's
    neighbours are held out with it); b = 1 draws the images one by one. Subclasses read the
    pool (`read_pool`) and count it (`pool_size`); the pool is read once per process.
    """

    def __init__(
        self,
        *args,
        val_size: int = 200,
        test_size: int = 200,
        split_block: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.val_size, self.test_size, self.split_block = val_size, test_size, split_block
        self._pool: Labelled | None = None
        self._pool_lock = threading.Lock()  # `load` may run in a thread of its own

    def read_pool(self) -> Labelled:
        """(images of shape (n, *image_shape), uint8 or float in [0, 1]; labels or None)."""
        raise NotImplementedError

    def pool_size(self) -> int:
        """The number of images in the pool (after `prepare_data`)."""
        raise NotImplementedError

    def pool(self) -> Labelled:
        """The pool as `read_pool` reads it, read on the first call only."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = self.read_pool()
            return self._pool

    def split_sizes(self) -> dict[str, int]:
        n = self.pool_size()
        val = min(self.val_size, n)
        test = min(self.test_size, n - val)
        return {"train": n - val - test, "val": val, "test": test}

    def load(self) -> dict[str, Labelled]:
        images, labels = self.pool()
        sizes = {"val": self.val_size, "test": self.test_size}
        splits = hold_out(images, labels, sizes, self.split_seed, self.split_block)
        return {split: (unit_interval(x), y) for split, (x, y) in splits.items()}
