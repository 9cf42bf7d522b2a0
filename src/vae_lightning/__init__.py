"""vae-lightning: variational autoencoders (Kingma & Welling, 2014) on Lightning and Hydra."""

__version__ = "0.1.0"
