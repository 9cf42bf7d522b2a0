"""Frey Face: 1,965 grey images of 28 x 20 pixels of one face, from Roweis' MAT-file."""

from pathlib import Path

import scipy.io
import torch
from torch import Tensor

from vae_lightning.data.datamodule import InMemoryDataModule
from vae_lightning.data.files import fetch
from vae_lightning.errors import DataError

FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_FILE = "frey_rawface.mat"
FREY_CHECKSUMS = {
    "md5": "5aeb024d42b8a6091f30e5eb18c8a48d",
    "sha256": "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
}


def block_permutation(n: int, block: int, seed: int) -> Tensor:
    """A seeded permutation of range(n) that keeps runs of `block` consecutive indices
    together (the last run may be shorter); block = 1 is torch.randperm(n)."""
    blocks = torch.randperm(-(-n // block), generator=torch.Generator().manual_seed(seed))
    order = (blocks[:, None] * block + torch.arange(block)).flatten()
    return order[order < n]


class FreyFaceDataModule(InMemoryDataModule):
    """``<data_dir>/frey_rawface.mat`` (variable ``ff``, uint8, 560 x N, one image a column).

    Pixels are scaled to [0, 1]. A permutation seeded by ``split_seed`` sets aside
    ``val_size`` and ``test_size`` images; the rest are for training. The frames are one
    video, so neighbouring frames are near duplicates: with ``split_block`` = b > 1 the
    permutation moves runs of b consecutive frames as one, so that a held-out frame's
    neighbours are held out with it (b = 1: frames drawn one by one).
    """

    name = "frey_face"
    image_shape = (1, 28, 20)
    default_likelihood = "gaussian"
    default_hidden_dims = (200,)

    def __init__(
        self,
        *args,
        val_size: int = 200,
        test_size: int = 200,
        split_block: int = 1,
        url: str = FREY_URL,
        checksums: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.val_size, self.test_size, self.split_block = val_size, test_size, split_block
        self.url = url
        self.checksums = dict(FREY_CHECKSUMS if checksums is None else checksums)
        self.path: Path | None = None

    def locate(self) -> None:
        folders = [self.data_dir, self.cache_dir]
        self.path = fetch(
            FREY_FILE, folders, [self.url], self.checksums, self.download, self.data_dir_key
        )

    def split_sizes(self) -> dict[str, int]:
        """The frames of each split, from the shape of 'ff' in the MAT-file's header."""
        self.locate()
        try:
            shapes = dict((name, shape) for name, shape, _ in scipy.io.whosmat(self.path))
        except (ValueError, OSError) as err:
            raise DataError(f"{self.path} is not a Frey Face MAT-file: {err}") from err
        frames = shapes.get("ff", (0, 0))[1]
        val = min(self.val_size, frames)
        test = min(self.test_size, frames - val)
        return {"train": frames - val - test, "val": val, "test": test}

    def load(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        self.locate()
        try:
            ff = scipy.io.loadmat(self.path)["ff"]
        except (ValueError, KeyError, OSError) as err:
            raise DataError(
                f"{self.path} is not a Frey Face MAT-file with variable 'ff': {err}"
            ) from err
        if ff.shape[0] != 560:
            raise DataError(f"{self.path}: 'ff' has shape {ff.shape}; expected (560, N)")
        images = torch.from_numpy(ff.T.reshape(-1, 1, 28, 20).copy()).float().div_(255)
        order = block_permutation(len(images), self.split_block, self.split_seed)
        val, test = self.val_size, self.val_size + self.test_size
        return {
            "train": (images[order[test:]], None),
            "val": (images[order[:val]], None),
            "test": (images[order[val:test]], None),
        }
