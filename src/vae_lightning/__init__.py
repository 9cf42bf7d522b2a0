"""vae-lightning: variational autoencoders (Kingma & Welling, 2014) on Lightning and Hydra.

``vae_lightning.load(path)`` gives a trained model and ``vae_lightning.load_data(path)`` the
data of its run (vae_lightning/api.py); both are imported on first use, so that the command
line entry points start without them.
"""

__version__ = "0.1.0"
__all__ = ["load", "load_data"]


def __getattr__(name: str):
    if name in __all__:
        from vae_lightning import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_lightning' has no attribute {name!r}")
