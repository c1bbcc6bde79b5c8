"""Aggregation of fake sweeps into Tables 1 and 2 (known numbers)."""

from __future__ import annotations

import csv
import math
import shutil

import pytest

from vaenmf.errors import ConfigError, DataError
from vaenmf.report.tables import (
    INPUT_ROW,
    ReportWarning,
    build_ablation,
    build_table,
    load_jobs,
    parse_expect,
    render_markdown,
    write_speech_report,
)


def test_average_over_noises_then_seeds(full_sweep):
    jobs = load_jobs([full_sweep])
    assert len(jobs) == 16 and all(j.status == "ok" for j in jobs)
    table = build_table(jobs, "table1")
    # NMF sdr at -5 dB: seed 0: factory 1, babble 3 -> 2; seed 1: factory 5, babble 7 -> 6; mean 4, std sqrt(8).
    cell = table.cells[("-5", "NMF", "sdr")]
    assert cell.ours == pytest.approx(4.0)
    assert cell.std == pytest.approx(math.sqrt(8.0))
    assert cell.n_seeds == 2 and cell.status == "ok" and cell.note == ""
    assert cell.paper == 2.90
    assert cell.diff == pytest.approx(4.0 - 2.90)
    # 10 dB is SNR index 3: +3 everywhere.
    assert table.cells[("10", "NMF", "sdr")].ours == pytest.approx(7.0)
    assert table.cells[("10", "NMF", "sir")].ours == pytest.approx(17.0)
    assert table.cells[("0", "NMF", "sar")].ours == pytest.approx(25.0)
    # Aver: mean of the SNR rows (4 + 5 + 6 + 7) / 4.
    aver = table.cells[("Aver", "NMF", "sdr")]
    assert aver.ours == pytest.approx(5.5) and aver.paper == 8.86 and aver.diff == pytest.approx(5.5 - 8.86)
    # PESQ column = pesq_nb: 2.0 + 0.1 i, identical for every job.
    assert table.cells[("5", "NMF", "pesq")].ours == pytest.approx(2.2)
    assert table.cells[("5", "NMF", "pesq")].std == pytest.approx(0.0)
    # VAE-NMF base 4: seed 0 -> (4 + 6) / 2 = 5, seed 1 -> 9; mean 7.
    assert table.cells[("-5", "VAE-NMF", "sdr")].ours == pytest.approx(7.0)
    assert table.cells[("-5", "VAE-NMF", "sdr")].paper == 5.85
    assert table.seeds == [0, 1]


def test_single_seed_has_no_std(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "a", "nmf", "mu", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "b", "nmf", "mu", "babble", 0, snr_summary(2.0))
    cell = build_table(load_jobs([tmp_path]), "table1").cells[("-5", "NMF", "sdr")]
    assert cell.ours == pytest.approx(1.5) and cell.std is None and cell.n_seeds == 1


def test_missing_noise_and_partial_seed(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "vae_nmf", "dnn", "factory", 0, snr_summary(1.0))  # babble of seed 0 missing
    make_job(tmp_path, "1", "vae_nmf", "dnn", "factory", 1, snr_summary(3.0))
    make_job(tmp_path, "2", "vae_nmf", "dnn", "babble", 1, snr_summary(5.0))
    table = build_table(load_jobs([tmp_path]), "table1")
    cell = table.cells[("-5", "VAE-NMF", "sdr")]
    assert cell.status == "partial"
    assert cell.ours == pytest.approx(4.0) and cell.n_seeds == 1
    assert "seed 0: babble missing" in cell.note
    # Only factory anywhere for seed 0: a column with a single noise is not averaged.
    shutil.rmtree(tmp_path / "1")
    shutil.rmtree(tmp_path / "2")
    cell = build_table(load_jobs([tmp_path]), "table1").cells[("-5", "VAE-NMF", "sdr")]
    assert cell.status == "missing" and math.isnan(cell.ours) and cell.n_seeds == 0
    assert cell.paper == 5.85 and cell.diff is None


def test_failed_and_crashed_jobs_are_shown(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "mu", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "1", "nmf", "mu", "babble", 0, status="failed", error="RuntimeError: out of memory")
    make_job(tmp_path, "2", "dnmf", "mu", "factory", 0, snr_summary(1.0))
    crashed = make_job(tmp_path, "3", "dnmf", "mu", "babble", 0)
    (crashed / "metrics.json").unlink()  # killed before writing metrics.json: only .hydra/ is left
    make_job(tmp_path, "4", "drnn", "drnn", "factory", 0, status="failed", error="NotImplementedError: drnn")
    make_job(tmp_path, "5", "drnn", "drnn", "babble", 0, status="failed", error="NotImplementedError: drnn")
    jobs = load_jobs([tmp_path])
    by_name = {j.path.name: j for j in jobs}
    assert by_name["3"].status == "missing" and by_name["3"].describe() == "dnmf/mu/babble/seed 0"
    table = build_table(jobs, "table1")
    nmf = table.cells[("-5", "NMF", "sdr")]
    assert nmf.status == "failed" and "seed 0: babble failed" in nmf.note
    dnmf = table.cells[("Aver", "DNMF", "pesq")]
    assert dnmf.status == "missing" and "seed 0: babble missing" in dnmf.note
    assert table.cells[("0", "DNN", "sir")].status == "not implemented"
    assert table.cells[("0", "VAE-NMF", "sir")].status == "missing"  # expected by default, no job at all
    md = render_markdown(table)
    assert "failed (paper 2.90)" in md
    assert "not implemented (paper 9.68)" in md
    assert "RuntimeError: out of memory" in md
    assert "no metrics.json" in md and str(crashed) in md


def test_malformed_metrics_json(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "mu", "factory", 0, snr_summary(1.0))
    bad = make_job(tmp_path, "1", "nmf", "mu", "babble", 0, snr_summary(1.0))
    (bad / "metrics.json").write_text('{"task": "speech", "summary": {')
    with pytest.warns(ReportWarning, match="malformed .*metrics.json"):
        jobs = load_jobs([tmp_path])
    job = next(j for j in jobs if j.path == bad)
    assert job.status == "failed" and str(bad / "metrics.json") in job.error
    assert (job.method, job.separator, job.noise, job.seed) == ("nmf", "mu", "babble", 0)  # from overrides
    cell = build_table(jobs, "table1").cells[("-5", "NMF", "sdr")]
    assert cell.status == "failed"


@pytest.fixture
def only_nmf_and_vae_implemented(monkeypatch):
    """A package version that implements only NMF and VAE-NMF (how the report treats the other columns)."""
    import vaenmf.report.tables as tables

    monkeypatch.setattr(tables, "IMPLEMENTED_METHODS", frozenset({"nmf", "vae_nmf"}))


def test_every_paper_column_is_implemented(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "mu", "factory", 0, snr_summary(1.0))
    table = build_table(load_jobs([tmp_path]), "table1")
    assert {c.status for (_, column, _), c in table.cells.items() if column != "NMF"} == {"missing"}


def test_expect_grid(tmp_path, make_job, snr_summary, only_nmf_and_vae_implemented):
    make_job(tmp_path, "0", "nmf", "mu", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "1", "nmf", "mu", "babble", 0, snr_summary(1.0))
    jobs = load_jobs([tmp_path])
    expect = parse_expect("nmf:mu,vae_nmf:dnn:factory")
    assert ("nmf", "mu", "pooled") in expect and ("vae_nmf", "dnn", "factory") in expect
    assert ("vae_nmf", "dnn", "babble") not in expect
    table = build_table(jobs, "table1", expect)
    # A method this version does not implement: its column says so instead of "not run"/"missing".
    assert table.cells[("-5", "DNN", "sdr")].status == "not implemented"
    assert table.cells[("-5", "VAE-NMF", "sdr")].status == "missing"
    assert parse_expect("VAE-NMF", ["table1"]) == {
        ("vae_nmf", "dnn", "factory"),
        ("vae_nmf", "dnn", "babble"),
    }
    with pytest.raises(ConfigError, match="METHOD:SEPARATOR"):
        parse_expect("nmf")
    with pytest.raises(ConfigError, match="unknown noise"):
        parse_expect("nmf:mu:white")


def test_table2_and_ablation(tmp_path, make_job, snr_summary, only_nmf_and_vae_implemented):
    make_job(tmp_path, "0", "vae_nmf", "dnn", "pooled", 0, snr_summary(4.0, pesq=2.5, input_sdr=-2.0))
    make_job(tmp_path, "1", "vae_nmf", "mu", "pooled", 0, snr_summary(3.0, input_sdr=-2.0))
    make_job(tmp_path, "2", "nmf", "mu", "pooled", 0, snr_summary(1.0, input_sdr=-2.0))
    jobs = load_jobs([tmp_path])
    t2 = build_table(jobs, "table2")
    assert t2.cells[("-5", "VAE-NMF", "sdr")].ours == pytest.approx(4.0)
    assert t2.cells[("-5", "VAE-NMF", "sdr")].paper == 5.73
    assert t2.cells[("Aver", "VAE-NMF", "pesq")].ours == pytest.approx(2.65)
    t1 = build_table(jobs, "table1")
    assert all(
        c.status == ("missing" if column in ("NMF", "VAE-NMF") else "not implemented")
        for (_, column, _), c in t1.cells.items()
    )
    ab = build_ablation(jobs, "table2")
    assert ("vae_nmf", "mu") in ab.rows and ab.rows[-1] == INPUT_ROW
    assert ("drnn", "drnn") not in ab.rows  # not implemented: shown in the paper table, not the ablation
    assert ab.cells[(("vae_nmf", "mu"), "-5", "SDR")].ours == pytest.approx(3.0)
    assert ab.cells[(INPUT_ROW, "10", "SDR")].ours == pytest.approx(1.0)
    assert ab.cells[(INPUT_ROW, "0", "PESQ")].ours == pytest.approx(1.6)


def test_duplicates_prefer_ok(tmp_path, make_job, snr_summary):
    make_job(tmp_path / "a", "0", "nmf", "mu", "pooled", 0, snr_summary(1.0))
    make_job(tmp_path / "b", "0", "nmf", "mu", "pooled", 0, status="failed")
    with pytest.warns(ReportWarning, match="2 jobs for nmf/mu/pooled/seed 0"):
        table = build_table(load_jobs([tmp_path / "a", tmp_path / "b"]), "table2")
    assert table.cells[("-5", "NMF", "sdr")].status == "ok"


def test_write_report_files(full_sweep, tmp_path):
    out = tmp_path / "report"
    written = write_speech_report(load_jobs([full_sweep]), out)
    names = sorted(p.name for p in written)
    assert names == sorted(["table1.md", "table1.csv", "table1.tex", "ablation.md", "ablation.csv"])
    md = (out / "table1.md").read_text()
    assert "4.00 ± 2.83 (paper 2.90, +1.10)" in md
    assert "5.50 ± 2.83 (paper 8.86, -3.36)" in md
    assert "Corpus: demo" in md and "Seeds: 0, 1" in md and "abc1234 (16 jobs)" in md
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert len(rows) == 5 * 4 * 4
    assert list(rows[0]) == [
        "table",
        "snr",
        "column",
        "metric",
        "ours",
        "paper",
        "diff",
        "n_seeds",
        "status",
        "std",
        "note",
    ]
    row = next(r for r in rows if (r["snr"], r["column"], r["metric"]) == ("-5", "NMF", "sdr"))
    assert float(row["ours"]) == pytest.approx(4.0) and float(row["paper"]) == 2.90
    assert float(row["diff"]) == pytest.approx(1.10) and row["n_seeds"] == "2" and row["status"] == "ok"
    tex = (out / "table1.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\multicolumn{4}{c}{VAE-NMF}" in tex and "4.00" in tex
    ablation = list(csv.DictReader((out / "ablation.csv").open()))
    inp = next(r for r in ablation if r["method"] == "input" and r["snr"] == "-5" and r["metric"] == "sdr")
    assert float(inp["ours"]) == pytest.approx(0.0)  # (-1 factory, +1 babble) / 2
    assert "input (unprocessed mixture)" in (out / "ablation.md").read_text()


def test_write_report_explicit_table_and_errors(full_sweep, tmp_path):
    jobs = load_jobs([full_sweep])
    written = write_speech_report(jobs, tmp_path / "o", tables=["table2"])
    assert (tmp_path / "o" / "table2.md").is_file()
    assert "missing" in (tmp_path / "o" / "table2.md").read_text()
    assert not (tmp_path / "o" / "table1.md").exists() and len(written) == 5
    with pytest.raises(ConfigError, match="unknown table"):
        write_speech_report(jobs, tmp_path / "o", tables=["table3"])
    with pytest.raises(DataError, match="does not exist"):
        load_jobs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no metrics.json found"):
        load_jobs([tmp_path / "empty"])
