"""Images of the model at each validation epoch: samples, reconstructions, the 2-D manifold."""

import logging
import time
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid

from vae_lightning.evaluation.figures import (
    grey_image,
    manifold_latents,
    model_title,
    save_titled_grid,
)

log = logging.getLogger(__name__)


class MediaLogger(L.Callback):
    """Every `every_n_epochs` validation epochs, on rank zero only, draws

    - ``media/samples``: decoder means E[x|z] of `num_samples` prior draws z ~ N(0, I), the
      same z every epoch (drawn once from `seed`), so the grids show the progress;
    - ``media/reconstructions``: the first `num_reconstructions` validation images, each
      original beside its reconstruction E[x|z = mu(x)];
    - ``media/manifold`` (latent_dim == 2 only): decoder means over a
      `manifold_steps` x `manifold_steps` grid of z at the normal quantiles
      (`manifold_latents`), as in Figure 4 of Kingma & Welling.

    Loggers that can take images (`log_image`, e.g. WandbLogger) get them; when none can,
    the grids are saved as PNGs in `dirpath` (default: `<run folder>/media`).
    `seconds` holds the time spent per logging epoch.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 64,
        num_reconstructions: int = 32,
        manifold_steps: int = 20,
        seed: int = 0,
        dirpath: str | Path | None = None,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.num_samples, self.num_reconstructions = num_samples, num_reconstructions
        self.manifold_steps, self.seed = manifold_steps, seed
        self.dirpath = Path(dirpath) if dirpath else None
        self.seconds: list[float] = []
        self._z: Tensor | None = None
        self._batch: Tensor | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        self._z = torch.randn(self.num_samples, pl_module.vae.latent_dim, generator=generator)
        self._batch = None

    def _validation_batch(self, trainer: L.Trainer) -> Tensor:
        datamodule = trainer.datamodule
        splits = getattr(datamodule, "splits", None)
        if splits and "val" in splits:
            return splits["val"][: self.num_reconstructions]
        return next(iter(trainer.val_dataloaders))[: self.num_reconstructions]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._z is None:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        start = time.perf_counter()
        if self._batch is None:
            self._batch = self._validation_batch(trainer).detach().cpu()
        grids = self.grids(pl_module)
        self.publish(trainer, grids)
        self.seconds.append(time.perf_counter() - start)
        log.debug("Media of epoch %d took %.3f s", trainer.current_epoch, self.seconds[-1])

    @torch.no_grad()
    def grids(self, pl_module: L.LightningModule) -> dict[str, Tensor]:
        """Grids in [0, 1], each image enlarged to at least MIN_IMAGE_PX pixels high (nearest
        neighbour, so pixels stay sharp) with a white gap between images."""
        vae, device = pl_module.vae, pl_module.device
        grids = {}
        samples = vae.decode(self._z.to(device)).float().cpu()
        grids["samples"] = _grid(samples, nrow=8)
        x = self._batch.to(device)
        pairs = torch.stack([x, vae.reconstruct(x)], dim=1).flatten(0, 1).float().cpu()
        grids["reconstructions"] = _grid(pairs, nrow=16)
        if vae.latent_dim == 2:
            z = manifold_latents(self.manifold_steps).to(device)
            grids["manifold"] = _grid(vae.decode(z).float().cpu(), nrow=self.manifold_steps)
        return grids

    def publish(self, trainer: L.Trainer, grids: dict[str, Tensor]) -> None:
        epoch, step = trainer.current_epoch, trainer.global_step
        image_loggers = [lg for lg in trainer.loggers if callable(getattr(lg, "log_image", None))]
        for logger in image_loggers:
            for name, grid in grids.items():
                # 8-bit (H, W, C) arrays: the form every image logger reads the same way
                # (wandb >= 0.2x casts float tensors to uint8 without scaling them).
                image = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                caption = caption_of(name, trainer.lightning_module, epoch)
                logger.log_image(key=f"media/{name}", images=[image], step=step, caption=[caption])
        if not image_loggers:
            folder = self.dirpath or Path(trainer.default_root_dir) / "media"
            folder.mkdir(parents=True, exist_ok=True)
            for name, grid in grids.items():
                caption = caption_of(name, trainer.lightning_module, epoch)
                save_titled_grid(grey_image(grid), caption, folder / f"{name}_epoch{epoch:03d}.png")


# Each image of a grid is enlarged to at least this height; GAP_PX of white between images.
MIN_IMAGE_PX = 84
GAP_PX = 2
_SHOWS = {
    "samples": "decoder means E[x|z] of fixed prior draws z ~ N(0, I)",
    "reconstructions": "pairs: each validation image, then its reconstruction E[x|z = mu(x)]",
    "manifold": "decoder means over a grid of z at normal quantiles",
}


def _grid(images: Tensor, nrow: int) -> Tensor:
    factor = max(1, -(-MIN_IMAGE_PX // images.shape[-2]))  # ceiling division
    large = torch.nn.functional.interpolate(images, scale_factor=factor, mode="nearest")
    return make_grid(large.clamp(0, 1), nrow=nrow, padding=GAP_PX * factor, pad_value=1.0)


def caption_of(name: str, pl_module: L.LightningModule, epoch: int) -> str:
    """E.g. 'VAE (elbo, bernoulli decoder), latent size 2, epoch 3: decoder means of ...'."""
    return f"{model_title(pl_module.hparams, epoch)}: {_SHOWS[name]}"
