"""MNIST and Frey Face as in-memory LightningDataModules."""

from vae_lightning.data.datamodule import BINARIZATIONS, InMemoryDataModule
from vae_lightning.data.frey_face import FreyFaceDataModule
from vae_lightning.data.mnist import MNISTDataModule

__all__ = ["BINARIZATIONS", "FreyFaceDataModule", "InMemoryDataModule", "MNISTDataModule"]
