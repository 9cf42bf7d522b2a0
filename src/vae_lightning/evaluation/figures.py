"""The paper's figures as PNG files: image grids by torchvision, plots by matplotlib (Agg)."""

import csv
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from vae_lightning.models.vae import VariationalAutoencoder

PADDING = 2  # pixels between the images of a grid
TITLE_WIDTH = 85  # characters of a title line 8 inches wide
PLOT_SIZE_INCHES, PLOT_DPI = (8, 6), 100  # plots of 800 x 600 pixels


def model_title(hparams: Mapping[str, Any], epoch: int) -> str:
    """E.g. 'VAE (elbo, bernoulli decoder), latent size 2, epoch 3' (epochs counted from 0)."""
    model = "PPCA" if hparams.get("likelihood") == "linear_gaussian" else "VAE"
    details = f"{hparams.get('objective', 'elbo')}, {hparams.get('likelihood')} decoder"
    return f"{model} ({details}), latent size {hparams['latent_dim']}, epoch {epoch}"


RECONSTRUCTION_ROWS = ("originals x", "reconstructions E[x | z = μ(x)]")


def reconstruction_figure(vae: VariationalAutoencoder, x: Tensor, title: str) -> Figure:
    """A row of originals above the row of their reconstructions E[x|z = mu(x)], each row
    titled (RECONSTRUCTION_ROWS), under `title`; the images fill the plot's width."""
    (height, width), count = x.shape[-2:], len(x)
    row_inches = PLOT_SIZE_INCHES[0] * height / (count * width)
    fig, axes = plt.subplots(
        2, 1, figsize=(PLOT_SIZE_INCHES[0], 1 + 2.6 * row_inches), layout="constrained"
    )
    for ax, label, images in zip(axes, RECONSTRUCTION_ROWS, (x, vae.reconstruct(x)), strict=True):
        grid = make_grid(images.clamp(0, 1).cpu(), nrow=count, padding=PADDING, pad_value=1.0)
        ax.imshow(grid[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, loc="left", fontsize="medium")
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def save_reconstructions(vae: VariationalAutoencoder, x: Tensor, path: Path, title: str) -> None:
    """`reconstruction_figure` as a PNG, its title also in the file's metadata."""
    fig = reconstruction_figure(vae, x, title)
    fig.savefig(path, dpi=PLOT_DPI, metadata={"Title": title})
    plt.close(fig)


def titled_grid_figure(grid: Image.Image, title: str, axes: Tensor | None = None) -> Figure:
    """An image grid drawn 8 inches wide under `title`; a manifold's with its z_1 and z_2
    values (`manifold_axes`) at the centres of about five cells a side."""
    image = grid.convert("L")
    fig = Figure(figsize=(8, 8 * image.height / image.width + 0.6))
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(textwrap.fill(title, TITLE_WIDTH))
    if axes is not None:
        size = len(axes)
        cell_x, cell_y = image.width / size, image.height / size
        # Cells i and size - 1 - i alike: both ends (+-1.96 on the prior's grid) and a tick
        # about every fifth of the side, the same either side of the centre.
        step = max(1, size // 5)
        ticks = sorted({j for i in range(0, (size + 1) // 2, step) for j in (i, size - 1 - i)})
        ax.set_xticks([(i + 0.5) * cell_x for i in ticks], [f"{axes[i, 0]:.2f}" for i in ticks])
        rows = axes[:, 1].flip(0)  # z_2 decreases down the rows
        ax.set_yticks([(i + 0.5) * cell_y for i in ticks], [f"{rows[i]:.2f}" for i in ticks])
        ax.set(xlabel="$z_1$", ylabel="$z_2$")
    else:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_titled_grid(
    grid: Image.Image, title: str, path: Path, axes: Tensor | None = None, **png: Any
) -> None:
    """`titled_grid_figure` as a PNG with `title` as its Title metadata; `png`: further
    savefig options."""
    fig = titled_grid_figure(grid, title, axes)
    fig.savefig(
        path, **{"dpi": PLOT_DPI, **png, "metadata": {"Title": title, **png.get("metadata", {})}}
    )


def is_titled(path: Path) -> bool:
    """Whether a PNG grid was drawn by save_titled_grid (it carries a Title)."""
    return "Title" in Image.open(path).info


def grey_image(grid: Tensor) -> Image.Image:
    """A make_grid result (C, H, W) in [0, 1] as an 8-bit grey image (its first channel)."""
    return Image.fromarray(grid[0].mul(255).add(0.5).clamp(0, 255).byte().cpu().numpy(), "L")


def _grid_image(images: Tensor, nrow: int, padding: int) -> Image.Image:
    """Images in rows of `nrow` with white gaps; values beyond [0, 1] are drawn clamped."""
    return grey_image(make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=1.0))


def save_prior_samples(vae: VariationalAutoencoder, path: Path, title: str, rows: int = 10) -> None:
    """A rows x rows grid of E[x|z] for z ~ p(z) (the paper's Figure 5), titled."""
    grid = _grid_image(vae.sample(rows * rows), nrow=rows, padding=PADDING)
    save_titled_grid(grid, f"{title}: E[x|z] of prior samples z ~ p(z)", path)


def manifold_axes(size: int, means: Tensor | None = None) -> Tensor:
    """The z_1 (first column) and z_2 (second) values of a size x size manifold grid, at
    u = (i + 1/2) / size: the prior's quantiles Phi^-1(u), as in the paper's Figure 4, or
    with `means` (n, 2) the u-quantiles of those latent means along each coordinate, the
    region the data's posteriors occupy when it is not the prior's."""
    u = (torch.arange(size) + 0.5) / size
    if means is None:
        return torch.special.ndtri(u)[:, None].expand(size, 2)
    return torch.quantile(means.float().cpu(), u, dim=0)


def manifold_latents(size: int, means: Tensor | None = None) -> Tensor:
    """The manifold grid's z (size^2, 2) over `manifold_axes(size, means)`, row-major: z_2
    decreasing down the rows, z_1 increasing along them."""
    return _grid_latents(manifold_axes(size, means))


def _grid_latents(axes: Tensor) -> Tensor:
    z2, z1 = torch.meshgrid(axes[:, 1].flip(0), axes[:, 0], indexing="ij")  # [row, column]
    return torch.stack([z1, z2], dim=-1).reshape(-1, 2)


def save_manifold(
    vae: VariationalAutoencoder,
    path: Path,
    title: str,
    size: int = 20,
    means: Tensor | None = None,
) -> None:
    """The learned 2-D manifold (the paper's Figure 4): E[x|z] over manifold_latents(size,
    means), titled with the grid's kind, with the z values on the axes."""
    if vae.latent_dim != 2:
        raise ValueError(f"the manifold needs a 2-D latent space, not {vae.latent_dim}-D")
    axes = manifold_axes(size, means)
    images = vae.decode(_grid_latents(axes).to(next(vae.parameters()).device))
    grid = _grid_image(images, nrow=size, padding=0)
    kind = "the prior's quantiles Φ⁻¹(u)" if means is None else "quantiles of the latent means"
    save_titled_grid(grid, f"{title}: learned manifold E[x|z], z at {kind}", path, axes)


def principal_components(points: Tensor, count: int = 2) -> tuple[Tensor, Tensor]:
    """The projection of `points` (n, d) on their first `count` principal axes, and the
    fraction of the variance each axis explains."""
    centred = points.double() - points.double().mean(0)
    _, singular, axes = torch.linalg.svd(centred, full_matrices=False)
    explained = singular.pow(2) / singular.pow(2).sum()
    return (centred @ axes[:count].T).float(), explained[:count].float()


def latent_scatter_figure(means: Tensor, labels: Tensor) -> Figure:
    """The latent means mu(x) of a split, coloured by digit label: the two coordinates of a
    2-D latent space, else the means projected on their two principal axes (PCA)."""
    fig, ax = plt.subplots(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI)
    if means.shape[1] > 2:
        shown, explained = principal_components(means)
        names = [
            f"PC {i + 1} ({100 * float(e):.0f}% of the variance)" for i, e in enumerate(explained)
        ]
        title = f"Latent means of q(z|x), {means.shape[1]} dimensions projected by PCA"
    else:
        shown, names, title = means, ["$\\mu_1$", "$\\mu_2$"], "Latent means of q(z|x)"
    points = ax.scatter(shown[:, 0], shown[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel=names[0], ylabel=names[1], title=title)
    return fig


def save_latent_scatter(means: Tensor, labels: Tensor, path: Path) -> None:
    """`latent_scatter_figure` as a PNG of 800 x 600 pixels."""
    fig = latent_scatter_figure(means, labels)
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)


def read_epoch_curves(
    metrics_csv: Path, keys: tuple[str, ...], x: str = "epoch"
) -> dict[str, list[tuple[int, float]]]:
    """{key: [(x, value), ...]} from a CSVLogger file, x its `epoch` (or `step`) column; rows
    where a key is empty skipped."""
    curves: dict[str, list[tuple[int, float]]] = {k: [] for k in keys}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key in keys:
                if row.get(key) and not math.isnan(value := float(row[key])):
                    curves[key].append((int(float(row[x])), value))
    return curves


def training_curves_figure(metrics_csv: Path) -> Figure:
    """Train and validation ELBO per epoch (counted from 0, as the console, the checkpoint
    names and the figures' titles count them), from the run's metrics.csv."""
    curves = read_epoch_curves(metrics_csv, ("train/elbo", "val/elbo"))
    fig, ax = plt.subplots(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI)
    for key, points in curves.items():
        if points:
            epochs, values = zip(*points, strict=True)
            ax.plot(epochs, values, marker="o", label=key)
    ax.set(xlabel="epoch", ylabel="ELBO (nats per data point)", title="Training curves")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def save_training_curves(metrics_csv: Path, path: Path) -> None:
    """`training_curves_figure` as a PNG of 800 x 600 pixels."""
    fig = training_curves_figure(metrics_csv)
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)
