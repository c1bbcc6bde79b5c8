"""95% intervals of cells and paired differences, on hand-made per-utterance rows (numbers worked out by hand).

Student t quantiles used below (two-sided 95%): t(0.975, 2) = 4.302653, t(0.975, 3) = 3.182446.
"""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest

from vaenmf.report.aggregate import INPUT_ROW, build_ablation, build_table
from vaenmf.report.jobs import ReportWarning, dedupe, load_jobs
from vaenmf.report.paired import build_differences
from vaenmf.report.speech import write_speech_report
from vaenmf.report.uncertainty import interval, utterance_id

T2 = 4.302653
T3 = 3.182446
SNRS = ("-5", "0", "5", "10")


def _rows(values: dict[str, dict[str, list[float]]], noise: str, names=("a", "b", "c")) -> list[dict]:
    """Rows ``{snr: {metric: [value per utterance]}}`` for one noise kind, named like the task's mixtures."""
    rows = []
    for snr, metrics in values.items():
        for k, name in enumerate(names):
            row = {"utterance": f"{name}_{noise}_{float(snr):+g}dB", "snr": float(snr), "noise": noise}
            row.update({metric: vals[k] for metric, vals in metrics.items()})
            rows.append(row)
    return rows


def _summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per-SNR means of every metric over finite values, as the speech task writes them."""
    out: dict[str, dict[str, float]] = {}
    for snr in sorted({r["snr"] for r in rows}):
        group = [r for r in rows if r["snr"] == snr]
        keys = [k for k in group[0] if k not in ("utterance", "snr", "noise")]
        entry = {"n_utterances": len(group)}
        for key in keys:
            finite = [r[key] for r in group if math.isfinite(r[key])]
            entry[key] = sum(finite) / len(finite) if finite else math.nan
        out[str(int(snr))] = entry
    return out


def _job(make_job, root, name, method, noise, rows, seed=0, **kwargs):
    return make_job(root, name, method, noise, seed, _summary(rows), rows=rows, **kwargs)


def _all_snrs(metric_values: dict[str, list[float]], step: float = 0.0) -> dict[str, dict[str, list[float]]]:
    """The same values at every SNR, plus ``step * i`` at SNR index i."""
    return {
        snr: {m: [v + step * i for v in vals] for m, vals in metric_values.items()}
        for i, snr in enumerate(SNRS)
    }


def test_interval_of_one_seed_is_the_t_interval_over_utterances():
    ci, why = interval([[1.0, 2.0, 3.0, 6.0]])
    # mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, SE = sqrt(14/3 / 4), df 3.
    se = math.sqrt(14 / 12)
    assert why == "" and ci.estimate == pytest.approx(3.0) and ci.se == pytest.approx(se) and ci.df == 3
    assert ci.lo == pytest.approx(3.0 - T3 * se, abs=1e-5) and ci.hi == pytest.approx(3.0 + T3 * se, abs=1e-5)
    assert ci.n_seeds == 1 and ci.n_utterances == 4 and not ci.excludes_zero


def test_interval_of_two_seeds_adds_the_between_seed_term():
    from scipy import stats

    ci, _ = interval([[1.0, 3.0], [5.0, 7.0]])
    # Seed means 2 and 6: B = 8, B/S = 4. Within: variance 2, n 2, 2 / (2 * 2) = 0.5 per seed. SE^2 = 5.
    # df = 25 / (4^2 / 1 + 2 * 0.5^2 / 1) = 25 / 16.5.
    assert ci.estimate == pytest.approx(4.0) and ci.se == pytest.approx(math.sqrt(5.0))
    assert ci.df == pytest.approx(25 / 16.5)
    half = stats.t.ppf(0.975, 25 / 16.5) * math.sqrt(5.0)
    assert ci.lo == pytest.approx(4.0 - half) and ci.hi == pytest.approx(4.0 + half)
    # Centred on a given estimate, same width.
    shifted, _ = interval([[1.0, 3.0], [5.0, 7.0]], centre=4.5)
    assert shifted.lo == pytest.approx(4.5 - half)


def test_interval_edge_cases():
    ci, _ = interval([[0.5, 0.5, 0.5]])
    assert (ci.lo, ci.hi, ci.se, ci.df) == (0.5, 0.5, 0.0, math.inf) and ci.excludes_zero
    none, why = interval([[1.0, 2.0], [3.0]])
    assert none is None and "1 utterance(s)" in why
    assert interval([])[0] is None


def test_utterance_id_strips_the_mixture_suffix():
    assert utterance_id({"utterance": "F07_u00_factory_-5dB", "noise": "factory", "snr": -5.0}) == "F07_u00"
    assert utterance_id({"utterance": "F07_u00_babble_+0dB", "noise": "babble", "snr": 0.0}) == "F07_u00"
    assert utterance_id({"utterance": "dr1_fcjf0_sa1_babble_+10dB", "noise": "babble", "snr": 10}) == (
        "dr1_fcjf0_sa1"
    )
    assert utterance_id({"utterance": "x_factory_+5dB", "noise": "babble", "snr": 5.0}) == "x_factory_+5dB"
    assert utterance_id({"utterance": "m_babble_-5dB", "speech_utterance": "m", "snr": -5.0}) == "m"


def test_table1_cell_interval_averages_each_utterance_over_the_two_noises(tmp_path, make_job):
    # At -5 dB: factory SDR (1, 2, 6), babble (3, 4, 2): utterance means (2, 3, 4): mean 3, variance 1.
    fac = {"-5": {"sdr": [1.0, 2.0, 6.0]}, "0": {"sdr": [5.0, 5.0, 5.0]}, "5": {"sdr": [6.0, 6.0, 6.0]},
           "10": {"sdr": [7.0, 7.0, 7.0]}}  # fmt: skip
    bab = {"-5": {"sdr": [3.0, 4.0, 2.0]}, "0": {"sdr": [5.0, 5.0, 5.0]}, "5": {"sdr": [6.0, 6.0, 6.0]},
           "10": {"sdr": [7.0, 7.0, 7.0]}}  # fmt: skip
    _job(make_job, tmp_path, "f", "nmf", "factory", _rows(fac, "factory"))
    _job(make_job, tmp_path, "b", "nmf", "babble", _rows(bab, "babble"))
    table = build_table(load_jobs([tmp_path]), "table1")
    cell = table.cells[("-5", "NMF", "sdr")]
    se = math.sqrt(1 / 3)
    assert cell.ours == pytest.approx(3.0) and cell.ci.df == 2 and cell.ci.se == pytest.approx(se)
    assert cell.ci.lo == pytest.approx(3.0 - T2 * se, abs=1e-5) and cell.ci.hi == pytest.approx(3.0 + T2 * se)
    # Averaging the noises per utterance matters: the six values pooled would give a wider interval.
    # Aver: per utterance the mean over 4 SNRs x 2 noises: (2+5+6+7)/4 = 5, (3+5+6+7)/4 = 5.25, 5.5.
    aver = table.cells[("Aver", "NMF", "sdr")]
    se_aver = math.sqrt(0.0625 / 3)  # variance of (5, 5.25, 5.5) is 0.0625
    assert aver.ours == pytest.approx(5.25) and aver.ci.se == pytest.approx(se_aver)
    assert aver.ci.hi == pytest.approx(5.25 + T2 * se_aver, abs=1e-5)
    # A 10 dB cell where every utterance scores the same: zero width.
    flat = table.cells[("10", "NMF", "sdr")]
    assert (flat.ci.lo, flat.ci.hi) == (pytest.approx(7.0), pytest.approx(7.0))


def test_table2_pools_the_two_noise_kinds_of_one_job(tmp_path, make_job):
    rows = _rows(_all_snrs({"sdr": [1.0, 2.0, 6.0]}), "factory") + _rows(
        _all_snrs({"sdr": [3.0, 4.0, 2.0]}), "babble"
    )
    _job(make_job, tmp_path, "p", "vae_nmf", "pooled", rows)
    cell = build_table(load_jobs([tmp_path]), "table2").cells[("0", "VAE-NMF", "sdr")]
    assert cell.ours == pytest.approx(3.0) and cell.ci.se == pytest.approx(math.sqrt(1 / 3))


def test_an_utterance_a_metric_could_not_score_is_left_out_of_the_interval(tmp_path, make_job):
    pesq = {"pesq_nb": [2.0, 3.0, math.nan, 4.0], "sdr": [1.0, 1.0, 1.0, 1.0]}
    rows = _rows(_all_snrs(pesq, step=0.1), "factory", names=("a", "b", "c", "d"))
    _job(make_job, tmp_path, "p", "nmf", "pooled", rows)
    table = build_table(load_jobs([tmp_path]), "table2")
    cell = table.cells[("-5", "NMF", "pesq")]
    # The job's mean leaves the NaN out: (2 + 3 + 4) / 3; so does the interval: variance 1 over 3 utterances.
    assert cell.ours == pytest.approx(3.0) and cell.ci.n_utterances == 3 and cell.ci.n_dropped == 1
    assert cell.ci.se == pytest.approx(math.sqrt(1 / 3))
    # Aver: per utterance the mean over the SNRs (x + 0.15); utterance c has a NaN at every SNR.
    aver = table.cells[("Aver", "NMF", "pesq")]
    assert aver.ours == pytest.approx(3.15) and aver.ci.n_utterances == 3
    assert aver.ci.se == pytest.approx(math.sqrt(1 / 3))


def test_a_cell_without_rows_has_no_interval_and_says_why(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "p", "nmf", "pooled", 0, snr_summary(1.0), rows=[])
    cell = build_table(load_jobs([tmp_path]), "table2").cells[("-5", "NMF", "sdr")]
    assert cell.ours == pytest.approx(1.0) and cell.ci is None and "no per-utterance rows" in cell.ci_note


def test_the_input_sar_is_not_applicable(tmp_path, make_job, snr_summary):
    summary = snr_summary(1.0)
    for entry in summary.values():
        entry["sar_input"] = 150.0
    make_job(tmp_path, "p", "nmf", "pooled", 0, summary)
    ab = build_ablation(load_jobs([tmp_path]), "table2")
    sar = ab.cells[(INPUT_ROW, "Aver", "SAR")]
    assert sar.status == "n/a" and math.isnan(sar.ours) and sar.ci is None and "not applicable" in sar.note
    assert ab.cells[("nmf", "Aver", "SAR")].ours == pytest.approx(22.5)  # a method's SAR is averaged
    assert ab.cells[(INPUT_ROW, "-5", "SDR")].ours == pytest.approx(-1.0)


def _pair_sweep(root, make_job, other_sdr, vae_sdr=(3.0, 4.0, 5.0), other="nmf"):
    vae = _rows(
        _all_snrs({"sdr": list(vae_sdr), "sdr_input": [0.0, 1.0, 2.0], "sar": [9.0, 9.0, 9.0]}), "factory"
    )
    _job(make_job, root, "v", "vae_nmf", "pooled", vae)
    rows = _rows(_all_snrs({"sdr": list(other_sdr), "sar": [8.0, 8.0, 8.0]}), "factory")
    rows.reverse()  # pairing is by utterance name, not by position
    _job(make_job, root, "o", other, "pooled", rows)
    return build_differences(load_jobs([root]), "table2")


def test_paired_difference_includes_zero_and_is_undecided(tmp_path, make_job):
    # VAE-NMF (3, 4, 5) minus NMF (2, 2, 2): differences (1, 2, 3), mean 2, variance 1, df 2.
    diffs = _pair_sweep(tmp_path, make_job, other_sdr=(2.0, 2.0, 2.0))
    d = diffs.cells[("NMF", "-5", "sdr")]
    se = math.sqrt(1 / 3)
    assert d.estimate == pytest.approx(2.0) and d.ci.se == pytest.approx(se) and d.ci.df == 2
    assert d.ci.lo == pytest.approx(2.0 - T2 * se, abs=1e-5)  # -0.484: includes 0
    assert d.verdict == "undecided" and not d.ci.excludes_zero and d.status == "ok"
    # Unpaired, the two means (4 and 2) differ by the same 2 dB; pairing is what the interval is about.


def test_paired_difference_that_excludes_zero(tmp_path, make_job):
    # NMF (2.5, 3.6, 4.4): differences (0.5, 0.4, 0.6), mean 0.5, variance 0.01.
    diffs = _pair_sweep(tmp_path, make_job, other_sdr=(2.5, 3.6, 4.4))
    d = diffs.cells[("NMF", "Aver", "sdr")]
    se = math.sqrt(0.01 / 3)
    assert d.estimate == pytest.approx(0.5) and d.ci.se == pytest.approx(se)
    assert d.ci.lo == pytest.approx(0.5 - T2 * se, abs=1e-5) and d.ci.lo > 0 and d.verdict == "higher"
    # VAE-NMF minus the unprocessed input (its own sdr_input): (3, 3, 3), zero spread.
    inp = diffs.cells[(INPUT_ROW, "0", "sdr")]
    assert inp.estimate == pytest.approx(3.0) and inp.ci.se == 0.0 and inp.verdict == "higher"
    assert diffs.cells[(INPUT_ROW, "0", "sar")].status == "n/a"
    assert diffs.cells[("NMF", "0", "sar")].estimate == pytest.approx(1.0)
    # Columns without a job are shown, as missing.
    assert diffs.cells[("DNN", "-5", "sdr")].status == "missing"
    assert diffs.others == ["NMF", "DNMF", "DNN", INPUT_ROW]


def test_an_ablation_row_is_compared_and_unmatched_mixtures_are_left_out(tmp_path, make_job):
    vae = _rows(_all_snrs({"sdr": [3.0, 4.0, 5.0, 9.0]}), "factory", names=("a", "b", "c", "z"))
    _job(make_job, tmp_path, "v", "vae_nmf", "pooled", vae)
    _job(
        make_job, tmp_path, "o", "vae_nmf_mu", "pooled", _rows(_all_snrs({"sdr": [2.0, 2.0, 2.0]}), "factory")
    )
    diffs = build_differences(load_jobs([tmp_path]), "table2")
    assert "vae_nmf_mu" in diffs.others
    d = diffs.cells[("vae_nmf_mu", "5", "sdr")]
    assert d.estimate == pytest.approx(2.0) and d.ci.n_utterances == 3 and d.ci.n_dropped == 1
    assert "1 utterance(s) without a finite pair" in d.note


def test_paired_differences_over_two_seeds(tmp_path, make_job):
    from scipy import stats

    # Seed 0 differences (1, 3), seed 1 (5, 7): as in test_interval_of_two_seeds_adds_the_between_seed_term.
    for seed, (d1, d2) in ((0, (1.0, 3.0)), (1, (5.0, 7.0))):
        vae = _rows(_all_snrs({"sdr": [10.0 + d1, 10.0 + d2]}), "factory", names=("a", "b"))
        other = _rows(_all_snrs({"sdr": [10.0, 10.0]}), "factory", names=("a", "b"))
        _job(make_job, tmp_path, f"v{seed}", "vae_nmf", "pooled", vae, seed=seed)
        _job(make_job, tmp_path, f"o{seed}", "drnn", "pooled", other, seed=seed)
    d = build_differences(load_jobs([tmp_path]), "table2").cells[("DNN", "Aver", "sdr")]
    half = stats.t.ppf(0.975, 25 / 16.5) * math.sqrt(5.0)
    assert d.n_seeds == 2 and d.estimate == pytest.approx(4.0) and d.ci.hi == pytest.approx(4.0 + half)


def test_differences_files(tmp_path, make_job):
    _pair_sweep(tmp_path / "sweep", make_job, other_sdr=(2.5, 3.6, 4.4))
    write_speech_report(load_jobs([tmp_path / "sweep"]), tmp_path / "out")
    md = (tmp_path / "out" / "differences.md").read_text()
    se = math.sqrt(0.01 / 3)
    assert f"| NMF | +0.50 [+{0.5 - T2 * se:.2f}, +{0.5 + T2 * se:.2f}] higher |" in md
    assert "| input (unprocessed mixture) | +3.00 [+3.00, +3.00] higher |" in md
    rows = list(csv.DictReader((tmp_path / "out" / "differences.csv").open()))
    row = next(r for r in rows if (r["other"], r["snr"], r["metric"]) == ("NMF", "-5", "sdr"))
    assert row["excludes_zero"] == "true" and row["verdict"] == "higher" and row["eval_split"] == "test"
    assert float(row["estimate"]) == pytest.approx(0.5) and float(row["lo"]) == pytest.approx(0.5 - T2 * se)
    assert row["n_utterances"] == "3" and row["df"] == "2.0"


# ----------------------------------------------------------------------------------------------------------------
# Validation and test apart


def test_eval_split_is_read_from_metrics_json_config_or_overrides(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "old", "nmf", "pooled", 0, snr_summary(1.0))  # no eval_split recorded: test
    make_job(tmp_path, "val", "nmf", "pooled", 0, snr_summary(2.0), eval_split="validation")
    make_job(
        tmp_path, "cfg", "dnmf", "pooled", 0, snr_summary(2.0), config={"data": {"eval_split": "validation"}}
    )
    crashed = make_job(tmp_path, "crashed", "drnn", "pooled", 0)
    (crashed / "metrics.json").unlink()
    (crashed / ".hydra" / "overrides.yaml").write_text(
        "- method=drnn\n- noise=pooled\n- eval_split=validation\n"
    )
    bad = make_job(tmp_path, "bad", "vae_nmf", "pooled", 0, snr_summary(1.0))
    data = json.loads((bad / "metrics.json").read_text())
    data["eval_split"] = "train"
    (bad / "metrics.json").write_text(json.dumps(data))
    with pytest.warns(ReportWarning, match="eval_split must be one of test, validation, got 'train'"):
        jobs = {j.path.name: j for j in load_jobs([tmp_path])}
    assert jobs["old"].eval_split == "test" and jobs["val"].eval_split == "validation"
    assert jobs["cfg"].eval_split == "validation" and jobs["crashed"].eval_split == "validation"
    assert jobs["bad"].status == "failed"
    # Same method, noise and seed on two splits: two jobs, not duplicates.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)
        assert len(dedupe([jobs["old"], jobs["val"]])) == 2


def test_a_sweep_with_both_splits_writes_both_and_never_mixes_them(tmp_path, make_job, snr_summary):
    root = tmp_path / "sweep"
    for noise in ("factory", "babble"):
        make_job(root, f"t_{noise}", "vae_nmf", noise, 0, snr_summary(4.0))
        make_job(root, f"v_{noise}", "vae_nmf", noise, 0, snr_summary(9.0), eval_split="validation")
    written = {p.name for p in write_speech_report(load_jobs([root]), tmp_path / "out")}
    assert {"table1.md", "table1_validation.md", "table1_validation.csv", "table1_validation.tex"} <= written
    assert {"ablation_validation.md", "differences_validation.csv"} <= written
    test_md = (tmp_path / "out" / "table1.md").read_text()
    val_md = (tmp_path / "out" / "table1_validation.md").read_text()
    assert "[test split]" in test_md.splitlines()[0] and "VALIDATION" not in test_md
    assert "[VALIDATION split, not the test set]" in val_md.splitlines()[0]
    assert "Scored on: the VALIDATION split" in val_md
    val_rows = list(csv.DictReader((tmp_path / "out" / "table1_validation.csv").open()))
    test_rows = list(csv.DictReader((tmp_path / "out" / "table1.csv").open()))

    def pick(rows):
        return next(r for r in rows if (r["snr"], r["column"], r["metric"]) == ("-5", "VAE-NMF", "sdr"))

    assert float(pick(test_rows)["ours"]) == pytest.approx(4.0) and pick(test_rows)["eval_split"] == "test"
    assert (
        float(pick(val_rows)["ours"]) == pytest.approx(9.0) and pick(val_rows)["eval_split"] == "validation"
    )
    # The validation sweep ran VAE-NMF only: the other columns are "not run" there, "missing" on test.
    assert next(r for r in val_rows if r["column"] == "NMF")["status"] == "not run"
    assert next(r for r in test_rows if r["column"] == "NMF")["status"] == "missing"
    assert "\\label{tab:table1_validation}" in (tmp_path / "out" / "table1_validation.tex").read_text()


def test_a_validation_only_sweep_writes_only_validation_files(tmp_path, make_job, snr_summary):
    make_job(tmp_path / "sweep", "v", "nmf", "pooled", 0, snr_summary(1.0), eval_split="validation")
    written = sorted(p.name for p in write_speech_report(load_jobs([tmp_path / "sweep"]), tmp_path / "out"))
    assert written == sorted(
        f"{stem}_validation.{ext}"
        for stem, exts in (("table2", "md csv tex"), ("ablation", "md csv"), ("differences", "md csv"))
        for ext in exts.split()
    )


def test_another_reference_column(tmp_path, make_job):
    from vaenmf.errors import ConfigError

    _pair_sweep(tmp_path, make_job, other_sdr=(2.5, 3.6, 4.4))
    jobs = load_jobs([tmp_path])
    d = build_differences(jobs, "table2", reference="NMF")
    assert d.others == ["DNMF", "DNN", "VAE-NMF", INPUT_ROW]
    assert d.cells[("VAE-NMF", "-5", "sdr")].estimate == pytest.approx(-0.5)
    assert d.cells[("VAE-NMF", "-5", "sdr")].verdict == "lower"
    with pytest.raises(ConfigError, match="not a paper column"):
        build_differences(jobs, "table2", reference="nmf_dnn")
