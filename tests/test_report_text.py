"""The discussion's templates: numbers only through placeholders, each computed from the
records (or cited from the literature module), and the comparisons they state."""

import json
from pathlib import Path

import pytest
from conftest import ROOT

from vae_lightning.errors import UserError
from vae_lightning.literature import LITERATURE
from vae_lightning.report.comparisons import ACROSS
from vae_lightning.report.frey_split import runs, split_of
from vae_lightning.report.quantities import PER_RECORD, resume_point
from vae_lightning.report.records import Record, find_records
from vae_lightning.report.statistics import permutation_test, welch
from vae_lightning.report.text import literal_numbers, render

MNIST = "vae_lightning.data.MNISTDataModule"


def write_record(
    folder: Path, latent: int, elbo: list[float], data: dict | None = None, per_point=True
) -> None:
    """A record of an MNIST run evaluated on len(elbo) test images with these ELBOs."""
    folder.mkdir(parents=True)
    settings = {"_target_": MNIST, "batch_size": 10, **(data or {})}
    (folder / "config.yaml").write_text(json.dumps({"data": settings}))
    summary = {"latent_dim": latent, "steps": 10, "samples_seen": 100, "metrics": {}}
    (folder / "summary.json").write_text(json.dumps(summary))
    n, mean = len(elbo), sum(elbo) / len(elbo)
    sem = (sum((e - mean) ** 2 for e in elbo) / (n - 1) / n) ** 0.5
    evaluation = {
        "subset": {"num_points": n, "split_size": n, "seed": None, "indices_sha256": "all"},
        "num_importance_samples": 10,
        "metrics": {"elbo": {"mean": mean, "sem": sem}},
    }
    (folder / "eval.json").write_text(json.dumps(evaluation))
    if per_point:
        rows = ["index,elbo", *(f"{i},{e}" for i, e in enumerate(elbo))]
        (folder / "per_point.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def records(tmp_path) -> list[Record]:
    write_record(tmp_path / "small", 2, [-10.0, -12.0, -11.0, -13.0])
    write_record(tmp_path / "large", 5, [-9.0, -11.5, -10.0, -12.0])
    write_record(tmp_path / "unkept", 3, [-9.5, -11.0, -10.5, -12.0], per_point=False)
    write_record(tmp_path / "other_draw", 4, [-9.0, -11.0, -10.0, -12.0], {"split_seed": 1})
    for seed, elbo in enumerate([[-20.0, -21.0], [-22.0, -23.0], [-19.0, -21.0]]):
        write_record(tmp_path / "study" / f"a_seed{seed}", 2, elbo)
        write_record(tmp_path / "study" / f"b_seed{seed}", 2, [e + 5 for e in elbo])
    return find_records([tmp_path])


def test_a_template_states_numbers_only_through_placeholders():
    text = "Figure 2 and Table 1 of Kingma & Welling (2014), K/2, z_1, N(0, I): ${mean(x, elbo)}."
    assert literal_numbers(text) == []
    assert literal_numbers("It gains 13.8 nats at latent ${latents(x)}, 2-D.") == ["13.8", "2"]
    with pytest.raises(UserError, match=r"states numbers that no placeholder computes: \['3'\]"):
        render("Latent 3 is best.", [], Path("discussion.md"))


def test_committed_templates_state_no_number_of_their_own():
    for template in (ROOT / "docs" / "runs").rglob("*.md"):
        assert literal_numbers(template.read_text()) == [], template


def test_placeholders_show_a_record_quantity_a_shared_value_or_the_literature(records):
    assert render("${mean(small, elbo)} nats", records, Path("t")) == "-11.50 nats"
    assert render("${k(study/*)}", records, Path("t")) == "10"  # shared by the pattern's records
    with pytest.raises(UserError, match="differs between records"):
        render("${mean(study/*, elbo)}", records, Path("t"))
    assert render("${literature(burda_vae)}", records, Path("t")) == LITERATURE["burda_vae"][0]
    for wrong in ("${nothing(small)}", "${mean(nobody, elbo)}", "${mean(small, nothing)}"):
        with pytest.raises(UserError, match="t: "):
            render(wrong, records, Path("t"))
    assert not PER_RECORD.keys() & ACROSS.keys()  # one meaning per name


def test_a_difference_on_the_same_images_is_paired_or_bounded(records):
    # small - large per image: (-1, -0.5, -1, -1): mean -0.875, s.d. 0.25, s.e. 0.125.
    paired = render("${diff(small, large, elbo)}", records, Path("t"))
    assert paired == "-0.88 ± 0.12 (paired s.e.)"
    # Without per-image values: the sum of the two standard errors bounds the s.e.
    small, unkept = (next(r for r in records if r.name == n) for n in ("small", "unkept"))
    bound = small.metric("elbo")["sem"] + unkept.metric("elbo")["sem"]
    bounded = render("${diff(small, unkept, elbo)}", records, Path("t"))
    assert bounded.startswith(f"-0.75 (s.e. ≤ {bound:.2f}, a bound too loose to decide")
    with pytest.raises(UserError, match="not evaluated on the same test images"):
        render("${diff(small, other_draw, elbo)}", records, Path("t"))


def test_two_groups_of_seeds_are_compared_by_welch_and_permutation_tests(records):
    text = render("${two_sample(study/b_*, study/a_*, mean, elbo)}", records, Path("t"))
    a = [-20.5, -22.5, -20.0]
    b = [e + 5 for e in a]
    assert f"Welch's t = {welch(b, a).t:.2f}" in text and "difference of +5.00" in text
    assert f"over the 20 ways to split the seeds, p = {permutation_test(b, a).p:.2f}" in text
    assert "the smallest it can give with these seeds is 0.10" in text
    # Welch's p = 0.017; the permutation test's 0.10 is the smallest it can give.
    assert "Welch's test detects a difference at the 5 % level, the permutation" in text


def test_a_frey_face_split_is_whole_runs_but_for_its_last():
    def split(block: int, seed: int) -> dict[str, set[int]]:
        data = {"_target_": "FreyFaceDataModule", "split_block": block, "split_seed": seed}
        record = Record(
            folder=Path("r"), data="FreyFaceDataModule", summary={}, batch_size=100,
            evaluation=None, eval_folder=None, experiment=None, overrides=[], study=None,
            snapshots=[], config={"data": data},
        )  # fmt: skip
        return split_of(record)

    for block, seed in ((1, 0), (50, 0), (50, 3)):
        chosen = split(block, seed)
        assert [len(chosen[s]) for s in ("val", "test", "train")] == [200, 200, 1565]
        assert set().union(*chosen.values()) == set(range(1965))
    test = runs(split(50, 0)["test"])
    # 39 runs of 50 and frames 1950-1964: each test run starts a run of 50, all but the last
    # ends one (runs shuffled next to each other join), and the last run may be cut short.
    assert all(first % 50 == 0 for first, _ in test)
    assert sum(last - first + 1 for first, last in test) == 200
    assert sum((last + 1) % 50 != 0 and last != 1964 for _, last in test) <= 1


def test_the_verdicts_alone_name_the_tests_that_decide(records):
    """Welch's p = 0.017, the permutation test's 0.10 (its smallest with 3 seeds per arm); the
    spreads are equal, so neither spread test finds them unequal."""
    text = render(
        "${detects(study/b_*, study/a_*, mean, elbo)}; ${spreads_differ(study/b_*, study/a_*, "
        "mean, elbo)}",
        records,
        Path("t"),
    )
    assert text == (
        "Welch's test detects a difference at the 5 % level, the permutation test does not; "
        "neither test detects unequal spreads at the 5 % level"
    )


def test_a_study_table_shows_the_settings_that_differ_as_the_configs_hold_them(tmp_path):
    """An explicit default reads as one left out; display-only overrides are not settings."""
    from vae_lightning.report.tables import study_table

    for name, overrides in (
        ("a", ["model.latent_dim=2"]),
        ("b", ["model.latent_dim=2", "data.split_seed=0", "callbacks.progress_bar.refresh_rate=0"]),
        ("c", ["model.latent_dim=2", "data.split_seed=1"]),
    ):
        seed = 1 if name == "c" else 0
        write_record(tmp_path / name, 2, [-10.0, -11.0], {"split_seed": seed})
        (tmp_path / name / "overrides.yaml").write_text(json.dumps(overrides))
    rows = study_table(find_records([tmp_path]))
    settings = [row.split(" | ")[1] for row in rows[2:]]
    assert settings == ["`data.split_seed=0`", "`data.split_seed=0`", "`data.split_seed=1`"]


def test_a_resume_says_which_epoch_end_it_follows_or_which_epoch_it_was_saved_within():
    ends = [(10, 0), (20, 1), (30, 2)]  # the step after each epoch's end, and the epoch
    assert resume_point(20, ends) == "step 20 (the end of epoch 1)"
    assert resume_point(24, ends) == "step 24 (within epoch 2)"
    assert resume_point(3, ends) == "step 3 (within epoch 0)"
    with pytest.raises(UserError, match="step 31"):
        resume_point(31, ends)


def test_collapsed_counts_the_validation_epochs_with_every_dimension_below_the_threshold(
    tmp_path,
):
    write_record(tmp_path / "run", 2, [-10.0, -12.0])
    config = json.loads((tmp_path / "run" / "config.yaml").read_text())
    config["model"] = {"collapse_threshold": 0.01}
    (tmp_path / "run" / "config.yaml").write_text(json.dumps(config))
    # Per-dimension KLs on rows of their own, as training logs them; steps count from 0.
    rows = ["epoch,step,val/elbo,val/kl_dim_00,val/kl_dim_01,train/elbo"]
    rows += ["0,9,,0.001,0.009,", "0,9,-5.0,,,", "1,19,,0.002,0.5,", "2,29,,0.003,0.004,"]
    rows += ["2,29,,,,-4.0"]
    (tmp_path / "run" / "metrics.csv").write_text("\n".join(rows) + "\n")
    [record] = find_records([tmp_path])
    text = "2 of 3 validation epochs, the last at 300 samples"  # batch size 10
    assert PER_RECORD["collapsed"](record) == text
    (tmp_path / "run" / "metrics.csv").write_text("epoch,step,val/elbo\n0,9,-5.0\n")
    with pytest.raises(UserError, match="no validation KL per dimension"):
        PER_RECORD["collapsed"](find_records([tmp_path])[0])


def test_reaches_gives_the_samples_after_which_one_run_passed_the_others_last_value(tmp_path):
    curves = {"fast": [-9.0, -7.0, -6.0, -5.0], "slow": [-10.0, -8.0, -7.5, -7.0]}
    for name, curve in curves.items():
        write_record(tmp_path / name, 2, [-10.0, -12.0])
        rows = ["epoch,step,val/elbo", *(f"{e},{10 * e + 9},{v}" for e, v in enumerate(curve))]
        (tmp_path / name / "metrics.csv").write_text("\n".join(rows) + "\n")
    write_record(tmp_path / "other_latent", 3, [-10.0, -12.0])
    records = find_records([tmp_path])
    # fast reaches slow's last -7.0 at its second epoch end: step 20, 200 samples of batch 10;
    # slow's summary.json says it saw 100 samples.
    text = "after 200 samples, 200.0 % of the other's (latent 2)"
    assert render("${reaches(fast, slow)}", records, Path("t")) == text
    never = "never in its 100 samples (latent 2)"
    assert render("${reaches(slow, fast)}", records, Path("t")) == never
    with pytest.raises(UserError, match="name no records of the same latent size"):
        render("${reaches(fast, other_latent)}", records, Path("t"))


def test_diffs_pairs_the_records_of_two_patterns_by_latent_size(tmp_path):
    write_record(tmp_path / "aevb_5", 5, [-9.0, -11.0])
    write_record(tmp_path / "aevb_2", 2, [-10.0, -12.0])
    write_record(tmp_path / "ws_2", 2, [-11.0, -14.0])
    write_record(tmp_path / "ws_5", 5, [-9.5, -11.5])
    records = find_records([tmp_path])
    # Per image: latent 2 (+1, +2): +1.50 ± 0.50; latent 5 (+0.5, +0.5): +0.50 ± 0.00.
    text = render("${diffs(aevb_*, ws_*, elbo)}", records, Path("t"))
    assert text == (
        "+1.50 ± 0.50 (paired s.e.) at latent 2 and +0.50 ± 0.00 (paired s.e.) at latent 5"
    )
    # Only the sizes both patterns have are paired.
    only = "+1.50 ± 0.50 (paired s.e.) at latent 2"
    assert render("${diffs(aevb_*, ws_2, elbo)}", records, Path("t")) == only


def test_kl_above_counts_the_dimensions_that_carry_more_than_a_threshold(tmp_path):
    write_record(tmp_path / "run", 4, [-10.0, -12.0])
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    evaluation["latent"] = {"kl_per_dim": [1.5, 0.2, 0.1, 0.001]}
    (tmp_path / "run" / "eval.json").write_text(json.dumps(evaluation))
    records = find_records([tmp_path])
    text = "2 of 4 dimensions above 0.1 nats"  # 0.1 itself is not above
    assert render("${kl_above(run, 0.1)}", records, Path("t")) == text
