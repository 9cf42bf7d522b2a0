"""A folder of image files (PNG or JPEG, any size, grey or colour) as a data set."""

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vae_lightning.data.own_data import OwnDataModule
from vae_lightning.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA")  # PIL's modes of grey images (8-bit, or 1-bit)


class ImageFolderDataModule(OwnDataModule):
    """The images in ``path`` and its subfolders, in the order of their paths (as strings),
    8-bit grey levels scaled to [0, 1].

    Each image is converted to ``channels`` (1: grey, by PIL's luma; 3: colour; None: 1 if
    every image is grey, else 3) and resized to ``image_size`` = [height, width] (bilinear;
    None: the images must all have one size). When every image is in a subfolder (one per
    class, as torchvision's ImageFolder), an image's label is the index of its top subfolder
    in sorted order; otherwise there are no labels. ``sha256`` is the digest of the images'
    paths and bytes, in that order. Names starting with a dot are left out.
    """

    name = "image_folder"

    def __init__(
        self,
        *args,
        image_size: Sequence[int] | None = None,
        channels: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.channels = channels

    def files(self) -> list[Path]:
        """The image files, sorted by their paths relative to the folder."""
        if not self.path.is_dir():
            raise DataError(self.not_found("folder of images"))
        files = sorted(
            (
                file
                for file in self.path.rglob("*")
                if file.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in file.relative_to(self.path).parts)
                and file.is_file()
            ),
            key=lambda file: file.relative_to(self.path).as_posix(),
        )
        if not files:
            raise DataError(
                f"{self.path} holds no images (files ending in {', '.join(IMAGE_SUFFIXES)}, "
                "in it or in its subfolders). Put your images there, or set data.path to the "
                "folder that has them."
            )
        return files

    def read(self) -> tuple[Tensor, Tensor | None, str]:
        files, digest, pixels = self.files(), hashlib.sha256(), []
        for file in files:
            data, name = file.read_bytes(), file.relative_to(self.path).as_posix().encode()
            for part in (name, data):
                digest.update(len(part).to_bytes(8, "big") + part)
            pixels.append(self._pixels(file, data))
            if pixels[-1].shape[:2] != pixels[0].shape[:2]:
                (h0, w0), (h, w) = pixels[0].shape[:2], pixels[-1].shape[:2]
                raise DataError(
                    f"The images in {self.path} differ in size: {files[0]} is {h0} x {w0} "
                    f"pixels, {file} is {h} x {w} (height x width). Set data.image_size=[H, W] "
                    f"to resize them all to one size, e.g. data.image_size=[{h0},{w0}]."
                )
        if any(p.ndim == 3 for p in pixels):  # grey images among colour ones: grey in R, G, B
            pixels = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in pixels]
            images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
        else:
            images = torch.from_numpy(np.stack(pixels)).unsqueeze(1)
        return images, self._labels(files), digest.hexdigest()

    def _pixels(self, file: Path, data: bytes) -> np.ndarray:
        """One image's uint8 pixels, (height, width) if grey, else (height, width, 3)."""
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.mode.startswith(("I", "F")):
                    raise DataError(
                        f"{file} has {image.mode} pixels (16-bit or floating point); images "
                        "must have 8 bits per channel. Save it as 8-bit grey or colour."
                    )
                grey = self.channels == 1 or (self.channels is None and image.mode in GREY_MODES)
                image = image.convert("L" if grey else "RGB")
                if self.image_size is not None and image.size != self.image_size[::-1]:
                    image = image.resize(self.image_size[::-1], Image.Resampling.BILINEAR)
                return np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(
                f"{file} is not a readable image ({err}). Replace it with a good copy, or "
                f"move it out of {self.path}, and run again."
            ) from err

    def _labels(self, files: list[Path]) -> Tensor | None:
        """The index of each file's top subfolder, or None if a file is not in one."""
        tops = [file.relative_to(self.path).parts for file in files]
        if any(len(parts) == 1 for parts in tops):
            return None
        classes = {name: index for index, name in enumerate(sorted({p[0] for p in tops}))}
        return torch.tensor([classes[parts[0]] for parts in tops])
