"""Omniglot as Burda et al. (2016) used it: 32,415 handwritten characters of 50 alphabets,
28 x 28 grey levels, from the IWAE code's ``chardata.mat``."""

from pathlib import Path

import numpy as np
import scipy.io
import torch

from vae_lightning.data.datamodule import InMemoryDataModule, Labelled, hold_out
from vae_lightning.data.files import fetch
from vae_lightning.errors import DataError

OMNIGLOT_URL = "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat"
OMNIGLOT_FILE = "chardata.mat"
# The MAT-file's variables of each split: its pixels (784 x N) and its alphabets (50 x N, one-hot).
SPLIT_VARIABLES = {"train": ("data", "target"), "test": ("testdata", "testtarget")}


class OmniglotDataModule(InMemoryDataModule):
    """``<data_dir>/chardata.mat``: variables ``data`` (784 x 24,345) and ``testdata``
    (784 x 8,070) of grey levels in [0, 1], one image a column in column-major order (the
    IWAE code reshapes each with order='F'), and the one-hot alphabets ``target`` and
    ``testtarget`` (50 x N), the labels.

    ``val_size`` images of the training set are held out for validation by a permutation
    seeded with ``split_seed`` (as MNIST's); the test split is the file's 8,070.
    """

    name = "omniglot"
    image_shape = (1, 28, 28)
    default_likelihood = "bernoulli"
    default_hidden_dims = (500,)
    test_size = 8_070  # the file's test split

    def __init__(
        self,
        *args,
        val_size: int = 1_345,
        url: str = OMNIGLOT_URL,
        checksums: dict[str, str] | None = None,
        binarize: str = "dynamic",
        **kwargs,
    ) -> None:
        super().__init__(*args, binarize=binarize, **kwargs)
        self.val_size, self.url = val_size, url
        self.checksums = dict(checksums or {})
        self.path: Path | None = None

    def locate(self) -> None:
        folders = [self.data_dir, self.cache_dir]
        self.path = fetch(
            OMNIGLOT_FILE, folders, [self.url], self.checksums, self.download, self.data_dir_key
        )

    def split_sizes(self) -> dict[str, int]:
        """The images of each split, from the variables' shapes in the MAT-file's header."""
        self.locate()
        try:
            shapes = {name: shape for name, shape, _ in scipy.io.whosmat(self.path)}
        except (ValueError, OSError) as err:
            raise DataError(f"{self.path} is not Omniglot's chardata.mat: {err}") from err
        train, test = (shapes.get(pixels, (0, 0))[1] for pixels, _ in SPLIT_VARIABLES.values())
        return {
            "train": max(train - self.val_size, 0),
            "val": min(self.val_size, train),
            "test": test,
        }

    def load(self) -> dict[str, Labelled]:
        self.locate()
        try:
            mat = scipy.io.loadmat(self.path)
        except (ValueError, OSError) as err:
            raise DataError(f"{self.path} is not Omniglot's chardata.mat: {err}") from err
        splits = {split: self._images(mat, *names) for split, names in SPLIT_VARIABLES.items()}
        return {
            **hold_out(*splits["train"], {"val": self.val_size}, self.split_seed),
            "test": splits["test"],
        }

    def _images(self, mat: dict, pixels: str, target: str) -> Labelled:
        """The images of one split, upright, as float in [0, 1], and their alphabets."""
        data = mat.get(pixels)
        if data is None or data.ndim != 2 or data.shape[0] != 784:
            shape = "missing" if data is None else f"of shape {data.shape}"
            raise DataError(
                f"{self.path}: variable '{pixels}' is {shape}; expected 784 x N (Omniglot's "
                f"chardata.mat). Replace the file with the original from {self.url}."
            )
        if not (np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1):
            raise DataError(
                f"{self.path}: variable '{pixels}' has values outside [0, 1]. Replace the file "
                f"with the original from {self.url}."
            )
        # Column n holds image n in column-major order: pixel (row r, column c) at r + 28 c.
        images = data.T.reshape(-1, 28, 28).transpose(0, 2, 1)[:, None]
        labels = mat.get(target)
        has_labels = labels is not None and labels.shape[1:] == data.shape[1:]
        return (
            torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
            torch.from_numpy(labels.argmax(0)) if has_labels else None,
        )
