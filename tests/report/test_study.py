"""Studies that choose a default: rows by the varied keys' values, aggregated like table cells."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml

from vaenmf.errors import DataError
from vaenmf.report.jobs import load_jobs
from vaenmf.report.study import (
    check_heldout_repetitions,
    render_study_markdown,
    study_rows,
    synergy_study_rows,
    write_study_report,
)

KEY = "dictionary.system.likelihood"
WEIGHT = "dictionary.system.penalty_weight"
#: t(0.975, 6): the paired interval's quantile in the hand-checked differences below.
T_975_6 = 2.446912


def _config(likelihood: str, sampler: str = "rsvi") -> dict:
    return {"dictionary": {"system": {"likelihood": likelihood, "sampler": sampler}}}


def _sweep(tmp_path, make_job, snr_summary, eval_split="validation", spreads=None):
    """gaussian (base 4) and poisson (base 2) x seeds 0, 1 x factory, babble; ``spreads``: likelihood -> the
    spread of its per-utterance rows (conftest.utterance_rows; default 1)."""
    root = tmp_path / "sweep"
    k = 0
    for likelihood, base in (("gaussian", 4.0), ("poisson", 2.0)):
        for seed in (0, 1):
            for noise, off in (("factory", 0.0), ("babble", 2.0)):
                job = make_job(
                    root,
                    str(k),
                    "vae_nmf",
                    noise,
                    seed,
                    snr_summary(base + off + seed),
                    config=_config(likelihood),
                    eval_split=eval_split,
                    spread=(spreads or {}).get(likelihood, 1.0),
                )
                data = json.loads((job / "metrics.json").read_text())
                data["dictionaries"] = {"speech": {"neg_mass": 0.01 * (1 + seed)}}
                data["wall_time_s"] = 10.0
                (job / "metrics.json").write_text(json.dumps(data))
                k += 1
    return root


def test_rows_are_the_varied_values_aggregated_over_noises_and_seeds(tmp_path, make_job, snr_summary):
    jobs = load_jobs([_sweep(tmp_path, make_job, snr_summary)])
    rows = study_rows(jobs, [KEY], extras=["dictionaries.speech.neg_mass"])
    assert [r.values[KEY] for r in rows] == ["gaussian", "poisson"]
    gaussian = rows[0]
    # sdr at -5: seed 0 (4 + 6) / 2 = 5, seed 1 6: mean 5.5, std over seeds sqrt(0.5).
    cell = gaussian.cells[("SDR", "-5")]
    assert cell.ours == pytest.approx(5.5) and cell.std == pytest.approx(math.sqrt(0.5)) and cell.n_seeds == 2
    # Its interval: seed means 5 and 6 (B = 0.5), 4 utterances per seed with variance 5/3 (conftest offsets):
    # SE^2 = 0.5 / 2 + 2 * (5/3) / (2 * 4) = 2/3; df = (2/3)^2 / (0.25^2 / 1 + 2 * (5/24)^2 / 3) = 384/79;
    # t(0.975, 384/79) = 2.59289.
    assert cell.ci.se == pytest.approx(math.sqrt(2 / 3))
    assert cell.ci.df == pytest.approx(384 / 79)
    assert cell.ci.lo == pytest.approx(5.5 - 2.59289 * math.sqrt(2 / 3), abs=1e-4)
    assert gaussian.eval_split == "validation"
    assert rows[1].cells[("SDR", "Aver")].ours == pytest.approx(3.5 + 1.5)
    assert gaussian.extras["dictionaries.speech.neg_mass"] == pytest.approx(0.015)
    assert gaussian.status == "ok" and len(gaussian.jobs) == 4


def test_a_failed_job_marks_its_row(tmp_path, make_job, snr_summary):
    root = _sweep(tmp_path, make_job, snr_summary)
    make_job(
        root,
        "x",
        "vae_nmf",
        "factory",
        2,
        status="failed",
        config=_config("poisson"),
        eval_split="validation",
    )
    rows = study_rows(load_jobs([root]), [KEY])
    poisson = rows[1]
    assert poisson.status == "incomplete"
    assert poisson.cells[("SDR", "-5")].status == "partial"  # seed 2 has no finished job


def test_jobs_without_the_keys_are_an_error(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    with pytest.raises(DataError, match="records the varied keys"):
        study_rows(load_jobs([tmp_path]), [KEY])


def test_rows_of_two_splits_are_never_mixed(tmp_path, make_job, snr_summary):
    root = _sweep(tmp_path, make_job, snr_summary)
    make_job(
        root, "t", "vae_nmf", "factory", 0, snr_summary(100.0), config=_config("gaussian"), eval_split="test"
    )
    rows = study_rows(load_jobs([root]), [KEY])
    assert [(r.eval_split, r.values[KEY]) for r in rows] == [
        ("test", "gaussian"),
        ("validation", "gaussian"),
        ("validation", "poisson"),
    ]
    assert rows[1].cells[("SDR", "-5")].ours == pytest.approx(5.5)  # the test job is not averaged in
    with pytest.raises(DataError, match="scored on the test split .* validation split only"):
        study_rows(load_jobs([root]), [KEY], require_split="validation")


def test_every_job_of_the_folder_counts_for_the_split_also_a_crashed_one(tmp_path, make_job, snr_summary):
    """A job that never wrote metrics.json, whose overrides scored the test split, refuses the table; with
    eval_split=validation in its overrides it lands in its row (by its saved config) as missing."""
    root = _sweep(tmp_path, make_job, snr_summary)
    crashed = root / "crashed"
    (crashed / ".hydra").mkdir(parents=True)
    (crashed / ".hydra" / "overrides.yaml").write_text(
        "- method=vae_nmf\n- noise=factory\n- seed=2\n- eval_split=test\n"
    )
    with pytest.raises(DataError, match="1 job.*test split .*crashed"):  # no config: in no row, still counted
        study_rows(load_jobs([root]), [KEY], require_split="validation")
    (crashed / "config.yaml").write_text(yaml.safe_dump({"task": "speech", **_config("gaussian")}))
    with pytest.raises(DataError, match="1 job.*test split .*crashed"):
        study_rows(load_jobs([root]), [KEY], require_split="validation")
    (crashed / ".hydra" / "overrides.yaml").write_text(
        "- method=vae_nmf\n- noise=factory\n- seed=2\n- eval_split=validation\n"
    )
    gaussian = study_rows(load_jobs([root]), [KEY], require_split="validation")[0]
    assert gaussian.values[KEY] == "gaussian" and len(gaussian.jobs) == 5 and gaussian.status == "incomplete"
    assert {j.status for j in gaussian.jobs} == {"ok", "missing"}


def test_the_paired_difference_against_the_reference_is_taken_on_the_same_mixtures(
    tmp_path, make_job, snr_summary
):
    """poisson - gaussian by hand. Every mixture of poisson scores (2 + noise offset + seed + SNR index) +
    2 * OFFSETS[k] and gaussian's (4 + ... ) + 1 * OFFSETS[k], so the pair of utterance k differs by
    -2 + OFFSETS[k] at every (noise, SNR): per seed the values -3.5, -2.5, -1.5, -0.5, mean -2, variance 5/3.
    Two seeds alike: SE^2 = 0 + 2 * (5/3) / (2 * 4) = 5/12, df = (5/12)^2 / (2 (5/24)^2 / 3) = 6. Unpaired, the
    utterances' own spread (5/3 and 4 * 5/3) would widen it; the rows are shuffled, so pairing is by utterance."""
    root = _sweep(tmp_path, make_job, snr_summary, spreads={"poisson": 2.0})
    for metrics in root.glob("*/metrics.json"):
        data = json.loads(metrics.read_text())
        random.Random(str(metrics)).shuffle(data["rows"])
        metrics.write_text(json.dumps(data))
    rows = study_rows(load_jobs([root]), [KEY], require_split="validation", reference={KEY: "gaussian"})
    gaussian, poisson = rows
    assert gaussian.is_reference and gaussian.difference is None
    d = poisson.difference
    assert poisson.difference_label == "SDR Aver" and d.status == "ok" and d.n_seeds == 2
    assert d.estimate == pytest.approx(-2.0)
    assert d.ci.se == pytest.approx(math.sqrt(5 / 12)) and d.ci.df == pytest.approx(6.0)
    assert d.ci.lo == pytest.approx(-2.0 - T_975_6 * math.sqrt(5 / 12), abs=1e-5)
    assert d.ci.hi == pytest.approx(-2.0 + T_975_6 * math.sqrt(5 / 12), abs=1e-5)
    # The cells are the unpaired means: -2 too, but with the wider intervals of each side.
    assert poisson.cells[("SDR", "Aver")].ours - gaussian.cells[("SDR", "Aver")].ours == pytest.approx(-2.0)
    assert poisson.cells[("SDR", "Aver")].ci.se > 2 * d.ci.se
    md = render_study_markdown(rows, "t")
    assert "| reference |" in md and "| -2.00 [-3.58, -0.42] |" in md


def test_a_reference_without_jobs_leaves_the_differences_missing(tmp_path, make_job, snr_summary):
    rows = study_rows(
        load_jobs([_sweep(tmp_path, make_job, snr_summary)]), [KEY], reference={KEY: "exponential"}
    )
    assert all(r.difference.status == "missing" and not r.is_reference for r in rows)
    with pytest.raises(DataError, match="does not vary"):
        study_rows(load_jobs([tmp_path / "sweep"]), [KEY], reference={"dictionary.rank": 20})


def test_the_current_default_is_marked_and_numbers_sort_numerically(tmp_path, make_job, snr_summary):
    root = tmp_path / "sweep"
    for k, epochs in enumerate((200, 50, 100)):
        make_job(
            root,
            str(k),
            "drnn",
            "factory",
            0,
            snr_summary(1.0),
            config={"network": {"epochs": epochs}},
            eval_split="validation",
        )
    rows = study_rows(load_jobs([root]), ["network.epochs"], default={"network.epochs": "200"})
    assert [r.values["network.epochs"] for r in rows] == [50, 100, 200]
    assert [r.is_default for r in rows] == [False, False, True]
    md = render_study_markdown(rows, "t")
    assert "| scored on | network.epochs | current default | SDR -5 |" in md
    assert "| validation | 200 | yes | " in md and "| validation | 50 |  | " in md


def _synergy_job(
    root: Path, name: str, seed: int, weight: float, vafs, train=(1, 3, 4, 6, 7), held=(8, 9), status="ok"
) -> Path:
    """A synergy job of two subjects x movements 1, 2: held-out NNLS VAF ``vafs[i]`` for the i-th
    (subject, movement), training VAF 0.99, negative mass 0.01 * (i + 1)."""
    job = root / name
    job.mkdir(parents=True)
    units = [(s, m) for s in (1, 2) for m in (1, 2)]
    rows = [
        {
            "subject": s,
            "movement": m,
            "vaf": {"test/fixed_w": {"overall": v}, "train/fixed_w": {"overall": 0.99}},
            "dictionary": {"neg_mass": 0.01 * (i + 1), "neg_fraction": 0.1},
            "synergy_recovery": 0.95,
        }
        for i, ((s, m), v) in enumerate(zip(units, vafs, strict=True))
    ]
    data = {
        "schema": 2,
        "task": "synergy",
        "method": "vae_nmf",
        "seed": seed,
        "status": status,
        "rows": rows if status == "ok" else [],
        "wall_time_s": 5.0,
        "config": {
            "task": "synergy",
            "dictionary": {"system": {"penalty_weight": weight}},
            "data": {"train_repetitions": list(train), "test_repetitions": list(held)},
        },
    }
    (job / "metrics.json").write_text(json.dumps(data))
    return job


def _synergy_sweep(root: Path) -> Path:
    """Weights 1 and 1e4, seeds 0 and 1; weight 1e4's VAF is weight 1's + 0.01 * (1, 2, 3, 4) per movement."""
    base = [0.90, 0.92, 0.94, 0.96]
    for seed in (0, 1):
        _synergy_job(root, f"a{seed}", seed, 1, [b + 0.01 * seed for b in base])
        _synergy_job(
            root, f"b{seed}", seed, 10000.0, [b + 0.01 * seed + 0.01 * (i + 1) for i, b in enumerate(base)]
        )
    return root


def test_synergy_rows_and_the_paired_difference_over_the_same_movements(tmp_path):
    """1e4 - 1 per movement: 0.01, 0.02, 0.03, 0.04 in both seeds: mean 0.025, variance 1/6e-3 (ddof 1), so
    SE^2 = 2 * (1/6e-3) / (2 * 4) = 1/24e-3 and df 6, as in the speech case."""
    root = _synergy_sweep(tmp_path / "sweep")
    rows = synergy_study_rows(
        load_jobs([root]), [WEIGHT], (2, 5, 10), reference={WEIGHT: "1e4"}, default={WEIGHT: 1e4}
    )
    one, big = rows
    assert [r.values[WEIGHT] for r in rows] == [1, 10000.0]
    assert one.eval_split == "repetitions [8, 9] (fit on [1, 3, 4, 6, 7])"
    assert big.is_reference and big.is_default and not one.is_default
    cell = one.cells[("held-out VAF, NNLS", "all")]
    assert cell.ours == pytest.approx(0.935) and cell.n_seeds == 2 and cell.status == "ok"
    assert one.cells[("neg. mass", "all")].ours == pytest.approx(0.025)
    assert one.extras_max["neg_mass"] == pytest.approx(0.04)
    d = one.difference
    assert d.estimate == pytest.approx(-0.025)
    assert d.ci.se == pytest.approx(math.sqrt(1e-3 / 24)) and d.ci.df == pytest.approx(6.0)
    assert d.ci.hi == pytest.approx(-0.025 + T_975_6 * math.sqrt(1e-3 / 24), abs=1e-7)
    md = render_study_markdown(rows, "penalty")
    assert "HELD-OUT TRAINING REPETITIONS" in md and "| -0.0250 [" in md


@pytest.mark.parametrize(
    ("train", "held", "match"),
    [
        ((1, 3, 4, 6, 7, 8, 9), (2, 5, 10), "saw the test repetitions \\[2, 5, 10\\]"),
        ((1, 2, 3), (8, 9), "saw the test repetitions \\[2\\]"),
        ((1, 3, 4), (8, 10), "saw the test repetitions \\[10\\]"),
        ((1, 3, 4, 8), (8, 9), "\\[8\\] are in both"),
    ],
)
def test_a_synergy_job_that_saw_a_test_repetition_refuses_the_table(tmp_path, train, held, match):
    root = _synergy_sweep(tmp_path / "sweep")
    _synergy_job(root, "z_bad", 0, 1e3, [0.9] * 4, train=train, held=held)
    with pytest.raises(DataError, match=match):
        synergy_study_rows(load_jobs([root]), [WEIGHT], (2, 5, 10))
    with pytest.raises(DataError):
        write_study_report(load_jobs([root]), [WEIGHT], tmp_path / "out", "t", heldout_forbidden=(2, 5, 10))
    assert not (tmp_path / "out" / "table.md").exists()


def test_a_crashed_synergy_job_is_checked_by_the_config_it_saved(tmp_path):
    root = _synergy_sweep(tmp_path / "sweep")
    crashed = root / "c"
    (crashed / ".hydra").mkdir(parents=True)
    (crashed / ".hydra" / "overrides.yaml").write_text("- task=synergy\n- method=vae_nmf\n- seed=3\n")
    saved = {"task": "synergy", "data": {"train_repetitions": [1, 3], "test_repetitions": [2, 5, 10]}}
    (crashed / ".hydra" / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(DataError, match="c fitted on \\[1, 3\\] and scored \\[2, 5, 10\\]"):
        check_heldout_repetitions(load_jobs([root]), (2, 5, 10))
