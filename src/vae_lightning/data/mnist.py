"""MNIST and the data sets in its format: 70,000 grey images of 28 x 28 pixels each, read
from the original gzip IDX files in torchvision's layout."""

from pathlib import Path
from typing import ClassVar

from torchvision.datasets import KMNIST, MNIST, FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from vae_lightning.data.datamodule import InMemoryDataModule, Labelled, hold_out, unit_interval
from vae_lightning.data.files import fetch_all, unpacked_copy

# The four original files by role (the same names for every data set in MNIST's format).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def md5_by_role(source: type[MNIST]) -> dict[str, str]:
    """The md5 of each of the four files, as torchvision lists them for `source`."""
    return {role: dict(source.resources)[name] for role, name in MNIST_FILES.items()}


MNIST_MD5 = md5_by_role(MNIST)


class MNISTDataModule(InMemoryDataModule):
    """MNIST in torchvision's layout, ``<data_dir>/MNIST/raw/*-ubyte.gz``.

    The 60,000 training images are split into train and validation (``val_size``) by a
    permutation seeded with ``split_seed``; the test split is the official 10,000.
    Unpacked files go to ``<cache_dir>/MNIST/raw``, never into ``data_dir``. A data set in
    the same format is a subclass naming its torchvision class (`source`: the files' md5
    sums and mirrors) and its folder.
    """

    name = "mnist"
    image_shape = (1, 28, 28)
    default_likelihood = "bernoulli"
    default_hidden_dims = (500,)
    test_size = 10_000  # the official test split
    source: ClassVar[type[MNIST]] = MNIST
    folder: ClassVar[str] = "MNIST"  # <data_dir>/<folder>/raw, as torchvision has it

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
        self.checksums = dict(checksums or md5_by_role(self.source))
        self.mirrors = list(mirrors or self.source.mirrors)

    def locate(self) -> dict[str, Path]:
        """{role: unpacked file} from the verified `.gz` files in ``<data_dir>/<folder>/raw``.

        Only the folder the user named is read (missing files are downloaded into it). An
        unpacked copy in the cache is used only when its manifest says it was unpacked from a
        file with this md5 and its size still matches; otherwise it is unpacked again.
        """
        folder = self.data_dir / self.folder / "raw"
        md5 = {MNIST_FILES[role]: {"md5": value} for role, value in self.checksums.items()}
        names = list(MNIST_FILES.values())
        gz = fetch_all(names, folder, self.mirrors, md5, self.download, self.data_dir_key)
        unpacked = {}
        for role, gz_name in MNIST_FILES.items():
            target = self.cache_dir / self.folder / "raw" / gz_name.removesuffix(".gz")
            unpacked[role] = unpacked_copy(gz[gz_name], self.checksums[role], target)
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

    def load(self) -> dict[str, Labelled]:
        files = self.locate()
        images = {}
        for split in ("train", "test"):
            pixels = read_image_file(str(files[f"{split}_images"]))
            labels = read_label_file(str(files[f"{split}_labels"]))
            images[split] = (unit_interval(pixels.unsqueeze(1)), labels)
        return {
            **hold_out(*images["train"], {"val": self.val_size}, self.split_seed),
            "test": images["test"],
        }


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al., 2017): images of clothes in 10 classes, in MNIST's format
    and split, from ``<data_dir>/FashionMNIST/raw``."""

    name = "fashion_mnist"
    source = FashionMNIST
    folder = "FashionMNIST"


class KMNISTDataModule(MNISTDataModule):
    """Kuzushiji-MNIST (Clanuwat et al., 2018): cursive Japanese characters in 10 classes, in
    MNIST's format and split, from ``<data_dir>/KMNIST/raw``."""

    name = "kmnist"
    source = KMNIST
    folder = "KMNIST"
