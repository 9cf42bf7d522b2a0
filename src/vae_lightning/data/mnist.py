"""MNIST: 70,000 handwritten digits of 28 x 28 pixels, read from the original gzip IDX files."""

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.data.files import fetch, unpacked_copy

# The four original files by role, and their md5 sums as torchvision lists them.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MNIST_MD5 = {role: dict(MNIST.resources)[name] for role, name in MNIST_FILES.items()}


class MNISTDataModule(InMemoryDataModule):
    """MNIST in torchvision's layout, ``<data_dir>/MNIST/raw/*-ubyte.gz``.

    The 60,000 training images are split into train and validation (``val_size``) by a
    permutation seeded with ``split_seed``; the test split is the official 10,000.
    Unpacked files go to ``<cache_dir>/MNIST/raw``, never into ``data_dir``.
    """

    name = "mnist"
    image_shape = (1, 28, 28)
    default_likelihood = "bernoulli"
    default_hidden_dims = (500,)
    test_size = 10_000  # the official test split

    def __init__(
        self,
        *args,
        val_size: int = 10_000,
        checksums: dict[str, str] | None = None,  # md5 by role, as MNIST_MD5
        mirrors: list[str] | None = None,
        binarize: str = "dynamic",
        **kwargs,
    ) -> None:
        super().__init__(*args, binarize=binarize, **kwargs)
        self.val_size = val_size
        self.checksums = dict(checksums or MNIST_MD5)
        self.mirrors = list(mirrors or MNIST.mirrors)

    def locate(self) -> dict[str, Path]:
        """{role: unpacked file} from the verified `.gz` files in ``<data_dir>/MNIST/raw``.

        Only the folder the user named is read (missing files are downloaded into it). An
        unpacked copy in the cache is used only when its manifest says it was unpacked from a
        file with this md5 and its size still matches; otherwise it is unpacked again.
        """
        folder = self.data_dir / "MNIST" / "raw"
        unpacked = {}
        for role, gz_name in MNIST_FILES.items():
            urls = [mirror + gz_name for mirror in self.mirrors]
            md5 = self.checksums[role]
            gz = fetch(gz_name, [folder], urls, {"md5": md5}, self.download, self.data_dir_key)
            target = self.cache_dir / "MNIST" / "raw" / gz_name.removesuffix(".gz")
            unpacked[role] = unpacked_copy(gz, md5, target)
        return unpacked

    def split_sizes(self) -> dict[str, int]:
        """The images of each split, from the IDX files' headers (magic, then the count)."""
        files, counts = self.locate(), {}
        for split in ("train", "test"):
            with open(files[f"{split}_images"], "rb") as f:
                counts[split] = int.from_bytes(f.read(8)[4:8], "big")
        return {
            "train": max(counts["train"] - self.val_size, 0),
            "val": min(self.val_size, counts["train"]),
            "test": counts["test"],
        }

    def load(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        files = self.locate()
        images = {}
        for split in ("train", "test"):
            pixels = read_image_file(str(files[f"{split}_images"]))
            labels = read_label_file(str(files[f"{split}_labels"]))
            images[split] = (pixels.unsqueeze(1).float().div_(255), labels)
        train_x, train_y = images["train"]
        order = torch.randperm(
            len(train_x), generator=torch.Generator().manual_seed(self.split_seed)
        )
        train_idx, val_idx = order[self.val_size :], order[: self.val_size]
        return {
            "train": (train_x[train_idx], train_y[train_idx]),
            "val": (train_x[val_idx], train_y[val_idx]),
            "test": images["test"],
        }
