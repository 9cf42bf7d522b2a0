"""Images in one tensor file (`.npy` or `.pt`) as a data set."""

import pickle

import numpy as np
import torch
from torch import Tensor

from vae_lightning.data.files import digest
from vae_lightning.data.own_data import OwnDataModule
from vae_lightning.errors import DataError

FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class TensorFileDataModule(OwnDataModule):
    """The images of ``path``: a `.npy` file (numpy.save) or a `.pt` file (torch.save of one
    tensor, read with weights_only=True: nothing but tensors is unpickled), of shape
    N x C x H x W or N x H x W (one channel). uint8 grey levels are divided by 255; floats
    (and booleans) are taken as they are and must lie in [0, 1]. ``sha256`` is the file's.
    """

    name = "tensor_file"

    def read(self) -> tuple[Tensor, Tensor | None, str]:
        images = self._tensor()
        if images.ndim == 3:
            images = images.unsqueeze(1)
        shape = "x".join(map(str, images.shape))
        if images.ndim != 4 or len(images) == 0:
            raise DataError(
                f"{self.path} holds a tensor of shape [{shape}]; expected N x C x H x W or "
                "N x H x W images, with N > 0. Save the images in one of these shapes."
            )
        if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
            raise DataError(
                f"{self.path} holds a tensor of shape [{shape}], channels last it seems; "
                "expected N x C x H x W. Save it with the channels second (numpy: "
                "x.transpose(0, 3, 1, 2); torch: x.permute(0, 3, 1, 2))."
            )
        if images.dtype != torch.uint8:
            images = images.float()
            low, high = images.min().item(), images.max().item()
            if not (low >= 0 and high <= 1):  # NaN fails too
                raise DataError(
                    f"{self.path} has values from {low:g} to {high:g}: floating-point images "
                    "must lie in [0, 1] (uint8 ones in 0-255). Scale them, e.g. x / 255, and "
                    "save the file again."
                )
        return images, None, digest(self.path, "sha256")

    def _tensor(self) -> Tensor:
        """The file's tensor, of dtype uint8, bool or floating point."""
        if not self.path.is_file():
            raise DataError(self.not_found("tensor file (.npy or .pt)"))
        suffix = self.path.suffix.lower()
        try:
            if suffix == ".npy":
                tensor = torch.from_numpy(np.load(self.path, allow_pickle=False))
            elif suffix == ".pt":
                tensor = torch.load(self.path, map_location="cpu", weights_only=True)
            else:
                raise DataError(
                    f"data.path: {self.path} is neither a .npy nor a .pt file. Save the images "
                    "with numpy.save (.npy) or torch.save (.pt), and set data.path to the file."
                )
        except (
            OSError,
            ValueError,
            TypeError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
        ) as err:
            raise DataError(
                f"{self.path} cannot be read as a {suffix} file ({err}). Save the images again "
                f"with {'numpy.save' if suffix == '.npy' else 'torch.save'}."
            ) from err
        if not isinstance(tensor, Tensor):
            raise DataError(
                f"{self.path} holds a {type(tensor).__name__}, not a tensor. Save the images "
                "as one tensor: torch.save(images, path)."
            )
        if tensor.dtype not in (torch.uint8, torch.bool, *FLOAT_TYPES):
            raise DataError(
                f"{self.path} holds {tensor.dtype} values; expected uint8 grey levels (0-255) "
                "or floating point in [0, 1]. Convert it, e.g. x.astype(numpy.uint8) for "
                "integers in 0-255, and save it again."
            )
        return tensor
