"""In-memory LightningDataModules: the benchmarks (MNIST, Fashion-MNIST, KMNIST, Omniglot,
Frey Face) and a user's own images (a folder of image files, a tensor file)."""

from vae_lightning.data.datamodule import BINARIZATIONS, InMemoryDataModule, PooledDataModule
from vae_lightning.data.frey_face import FreyFaceDataModule
from vae_lightning.data.image_folder import ImageFolderDataModule
from vae_lightning.data.mnist import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from vae_lightning.data.omniglot import OmniglotDataModule
from vae_lightning.data.own_data import OwnDataModule
from vae_lightning.data.tensor_file import TensorFileDataModule

__all__ = [
    "BINARIZATIONS",
    "FashionMNISTDataModule",
    "FreyFaceDataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "KMNISTDataModule",
    "MNISTDataModule",
    "OmniglotDataModule",
    "OwnDataModule",
    "PooledDataModule",
    "TensorFileDataModule",
]
