"""The evaluation's figures: what each draws (images, grids, axes, titles) and its PNG file."""

import textwrap

import numpy as np
import pytest
import torch
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine
from PIL import Image

from vae_lightning.eval import manifold_spread
from vae_lightning.evaluation import figures
from vae_lightning.evaluation.figures import (
    PLOT_DPI,
    RECONSTRUCTION_ROWS,
    _grid_image,
    latent_scatter_figure,
    manifold_axes,
    manifold_latents,
    principal_components,
    read_epoch_curves,
    reconstruction_figure,
    save_latent_scatter,
    save_reconstructions,
    save_training_curves,
    training_curves_figure,
)
from vae_lightning.models import VAE
from vae_lightning.models.vae import VariationalAutoencoder


def test_manifold_spread_is_how_much_the_decoded_grid_varies():
    torch.manual_seed(0)
    vae = VariationalAutoencoder((1, 28, 20), 2, [8], "tanh", "gaussian")
    images, means = torch.rand(30, 1, 28, 20), torch.randn(30, 2)
    spread = manifold_spread(vae, means, images, manifold_size=4)
    assert spread["points"] == pytest.approx(images.flatten(1).std(0).mean().item(), abs=1e-4)
    assert spread["prior_grid"] > 0 and spread["latent_means_grid"] > 0
    torch.nn.init.zeros_(vae.decoder.body[0].weight)  # a decoder that ignores z
    flat = manifold_spread(vae, means, images, manifold_size=4)
    assert flat["prior_grid"] == flat["latent_means_grid"] == 0


def test_manifold_axes_are_the_quantiles_of_the_prior_or_of_the_means():
    prior = manifold_axes(4)
    expected = torch.special.ndtri(torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(prior, torch.stack([expected, expected], 1))
    means = torch.stack([torch.arange(101.0), -torch.arange(101.0) / 10], 1)  # 0..100, 0..-10
    axes = manifold_axes(4, means)
    torch.testing.assert_close(axes[:, 0], torch.tensor([12.5, 37.5, 62.5, 87.5]))
    torch.testing.assert_close(axes[:, 1], -torch.tensor([8.75, 6.25, 3.75, 1.25]))
    z = manifold_latents(4, means)  # row-major: z_2 largest in the first row, z_1 increasing
    torch.testing.assert_close(z[:4, 0], axes[:, 0])
    torch.testing.assert_close(z[::4, 1], axes[:, 1].flip(0))


def test_reconstruction_figure_titles_its_rows_and_shows_what_they_say():
    vae = VAE(image_shape=[1, 28, 28], latent_dim=2, hidden_dims=[8]).vae
    x = torch.rand(10, 1, 28, 28) * 1.4 - 0.2  # beyond [0, 1]: drawn clamped
    fig = reconstruction_figure(vae, x, "VAE (elbo, bernoulli decoder), latent size 2, epoch 4")
    assert fig.get_suptitle() == "VAE (elbo, bernoulli decoder), latent size 2, epoch 4"
    # 8 inches wide, each row of digits as tall as the width gives it, plus the titles.
    assert tuple(fig.get_size_inches()) == pytest.approx((8, 1 + 2.6 * 8 * 28 / (10 * 28)))
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    top, bottom = fig.axes
    assert top.get_position().y0 > bottom.get_position().y1  # one above the other
    assert [top.get_title(loc="left"), bottom.get_title(loc="left")] == list(RECONSTRUCTION_ROWS)
    assert top.get_title(loc="center") == bottom.get_title(loc="center") == ""
    medium = FontProperties(size="medium").get_size_in_points()
    assert [ax._left_title.get_fontsize() for ax in (top, bottom)] == [medium, medium]
    assert RECONSTRUCTION_ROWS[0].startswith("originals")
    assert RECONSTRUCTION_ROWS[1].startswith("reconstructions")
    for ax, images in ((top, x.clamp(0, 1)), (bottom, vae.reconstruct(x))):
        [image] = ax.images
        assert image.get_cmap().name == "gray" and image.get_clim() == (0, 1)
        assert image.get_interpolation() == "nearest" and not ax.axison
        grid = image.get_array()
        assert grid.shape == (30 + 2, 10 * 30 + 2)  # one row of 10 digits, 2-pixel gaps
        assert np.all(grid[:2] == 1) and np.all(grid[:, :2] == 1)  # white gaps
        for i in (0, 9):  # the first and the last digit of the row
            assert np.allclose(grid[2:30, 2 + 30 * i : 30 * (i + 1)], images[i, 0], atol=1e-6)


def test_reconstructions_are_saved_at_the_plot_resolution_with_their_title(tmp_path):
    vae = VAE(image_shape=[1, 28, 28], latent_dim=2, hidden_dims=[8]).vae
    x = torch.rand(10, 1, 28, 28)
    save_reconstructions(vae, x, tmp_path / "titled.png", "A title")
    save_reconstructions(vae, x, tmp_path / "untitled.png", "")
    titled = Image.open(tmp_path / "titled.png")
    assert titled.size == (8 * PLOT_DPI, round((1 + 2.6 * 8 / 10) * PLOT_DPI))
    assert titled.info["Title"] == "A title"
    untitled = np.asarray(Image.open(tmp_path / "untitled.png").convert("L"))
    assert not np.array_equal(np.asarray(titled.convert("L")), untitled)  # the title is drawn


def test_image_grids_are_clamped_rows_of_images_in_white_padding():
    images = torch.linspace(-0.5, 1.5, 5 * 4).reshape(5, 1, 2, 2)
    grid = np.asarray(_grid_image(images, nrow=3, padding=1))
    assert grid.shape == (1 + 2 * 3, 1 + 3 * 3)  # 2 rows of 3 cells, 1-pixel gaps
    assert np.all(grid[0] == 255) and np.all(grid[:, 0] == 255)
    expected = (images.clamp(0, 1) * 255 + 0.5).floor().byte().numpy()
    assert np.array_equal(grid[1:3, 1:3], expected[0, 0])
    assert np.array_equal(grid[4:6, 7:9], expected[4, 0])  # 5th image: 2nd row, 2nd column
    assert grid.min() == 0 and np.all(grid[4:6, 7:9] == 255)  # below 0 black, above 1 white
    unpadded = np.asarray(_grid_image(images, nrow=5, padding=0))
    assert unpadded.shape == (2, 10) and np.array_equal(unpadded[:, 8:], expected[4, 0])


def test_principal_components_project_on_the_axes_of_largest_variance():
    torch.manual_seed(0)
    scales = torch.tensor([5.0, 2.0, 1.0])
    points = torch.randn(2000, 3) * scales + torch.tensor([10.0, -3.0, 0.0])
    projected, explained = principal_components(points)
    variances = projected.double().var(0, correction=0)
    total = points.double().var(0, correction=0).sum()
    torch.testing.assert_close(explained.double(), (variances / total), rtol=1e-5, atol=1e-6)
    assert explained.tolist() == pytest.approx([25 / 30, 4 / 30], abs=0.02)
    torch.testing.assert_close(projected.mean(0), torch.zeros(2), atol=1e-4, rtol=0)


def test_latent_means_are_drawn_by_label_in_their_own_or_principal_coordinates():
    torch.manual_seed(0)
    labels = torch.arange(100) % 10
    two = torch.randn(100, 2)
    ax, colorbar = latent_scatter_figure(two, labels).axes
    assert ax.get_title() == "Latent means of q(z|x)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$\\mu_1$", "$\\mu_2$")
    [points] = ax.collections
    np.testing.assert_allclose(points.get_offsets(), two.numpy())
    assert points.get_cmap().name == "tab10" and points.get_clim() == (-0.5, 9.5)
    np.testing.assert_array_equal(points.get_array(), labels.numpy())
    assert list(points.get_sizes()) == [3]
    assert list(colorbar.get_yticks()) == list(range(10)) and colorbar.get_ylabel() == "digit"

    five = torch.randn(100, 5) * torch.tensor([4.0, 2.0, 1.0, 0.5, 0.1])
    fig = latent_scatter_figure(five, labels)
    assert tuple(fig.get_size_inches() * fig.dpi) == (800, 600)
    ax = fig.axes[0]
    shown, explained = principal_components(five)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), shown.numpy(), rtol=1e-5)
    assert ax.get_title() == "Latent means of q(z|x), 5 dimensions projected by PCA"
    percent = [f"{100 * float(e):.0f}%" for e in explained]
    assert ax.get_xlabel() == f"PC 1 ({percent[0]} of the variance)"
    assert ax.get_ylabel() == f"PC 2 ({percent[1]} of the variance)"
    three = latent_scatter_figure(torch.randn(100, 3), labels).axes[0]  # any size above 2
    assert three.get_title() == "Latent means of q(z|x), 3 dimensions projected by PCA"


def test_training_curves_draw_each_epochs_elbos_from_metrics_csv(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "epoch,step,train/elbo,val/elbo\n0,4,,-120.5\n0,4,-130.0,\n1,9,,nan\n1,9,-110.0,\n"
    )
    assert read_epoch_curves(metrics, ("train/elbo", "val/elbo")) == {
        "train/elbo": [(0, -130.0), (1, -110.0)],
        "val/elbo": [(0, -120.5)],  # NaN and empty cells left out
    }
    assert read_epoch_curves(metrics, ("val/elbo",), x="step") == {"val/elbo": [(4, -120.5)]}
    fig = training_curves_figure(metrics)
    assert tuple(fig.get_size_inches() * fig.dpi) == (800, 600)
    [ax] = fig.axes
    train, val = ax.lines
    assert (train.get_label(), val.get_label()) == ("train/elbo", "val/elbo")
    # Epochs counted from 0, as the console and the checkpoint names count them.
    assert list(train.get_xdata()) == [0, 1] and list(train.get_ydata()) == [-130.0, -110.0]
    assert list(val.get_xdata()) == [0] and train.get_marker() == "o"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "ELBO (nats per data point)")
    assert ax.get_title() == "Training curves"
    save_training_curves(metrics, tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size == (800, 600)


def test_saved_scatter_is_the_figure_at_800_by_600_pixels(tmp_path):
    means, labels = torch.randn(20, 2), torch.arange(20) % 10
    save_latent_scatter(means, labels, tmp_path / "scatter.png")
    saved = Image.open(tmp_path / "scatter.png")
    assert saved.size == (800, 600)
    latent_scatter_figure(means, labels).savefig(tmp_path / "figure.png")
    assert np.array_equal(np.asarray(saved), np.asarray(Image.open(tmp_path / "figure.png")))


def test_a_grid_saved_with_a_title_says_so_in_its_png(tmp_path):
    grid = _grid_image(torch.rand(4, 1, 5, 5), nrow=2, padding=1)
    figures.save_titled_grid(grid, "Samples", tmp_path / "titled.png")
    grid.save(tmp_path / "plain.png")
    assert figures.is_titled(tmp_path / "titled.png")
    assert not figures.is_titled(tmp_path / "plain.png")


def _drawn_grids(monkeypatch) -> dict:
    """What the next save_titled_grid call is given (grid, title, path, axes), instead of a PNG."""
    drawn = {}

    def draw(grid, title, path, axes=None):
        drawn.update(grid=grid, title=title, path=path, axes=axes)

    monkeypatch.setattr(figures, "save_titled_grid", draw)
    return drawn


@pytest.mark.parametrize("means", [None, torch.randn(50, 2) * 3])
def test_the_manifold_decodes_its_grid_and_says_which_grid(means, monkeypatch, tmp_path):
    vae = VariationalAutoencoder((1, 28, 20), 2, [8], "tanh", "gaussian")
    drawn = _drawn_grids(monkeypatch)
    figures.save_manifold(vae, tmp_path / "manifold.png", "VAE", means=means)
    assert drawn["grid"].size == (20 * 20, 20 * 28)  # 20 x 20 faces, no padding
    torch.testing.assert_close(drawn["axes"], manifold_axes(20, means))
    kind = "the prior's quantiles Φ⁻¹(u)" if means is None else "quantiles of the latent means"
    assert drawn["title"] == f"VAE: learned manifold E[x|z], z at {kind}"
    expected = figures._grid_image(vae.decode(manifold_latents(20, means)), nrow=20, padding=0)
    assert np.array_equal(np.asarray(drawn["grid"]), np.asarray(expected))


def test_the_manifold_needs_a_two_dimensional_latent_space(tmp_path):
    vae = VariationalAutoencoder((1, 28, 28), 3, [8], "tanh", "bernoulli")
    with pytest.raises(ValueError, match="needs a 2-D latent space, not 3-D"):
        figures.save_manifold(vae, tmp_path / "manifold.png", "VAE")


def test_prior_samples_are_a_ten_by_ten_grid_of_decoded_prior_draws(monkeypatch, tmp_path):
    vae = VariationalAutoencoder((1, 28, 28), 2, [8], "tanh", "bernoulli")
    drawn = _drawn_grids(monkeypatch)
    torch.manual_seed(3)
    figures.save_prior_samples(vae, tmp_path / "samples.png", "VAE")
    assert drawn["grid"].size == (10 * 30 + 2, 10 * 30 + 2)  # 2-pixel gaps
    assert drawn["title"] == "VAE: E[x|z] of prior samples z ~ p(z)"
    torch.manual_seed(3)
    expected = figures._grid_image(vae.sample(100), nrow=10, padding=figures.PADDING)
    assert np.array_equal(np.asarray(drawn["grid"]), np.asarray(expected))


def test_a_titled_grid_is_drawn_8_inches_wide_under_its_wrapped_title():
    # Greys in [0.25, 0.75] between white padding: drawn as they are, not stretched to black.
    grid = _grid_image(0.25 + torch.rand(6, 1, 4, 5) / 2, nrow=3, padding=1)  # 19 x 11 pixels
    title = "A long title " * 10
    fig = figures.titled_grid_figure(grid, title)
    assert grid.size == (19, 11)
    assert tuple(fig.get_size_inches()) == pytest.approx((8, 8 * 11 / 19 + 0.6))
    [ax] = fig.axes
    assert ax.get_title() == textwrap.fill(title, figures.TITLE_WIDTH) and "\n" in ax.get_title()
    [image] = ax.images
    assert image.get_cmap().name == "gray" and image.get_clim() == (0, 255)
    assert image.get_interpolation() == "nearest" and not ax.axison
    np.testing.assert_array_equal(image.get_array(), np.asarray(grid.convert("L")))


def test_a_manifolds_grid_names_z1_and_z2_at_cell_centres_alike_either_side():
    size = 10
    axes = torch.stack([torch.linspace(-2, 2, size), torch.linspace(-1, 3, size)], 1)
    grid = Image.new("L", (size * 4, size * 6), 128)  # cells of 4 x 6 pixels
    [ax] = figures.titled_grid_figure(grid, "Manifold", axes).axes
    assert ax.axison and (ax.get_xlabel(), ax.get_ylabel()) == ("$z_1$", "$z_2$")
    # Cells i and 9 - i for every second i: both ends and the same ticks either side.
    cells = (0, 2, 4, 5, 7, 9)
    assert list(ax.get_xticks()) == [(i + 0.5) * 4 for i in cells]
    assert list(ax.get_yticks()) == [(i + 0.5) * 6 for i in cells]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{axes[i, 0]:.2f}" for i in cells]
    assert (
        ax.get_xticklabels()[0].get_text() == "-2.00"
        and ax.get_xticklabels()[-1].get_text() == "2.00"
    )
    rows = axes[:, 1].flip(0)  # z_2 decreases down the rows
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{rows[i]:.2f}" for i in cells]
    [ax] = figures.titled_grid_figure(grid, "Manifold", axes[:3]).axes  # a tick in every row
    assert list(ax.get_xticks()) == [(i + 0.5) * size * 4 / 3 for i in range(3)]


def test_a_titled_grid_is_saved_with_its_title_and_further_metadata(tmp_path):
    grid = _grid_image(torch.rand(4, 1, 5, 5), nrow=2, padding=1)  # 13 x 13 pixels
    path = tmp_path / "grid.png"
    figures.save_titled_grid(grid, "Samples", path, metadata={"Author": "vae-lightning"})
    saved = Image.open(path)
    assert (saved.info["Title"], saved.info["Author"]) == ("Samples", "vae-lightning")
    assert saved.size == (8 * PLOT_DPI, round((8 + 0.6) * PLOT_DPI))


def test_a_manifold_is_saved_with_its_z_values_as_drawn(tmp_path):
    axes = torch.stack([torch.linspace(-2, 2, 5), torch.linspace(-1, 3, 5)], 1)
    grid = Image.new("L", (40, 40), 128)
    figures.save_titled_grid(grid, "Manifold", tmp_path / "saved.png", axes)
    figures.titled_grid_figure(grid, "Manifold", axes).savefig(
        tmp_path / "drawn.png", dpi=PLOT_DPI, metadata={"Title": "Manifold"}
    )
    saved, drawn = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("saved", "drawn"))
    np.testing.assert_array_equal(saved, drawn)


@pytest.mark.parametrize(
    ("hparams", "title"),
    [
        (
            {"likelihood": "bernoulli", "latent_dim": 2},
            "VAE (elbo, bernoulli decoder), latent size 2",
        ),
        (
            {"likelihood": "gaussian", "latent_dim": 5, "objective": "iwae"},
            "VAE (iwae, gaussian decoder), latent size 5",
        ),
        (
            {"likelihood": "linear_gaussian", "latent_dim": 1},
            "PPCA (elbo, linear_gaussian decoder), latent size 1",
        ),
    ],
)
def test_a_model_is_titled_by_its_kind_objective_decoder_latent_size_and_epoch(hparams, title):
    assert figures.model_title(hparams, 3) == f"{title}, epoch 3"


def test_grey_levels_are_rounded_to_the_nearest_of_256():
    levels = torch.arange(256) / 255
    grid = torch.stack([levels.reshape(16, 16)] * 3)  # make_grid's three equal channels
    expected = torch.arange(256, dtype=torch.uint8).reshape(16, 16).numpy()
    np.testing.assert_array_equal(np.asarray(figures.grey_image(grid)), expected)
    nudged = (levels + 0.49 / 255).clamp(max=1)  # still nearest to the same level
    same = np.asarray(figures.grey_image(torch.stack([nudged.reshape(16, 16)] * 3)))
    np.testing.assert_array_equal(same, expected)
