"""The report's methods and networks, on made-up records: wake-sleep beside AEVB in Figure 2
and its own table, a record of conv networks beside the MLP record of its panel, and the IWAE
against the VAE beside Burda et al.'s Table 1; none of these sections without such records."""

import json
import math
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from vae_lightning.report import write_report
from vae_lightning.report.records import find_records
from vae_lightning.report.tables import study_table
from vae_lightning.report.variants import layout, method, networks, optimiser, variant

MNIST = "vae_lightning.data.MNISTDataModule"
ADAGRAD = {"_target_": "torch.optim.Adagrad", "_partial_": True, "lr": 0.02}
ADAGRAD |= {"weight_decay": 2e-5, "fused": True}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "weight_decay": 0.0}
CONV_ENCODER = {"_target_": "vae_lightning.models.encoders.ConvEncoder"}
CONV_DECODER = {"_target_": "vae_lightning.models.decoders.conv_decoder"}
CONV = {"channels": [32, 64], "hidden_dim": 256, "activation": "relu"}


def write_record(
    folder: Path,
    latent: int,
    elbo: list[float],
    model: dict | None = None,
    is_gain: float = 3.0,
    per_point: bool = True,
    active: int | None = None,
    samples: int = 10**7,
) -> None:
    """A made-up MNIST record evaluated on len(elbo) test images: their ELBOs, an IS estimate
    ``is_gain`` above each, its model config (``model``: the paper's MLP trained by AEVB with
    Adagrad, updated), epoch ends of a rising curve, per_point.csv if ``per_point``, and the
    latent diagnostics with ``active`` active units if given."""
    folder.mkdir(parents=True)
    settings = {"latent_dim": latent, "hidden_dims": [500], "objective": "elbo"}
    settings |= {"num_samples": 1, "optimizer": ADAGRAD, "scheduler": None, **(model or {})}
    data = {"_target_": MNIST, "batch_size": 100}
    (folder / "config.yaml").write_text(json.dumps({"data": data, "model": settings}))
    summary = {
        "latent_dim": latent, "steps": samples // 100, "samples_seen": samples,
        "binarize": "dynamic", "wall_time_s": 100.0, "metrics": {"train/elbo": elbo[0]},
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    rows, epochs = ["epoch,step,train/elbo,val/elbo"], 20
    for epoch in range(epochs):
        step = (samples // 100) * (epoch + 1) // epochs - 1
        value = elbo[0] - 30 / (epoch + 1)
        rows += [f"{epoch},{step},{value},", f"{epoch},{step},,{value - 1}"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    values = {"elbo": elbo, "log_likelihood_is": [e + is_gain for e in elbo]}
    n = len(elbo)
    metrics = {}
    for name, column in values.items():
        mean = sum(column) / n
        sem = math.sqrt(sum((v - mean) ** 2 for v in column) / (n - 1) / n)
        metrics[name] = {"mean": mean, "sem": sem}
    evaluation = {
        "subset": {"num_points": n, "split_size": n, "seed": None, "indices_sha256": "all"},
        "num_importance_samples": 5000,
        "metrics": metrics,
    }
    if active is not None:
        kl = [1.0] * active + [1e-4] * (latent - active)
        evaluation["latent"] = {
            "active_units": active, "active_unit_threshold": 0.01, "kl_per_dim": kl,
            "unit_activity": [0.5] * active + [1e-4] * (latent - active), "kl": sum(kl),
        }  # fmt: skip
    (folder / "eval.json").write_text(json.dumps(evaluation))
    if per_point:
        lines = ["index,elbo,log_likelihood_is"]
        lines += [f"{i},{e},{e + is_gain}" for i, e in enumerate(elbo)]
        (folder / "per_point.csv").write_text("\n".join(lines) + "\n")


def table(text: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table after a heading, as {column: cell}."""
    section = text.split(heading, 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    first = section.splitlines().index(lines[0])
    lines = []
    for line in section.splitlines()[first:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = lines[0].strip("| ").split(" | ")
    rows = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert all(len(row) == len(header) for row in rows), rows
    return [dict(zip(header, row, strict=True)) for row in rows]


def drawn_figures(monkeypatch) -> list[Figure]:
    """The figures the report saves (and still saves them)."""
    drawn, save = [], Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))
    )
    return drawn


AEVB3 = [-100.0, -102.0, -101.0, -99.0]
SLEEP3 = [-110.0, -111.0, -113.0, -108.0]  # AEVB - wake-sleep per image: 10, 9, 12, 9


@pytest.fixture
def wake_sleep_runs(tmp_path) -> Path:
    """MNIST latent 3 by both methods, latent 5 by AEVB only, latent 10 by both (the
    wake-sleep record without per-image values, at its own step size)."""
    runs = tmp_path / "runs"
    write_record(runs / "mnist_latent3_1e7", 3, AEVB3)
    write_record(runs / "mnist_latent5_1e7", 5, [-90.0, -91.0, -92.0, -93.0])
    write_record(runs / "mnist_latent10_1e7", 10, [-80.0, -82.0, -81.0, -83.0])
    sleep = {"objective": "wake_sleep"}
    write_record(runs / "wake_sleep" / "mnist_latent3_1e7", 3, SLEEP3, sleep)
    other_lr = {**sleep, "optimizer": {**ADAGRAD, "lr": 0.1}}
    write_record(runs / "wake_sleep" / "mnist_latent10_1e7", 10, [-85.0] * 4, other_lr, 3.0, False)
    return runs


def test_wake_sleep_is_drawn_beside_aevb_in_figure_2_and_compared_in_a_table(
    wake_sleep_runs, tmp_path, monkeypatch
):
    drawn = drawn_figures(monkeypatch)
    text = write_report([wake_sleep_runs], tmp_path / "out").read_text()

    # The data set's table names each row's method, AEVB first in each latent size.
    rows = table(text, "## MNIST")
    assert [(row["latent"], row["method"]) for row in rows] == [
        ("3", "AEVB"), ("3", "wake-sleep"), ("5", "AEVB"), ("10", "AEVB"), ("10", "wake-sleep"),
    ]  # fmt: skip
    assert rows[1]["test ELBO"].startswith("-110.50 ± ")

    # Figure 2: in each panel with both, both methods' curves and test stars, labelled, and
    # one legend below the panels, a column per method.
    [curves] = [f for f in drawn if f.axes[0].get_title() == "MNIST, latent 3"]
    labels = {ax.get_title(): ax.get_legend_handles_labels()[1] for ax in curves.axes}
    aevb = ["AEVB, train", "AEVB, val", "AEVB, test, evaluation"]
    sleep = ["wake-sleep, train", "wake-sleep, val", "wake-sleep, test, evaluation"]
    band = "paper's AEVB, after $10^8$"  # the paper's values, read for latent 10 and 20
    assert labels == {
        "MNIST, latent 3": aevb + sleep, "MNIST, latent 5": aevb,
        "MNIST, latent 10": [*aevb, *sleep, band],
    }  # fmt: skip
    assert all(ax.get_legend() is None for ax in curves.axes)
    [legend] = curves.legends
    # A column of three a method (the band's padded with blank entries), below every panel.
    assert [t.get_text() for t in legend.get_texts()] == [*aevb, *sleep, band, "", ""]
    canvas = FigureCanvasAgg(curves)
    canvas.draw()
    below = legend.get_window_extent(canvas.get_renderer())
    for ax in curves.axes:  # its ticks, tick labels and axis labels included
        assert below.y1 < ax.get_tightbbox(canvas.get_renderer()).y0
    assert "The legend names each curve's method (AEVB and wake-sleep), a colour each" in text

    # The comparison: the paired difference of the same images, else the bound.
    rows = table(text, "## AEVB against wake-sleep")
    assert [row["latent"] for row in rows] == ["3", "5", "10"]
    latent3, latent5, latent10 = rows
    # d = (10, 9, 12, 9): mean 10, s.d. sqrt(2), s.e. sqrt(2) / 2.
    assert latent3["AEVB - wake-sleep"] == "+10.00 ± 0.71 (paired s.e.)"
    assert latent3["training samples"] == "10^7" and latent3["test points"] == "all 4"
    assert latent5["wake-sleep test ELBO"] == "not yet recorded"
    assert latent5["AEVB - wake-sleep"] == "—"
    assert latent10["AEVB - wake-sleep"].startswith("+3.50 (s.e. ≤ ")  # no per_point.csv
    # Latent 10's wake-sleep ran at another step size: said, from the configs.
    assert (
        "- `mnist_latent10_1e7` and `wake_sleep/mnist_latent10_1e7`: different optimisers: "
        "Adagrad (lr 0.02, weight decay 2e-05) for `mnist_latent10_1e7`, Adagrad (lr 0.1, "
        "weight decay 2e-05) for `wake_sleep/mnist_latent10_1e7`." in text
    )
    assert "`mnist_latent3_1e7` and `wake_sleep/mnist_latent3_1e7`:" not in text

    # The paper's values are AEVB's: its comparison lists the AEVB records only.
    compared = table(text, "## Comparison with the paper")
    assert [row["latent"] for row in compared] == ["3", "5", "10"]
    # The same records give the same bytes.
    assert write_report([wake_sleep_runs], tmp_path / "again").read_text() == text


def test_no_method_column_nor_section_without_a_second_method(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    write_record(runs / "mnist_latent3_1e7", 3, AEVB3)
    drawn = drawn_figures(monkeypatch)
    text = write_report([runs], tmp_path / "out").read_text()
    assert "method" not in table(text, "## MNIST")[0]
    for absent in (
        "wake-sleep",
        "## IWAE against VAE",
        "## Networks other",
        "Burda et al. (2016), Table 1",
    ):
        assert absent not in text
    [curves] = [f for f in drawn if f.axes[0].get_title() == "MNIST, latent 3"]
    legend = [t.get_text() for t in curves.axes[0].get_legend().get_texts()]
    assert legend == ["train", "val", "test, evaluation"]


def test_wake_sleep_records_alone_are_still_named_by_their_method(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs / "wake_sleep" / "mnist_latent3_1e7", 3, SLEEP3, {"objective": "wake_sleep"})
    text = write_report([runs], tmp_path / "out").read_text()
    assert [row["method"] for row in table(text, "## MNIST")] == ["wake-sleep"]
    assert table(text, "## AEVB against wake-sleep")[0]["AEVB test ELBO"] == "not yet recorded"
    assert "## Comparison with the paper" not in text  # the paper's values are AEVB's


def test_the_image_figures_of_two_methods_of_one_panel_do_not_overwrite_each_other(tmp_path):
    runs = tmp_path / "runs"
    for folder, model in (("aevb", None), ("wake_sleep/aevb", {"objective": "wake_sleep"})):
        write_record(runs / folder, 2, AEVB3, model)
        Image.new("L", (62, 62), 255).save(runs / folder / "samples.png")
    text = write_report([runs], tmp_path / "out").read_text()
    figures = tmp_path / "out" / "figures"
    for name, trained in (("", ""), ("_wake_sleep", ", wake-sleep")):
        assert (figures / f"mnist_latent2_10000000{name}_samples.png").is_file()
        assert f"*MNIST, latent 2, 10^7 samples{trained}: E[x|z] of samples z" in text


CONV_MODEL = {"encoder": {**CONV_ENCODER, **CONV}, "decoder": {**CONV_DECODER, **CONV}}


def test_a_conv_record_is_named_by_its_networks_and_compared_with_the_mlp_of_its_panel(
    tmp_path, monkeypatch
):
    runs = tmp_path / "runs"
    mlp = [-100.0, -102.0, -101.0, -99.0]
    conv = [-95.0, -98.0, -96.0, -95.0]  # conv - MLP per image: 5, 4, 5, 4
    write_record(runs / "mnist_latent20_1e7", 20, mlp, active=12)
    write_record(runs / "conv_mnist_latent20_1e7", 20, conv, {**CONV_MODEL, "optimizer": ADAM})
    text = write_report([runs], tmp_path / "out").read_text()

    # Not in the grid: the data set's table and Figure 2 hold the MLP only.
    assert [row["latent"] for row in table(text, "## MNIST")] == ["20"]
    rows = {row["record"]: row for row in table(text, "## Networks other than the paper's MLPs")}
    conv_row, mlp_row = rows["`conv_mnist_latent20_1e7`"], rows["`mnist_latent20_1e7`"]
    assert conv_row["networks"] == "conv (channels 32, 64; hidden 256)"
    assert mlp_row["networks"] == "MLP [500]"
    assert conv_row["optimiser"] == "Adam (lr 0.001, weight decay 0)"
    assert mlp_row["optimiser"] == "Adagrad (lr 0.02, weight decay 2e-05)"
    assert conv_row["method"] == mlp_row["method"] == "AEVB"
    assert mlp_row["active units"] == "12 of 20" and conv_row["active units"] == "—"
    # d = (5, 4, 5, 4): mean 4.5, s.d. sqrt(1/3), s.e. sqrt(1/3) / 2; IS the same.
    assert (
        "- `conv_mnist_latent20_1e7` minus `mnist_latent20_1e7`: test ELBO +4.50 ± 0.29 "
        "(paired s.e.); IS log p(x) +4.50 ± 0.29 (paired s.e.). Trained with different "
        "optimisers: Adam (lr 0.001, weight decay 0) for `conv_mnist_latent20_1e7`, Adagrad "
        "(lr 0.02, weight decay 2e-05) for `mnist_latent20_1e7`, so the difference is not the "
        "networks' alone." in text
    )


def test_a_conv_record_with_the_grids_optimiser_and_no_mlp_partner(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs / "mnist_latent20_1e7", 20, AEVB3, per_point=False)
    write_record(runs / "conv_latent20", 20, SLEEP3, CONV_MODEL)
    write_record(runs / "conv_latent5", 5, SLEEP3, CONV_MODEL)
    text = write_report([runs], tmp_path / "out").read_text()
    assert (
        "- `conv_latent20` minus `mnist_latent20_1e7`: test ELBO -10.00 (s.e. ≤ " in text
        and "Trained with the same optimiser, Adagrad (lr 0.02, weight decay 2e-05)." in text
    )
    assert "- `conv_latent5`: no record of the paper's MLPs with its data set" in text


BURDA = {"hidden_dims": [200, 200], "num_samples": 5, "optimizer": ADAM}


def test_the_iwae_is_compared_with_the_vae_of_its_network_beside_burda_et_al(tmp_path):
    runs = tmp_path / "runs"
    vae = [-88.0, -87.0, -89.0, -86.0]
    iwae = [-88.5, -87.0, -89.5, -86.5]  # IWAE - VAE per image: -0.5, 0, -0.5, -0.5 (ELBO)
    write_record(runs / "burda_vae_k5", 50, vae, BURDA, is_gain=1.0, active=18, samples=43_740_000)
    iwae_model = {**BURDA, "objective": "iwae"}
    # IS, 1 and 2.5 above the ELBOs: IWAE - VAE per image 1.0, 1.5, 1.0, 1.0.
    write_record(runs / "burda_iwae_k5", 50, iwae, iwae_model, 2.5, active=23, samples=43_740_000)
    write_record(runs / "mnist_latent20_1e7", 20, AEVB3)  # the grid, apart
    text = write_report([runs], tmp_path / "out").read_text()

    assert [row["latent"] for row in table(text, "## MNIST")] == ["20"]
    rows = table(text, "## IWAE against VAE")
    assert [(row["source"], row["model"], row["k"]) for row in rows] == [
        ("ours: `burda_vae_k5`", "VAE (the ELBO)", "5"),
        ("ours: `burda_iwae_k5`", "IWAE (the bound L_k)", "5"),
        ("ours: IWAE - VAE, same test images", "", ""),
        ("Burda et al. (2016), Table 1", "VAE (the ELBO)", "5"),
        ("Burda et al. (2016), Table 1", "IWAE (the bound L_k)", "5"),
        ("Burda et al. (2016), Table 1: IWAE - VAE", "", ""),
    ]
    ours_vae, ours_iwae, ours, theirs_vae, theirs_iwae, theirs = rows
    assert ours_vae["training samples"] == "43,740,000" and ours_vae["K"] == "5000"
    assert ours_vae["active units"] == "18 of 50" and ours_iwae["active units"] == "23 of 50"
    # ELBO: d = (-0.5, 0, -0.5, -0.5), mean -0.375, s.e. 0.125; IS: d + 1.5.
    assert ours["test ELBO"].startswith("-0.38 ± 0.12 (paired s.e.")
    assert ours["IS log p(x)"] == "+1.12 ± 0.12 (paired s.e.)"
    assert ours["active units"] == "+5" and ours["test points"] == "all 4"
    assert (theirs_vae["IS log p(x)"], theirs_iwae["IS log p(x)"]) == ("-86.47", "-85.54")
    assert (theirs_vae["active units"], theirs_iwae["active units"]) == ("20 of 50", "22 of 50")
    assert theirs_vae["training samples"] == "196,800,000" and theirs_vae["K"] == "5000"
    assert (theirs["IS log p(x)"], theirs["active units"]) == ("+0.93", "+2")
    assert "log p(x) estimated with K = 5000" in text and "(196,800,000 training samples" in text
    # The KL per dimension of the pair, as its own figure.
    assert "](figures/iwae_kl_per_dimension.png)" in text
    assert (tmp_path / "out" / "figures" / "iwae_kl_per_dimension.png").is_file()


def test_an_iwae_record_without_its_vae_is_shown_alone(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs / "iwae", 50, AEVB3, {"hidden_dims": [100], "objective": "iwae"})
    text = write_report([runs], tmp_path / "out").read_text()
    rows = table(text, "## IWAE against VAE")
    assert [row["source"] for row in rows] == [
        "ours",
        "ours: `iwae`",
        "ours: IWAE - VAE, same test images",
    ]
    assert rows[0]["test ELBO"] == "not yet recorded"
    assert "Burda et al. (2016), Table 1 |" not in text  # not their network


def test_labels_of_method_networks_and_optimiser_from_the_config(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs / "old", 2, AEVB3)
    (runs / "old" / "config.yaml").write_text(
        json.dumps({"data": {"_target_": MNIST, "batch_size": 100}})
    )
    own = {"encoder": {"_target_": "my_pkg.MyEncoder"}, "objective": "iwae"}
    write_record(runs / "own", 2, AEVB3, own)
    old, own_record = sorted(find_records([runs]), key=lambda r: r.name)
    # A record from before the objective and the networks were settings: AEVB on MLPs.
    assert (method(old), networks(old), variant(old)) == ("AEVB", "MLP", "")
    assert optimiser(old) == "the default optimiser"
    assert networks(own_record) == "MyEncoder encoder, MLP [500] decoder"
    assert (method(own_record), variant(own_record)) == ("IWAE", "_iwae_myencoder_mlp")
    assert layout([old]).grid == [old]


def test_a_study_table_names_the_networks_and_methods_where_they_differ(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs / "mlp", 20, AEVB3)
    write_record(runs / "conv", 20, AEVB3, CONV_MODEL)
    rows = study_table(find_records([runs]))
    header = rows[0].strip("| ").split(" | ")
    assert header[:4] == ["record", "settings", "networks", "latent"]
    cells = [row.strip("| ").split(" | ") for row in rows[2:]]
    assert [c[2] for c in cells] == ["conv (channels 32, 64; hidden 256)", "MLP [500]"]
