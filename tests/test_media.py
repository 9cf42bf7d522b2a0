"""Training media a person can read: enlarged images, white gaps between them, captions."""

import torch

from vae_lightning.models import VAE
from vae_lightning.training.media import GAP_PX, MediaLogger, caption_of


def test_grids_are_enlarged_with_gaps_and_captioned():
    module = VAE(image_shape=[1, 28, 28], latent_dim=2, hidden_dims=[8])
    media = MediaLogger(num_samples=16, num_reconstructions=4, manifold_steps=5)
    media.on_fit_start(None, module)
    media._batch = torch.rand(4, 1, 28, 28)
    grids = media.grids(module)

    gap = GAP_PX * 3  # 28 pixels are drawn 3 times larger (84 pixels)
    side = 8 * 84 + 9 * gap
    assert grids["samples"].shape == (3, 2 * 84 + 3 * gap, side)  # 16 samples, 8 a row
    assert grids["reconstructions"].shape == (3, 84 + 2 * gap, 8 * 84 + 9 * gap)
    assert grids["manifold"].shape[-1] == 5 * 84 + 6 * gap
    for grid in grids.values():
        assert grid.min() >= 0 and grid.max() <= 1
        assert (grid[:, :, :gap] == 1).all() and (grid[:, :gap, :] == 1).all()  # white gaps
    # Nearest-neighbour enlargement: each pixel is a 3 x 3 block.
    first = grids["samples"][0, gap : gap + 84, gap : gap + 84]
    assert torch.equal(first, first[::3, ::3].repeat_interleave(3, 0).repeat_interleave(3, 1))

    caption = caption_of("reconstructions", module, epoch=3)
    assert caption.startswith("VAE (elbo, bernoulli decoder), latent size 2, epoch 3: pairs")
