"""The report's figures as a reviewer reads them: each panel of Figure 2 zoomed to its curves,
no label drawn over another; the KL per dimension and the active units of the records whose
evaluations have them."""

import itertools
import json
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vae_lightning.report import write_report
from vae_lightning.report.figures import KL_FLOOR, save_elbo_curves, zoomed
from vae_lightning.report.records import find_records


def test_a_panel_is_zoomed_past_each_curves_first_point():
    # Without the first points (-450, -160): -150 to -95 with the marks, 5 % of 55 each way.
    low, high = zoomed([[-450.0, -150.0, -100.0], [-160.0, -120.0]], [-99.0, -95.0])
    assert (low, high) == pytest.approx((-150.0 - 2.75, -95.0 + 2.75))
    # A one-point curve keeps its point.
    assert zoomed([[-7.0]], []) == pytest.approx((-7.05, -6.95))


def drawn_tick_labels(axis) -> list:
    """The labels of the ticks inside the axis's view (matplotlib keeps others, undrawn)."""
    low, high = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks if low <= t.get_loc() <= high]


def text_boxes(fig: Figure) -> list:
    """The window extents of every drawn tick label, axis label and title."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    texts = [label for ax in fig.axes for label in drawn_tick_labels(ax.xaxis)]
    texts += [label for ax in fig.axes for label in drawn_tick_labels(ax.yaxis)]
    texts += [t for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title)]
    renderer = canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def test_figure_2_zooms_each_panel_and_overlaps_no_labels(tmp_path, monkeypatch):
    for latent, first in ((10, -450.0), (200, -180.0)):
        folder = tmp_path / f"latent{latent}"
        folder.mkdir()
        data = {"_target_": "vae_lightning.data.MNISTDataModule", "batch_size": 100}
        (folder / "config.yaml").write_text(json.dumps({"data": data}))
        summary = {"latent_dim": latent, "steps": 10**5, "samples_seen": 10**7, "metrics": {}}
        (folder / "summary.json").write_text(json.dumps(summary))
        # Epoch ends of 500 steps: one far-off first point, then a curve rising ~50 nats.
        rows = ["epoch,step,train/elbo,val/elbo"]
        for epoch in range(200):
            value = first if epoch == 0 else -150 + 50 * math.log(epoch + 1) / math.log(200)
            step = 500 * epoch + 499
            rows += [f"{epoch},{step},{value},", f"{epoch},{step},,{value}"]
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    save_elbo_curves(find_records([tmp_path]), tmp_path / "curves.png")
    [fig] = drawn
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert -160 < low < -145 and -100 < high < -90  # the curve, not its first point
    boxes = text_boxes(fig)
    assert len(boxes) > 10
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def write_record(folder, latent: int, diagnostics: dict | None) -> None:
    """A made-up MNIST record evaluated on 100 test images, with eval.json's ``latent`` block
    if ``diagnostics`` is given (else as evaluations before the latent diagnostics)."""
    folder.mkdir(parents=True)
    data = {"_target_": "vae_lightning.data.MNISTDataModule", "batch_size": 100}
    (folder / "config.yaml").write_text(json.dumps({"data": data}))
    summary = {
        "latent_dim": latent, "steps": 10**5, "samples_seen": 10**7, "binarize": "dynamic",
        "wall_time_s": 100.0, "metrics": {"train/elbo": -100.0},
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    evaluation = {
        "subset": {"num_points": 100, "split_size": 100, "seed": None, "indices_sha256": "all"},
        "num_importance_samples": 10,
        "metrics": {name: {"mean": -99.0, "sem": 0.5} for name in ("elbo", "log_likelihood_is")},
    }
    if diagnostics is not None:
        evaluation["latent"] = diagnostics
    (folder / "eval.json").write_text(json.dumps(evaluation))


def diagnostics(kl: list[float], activity: list[float], threshold: float = 0.01) -> dict:
    return {
        "active_units": sum(a > threshold for a in activity),
        "active_unit_threshold": threshold,
        "unit_activity": activity,
        "kl_per_dim": kl,
        "kl": sum(kl),
    }


def results_rows(text: str) -> dict[str, list[str]]:
    """The MNIST results table's rows by latent size."""
    table = text.split("## MNIST", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()]
    header = rows[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows[2:]}


def test_active_units_and_the_kl_per_dimension_of_the_records_that_have_them(tmp_path, monkeypatch):
    # Latent 20: units 0-4 carry KL and are active; the rest collapsed (one KL exactly 0).
    kl20 = [2.0, 0.5, 1.5, 3.0, 0.8] + [1e-4] * 14 + [0.0]
    write_record(tmp_path / "runs" / "latent20", 20, diagnostics(kl20, [0.9] * 5 + [1e-3] * 15))
    kl200 = [0.01 * (j + 1) if j < 30 else 1e-6 for j in range(200)]
    activity200 = [0.5 if j < 30 else 1e-4 for j in range(200)]
    write_record(tmp_path / "runs" / "latent200", 200, diagnostics(kl200, activity200))
    write_record(tmp_path / "runs" / "latent5", 5, diagnostics([1.0] * 5, [0.5] * 5))
    write_record(tmp_path / "runs" / "latent10", 10, None)  # evaluated before the diagnostics
    drawn = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))
    )
    text = write_report([tmp_path / "runs"], tmp_path / "out").read_text()

    rows = results_rows(text)
    assert [rows[latent]["active units"] for latent in ("5", "10", "20", "200")] == [
        "5 of 5", "—", "5 of 20", "30 of 200",
    ]  # fmt: skip
    assert "a variance over the evaluated test points above 0.01, out of the latent size" in text
    assert "—: the record's evaluation predates these diagnostics" in text
    # The figure: latent 20 and 200 (not 5: below KL_LATENTS), each dimension's KL sorted.
    path = "figures/mnist_kl_per_dimension.png"
    assert f"]({path})" in text and (tmp_path / "out" / path).is_file()
    [fig] = [f for f in drawn if f.axes[0].get_ylabel().startswith("KL per dimension")]
    assert [ax.get_title() for ax in fig.axes] == ["MNIST, latent 20", "MNIST, latent 200"]
    for ax, kl, active in zip(fig.axes, (kl20, kl200), (5, 30), strict=True):
        [line] = ax.get_lines()
        assert list(line.get_ydata()) == sorted((max(k, KL_FLOOR) for k in kl), reverse=True)
        [label] = [t.get_text() for t in ax.get_legend().get_texts()]
        assert label.endswith(f": {active} of {len(kl)} units active")
        [markers] = ax.collections  # filled markers: the active units, the largest KLs here
        filled = [face[3] > 0 for face in markers.get_facecolors()]
        assert filled == [True] * active + [False] * (len(kl) - active)
    # The same records give the same bytes.
    again = write_report([tmp_path / "runs"], tmp_path / "again")
    assert again.read_text() == text
    assert (tmp_path / "again" / path).read_bytes() == (tmp_path / "out" / path).read_bytes()


def test_no_kl_figure_and_no_active_units_where_no_record_has_the_diagnostics(tmp_path):
    write_record(tmp_path / "runs" / "latent20", 20, None)
    text = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert results_rows(text)["20"]["active units"] == "—"
    assert "predates these diagnostics" in text and "kl_per_dimension" not in text
    assert not list((tmp_path / "out" / "figures").glob("*kl_per_dimension*"))
