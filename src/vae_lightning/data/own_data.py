"""The base of data modules for a user's own images: a path, read whole before training."""

import logging
from pathlib import Path

from torch import Tensor

from vae_lightning.data.datamodule import Labelled, PooledDataModule
from vae_lightning.data.files import check_sha256

log = logging.getLogger(__name__)


class OwnDataModule(PooledDataModule):
    """Images at ``path`` (absolute, or relative to ``data_dir``), split as PooledDataModule.

    `prepare_data` reads and checks every image, so that a bad file is refused before a run
    writes anything; the image shape is the data's. ``sha256`` (the digest of what was read:
    the log gives it, `self.sha256` holds it) pins the data: data with another digest are
    refused. Subclasses read the images (`read`).
    """

    default_likelihood = "gaussian"  # grey levels, as they are (binarize: none)
    default_hidden_dims = (500,)

    def __init__(self, *args, path: str | Path, sha256: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.data_dir / Path(path).expanduser()
        self.expected_sha256 = sha256
        self.sha256: str | None = None  # of the data read

    def read(self) -> tuple[Tensor, Tensor | None, str]:
        """(images of shape (n, channels, height, width), uint8 or float in [0, 1]; labels or
        None; the sha256 of what was read)."""
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.pool()[0].shape[1:])

    def locate(self) -> None:
        self.pool()

    def pool_size(self) -> int:
        return len(self.pool()[0])

    def read_pool(self) -> Labelled:
        images, labels, sha256 = self.read()
        check_sha256(self.path, sha256, self.expected_sha256, "data.sha256")
        self.sha256 = sha256
        log.info(
            "Read %d images of %s from %s; data.sha256=%s",
            len(images),
            " x ".join(map(str, images.shape[1:])),
            self.path,
            sha256,
        )
        return images, labels

    def not_found(self, kind: str) -> str:
        """The message for a `path` that is not a `kind` ('folder of images', ...)."""
        return (
            f"data.path: {self.path} is not a {kind}. Set data.path to your {kind}, absolute "
            f"or relative to {self.data_dir_key}={self.data_dir}."
        )
