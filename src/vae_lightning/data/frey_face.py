"""Frey Face: 1,965 grey images of 28 x 20 pixels of one face, from Roweis' MAT-file."""

from pathlib import Path

import scipy.io
import torch

from vae_lightning.data.datamodule import Labelled, PooledDataModule
from vae_lightning.data.files import fetch
from vae_lightning.errors import DataError

FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_FILE = "frey_rawface.mat"
FREY_CHECKSUMS = {
    "md5": "5aeb024d42b8a6091f30e5eb18c8a48d",
    "sha256": "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
}


class FreyFaceDataModule(PooledDataModule):
    """``<data_dir>/frey_rawface.mat`` (variable ``ff``, uint8, 560 x N, one image a column).

    Pixels are scaled to [0, 1]. The frames are one video, so neighbouring frames are near
    duplicates: ``split_block`` = b > 1 holds out runs of b consecutive frames together (see
    PooledDataModule for the split).
    """

    name = "frey_face"
    image_shape = (1, 28, 20)
    default_likelihood = "gaussian"
    default_hidden_dims = (200,)

    def __init__(
        self,
        *args,
        url: str = FREY_URL,
        checksums: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.url = url
        self.checksums = dict(FREY_CHECKSUMS if checksums is None else checksums)
        self.path: Path | None = None

    def locate(self) -> None:
        folders = [self.data_dir, self.cache_dir]
        self.path = fetch(
            FREY_FILE, folders, [self.url], self.checksums, self.download, self.data_dir_key
        )

    def pool_size(self) -> int:
        """The frames, from the shape of 'ff' in the MAT-file's header."""
        self.locate()
        try:
            shapes = dict((name, shape) for name, shape, _ in scipy.io.whosmat(self.path))
        except (ValueError, OSError) as err:
            raise DataError(f"{self.path} is not a Frey Face MAT-file: {err}") from err
        return shapes.get("ff", (0, 0))[1]

    def read_pool(self) -> Labelled:
        self.locate()
        try:
            ff = scipy.io.loadmat(self.path)["ff"]
        except (ValueError, KeyError, OSError) as err:
            raise DataError(
                f"{self.path} is not a Frey Face MAT-file with variable 'ff': {err}"
            ) from err
        if ff.shape[0] != 560:
            raise DataError(f"{self.path}: 'ff' has shape {ff.shape}; expected (560, N)")
        return torch.from_numpy(ff.T.reshape(-1, 1, 28, 20).copy()).float().div_(255), None
