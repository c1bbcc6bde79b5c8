"""Aggregation of fake sweeps into Tables 1 and 2 (known numbers)."""

from __future__ import annotations

import csv
import math
import shutil

import pytest

from vaenmf.errors import ConfigError, DataError
from vaenmf.report.aggregate import INPUT_ROW, build_ablation, build_table
from vaenmf.report.grid import parse_expect
from vaenmf.report.jobs import ReportWarning, load_jobs
from vaenmf.report.render import render_markdown
from vaenmf.report.speech import write_speech_report


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
    make_job(tmp_path, "a", "nmf", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "b", "nmf", "babble", 0, snr_summary(2.0))
    cell = build_table(load_jobs([tmp_path]), "table1").cells[("-5", "NMF", "sdr")]
    assert cell.ours == pytest.approx(1.5) and cell.std is None and cell.n_seeds == 1


def test_missing_noise_and_partial_seed(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "vae_nmf", "factory", 0, snr_summary(1.0))  # babble of seed 0 missing
    make_job(tmp_path, "1", "vae_nmf", "factory", 1, snr_summary(3.0))
    make_job(tmp_path, "2", "vae_nmf", "babble", 1, snr_summary(5.0))
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
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "1", "nmf", "babble", 0, status="failed", error="RuntimeError: out of memory")
    make_job(tmp_path, "2", "dnmf", "factory", 0, snr_summary(1.0))
    crashed = make_job(tmp_path, "3", "dnmf", "babble", 0)
    (crashed / "metrics.json").unlink()  # killed before writing metrics.json: only .hydra/ is left
    make_job(tmp_path, "4", "drnn", "factory", 0, status="failed", error="NotImplementedError: drnn")
    make_job(tmp_path, "5", "drnn", "babble", 0, status="failed", error="NotImplementedError: drnn")
    jobs = load_jobs([tmp_path])
    by_name = {j.path.name: j for j in jobs}
    assert by_name["3"].status == "missing" and by_name["3"].describe() == "dnmf/babble/seed 0"
    assert by_name["3"].paper_column == "DNMF"  # from the config Hydra saved when the job started
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
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    bad = make_job(tmp_path, "1", "nmf", "babble", 0, snr_summary(1.0))
    (bad / "metrics.json").write_text('{"task": "speech", "summary": {')
    with pytest.warns(ReportWarning, match="malformed .*metrics.json"):
        jobs = load_jobs([tmp_path])
    job = next(j for j in jobs if j.path == bad)
    assert job.status == "failed" and str(bad / "metrics.json") in job.error
    assert (job.method, job.paper_column, job.noise, job.seed) == ("nmf", "NMF", "babble", 0)  # saved config
    cell = build_table(jobs, "table1").cells[("-5", "NMF", "sdr")]
    assert cell.status == "failed"


def test_every_paper_column_without_a_job_is_missing(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    table = build_table(load_jobs([tmp_path]), "table1")
    assert {c.status for (_, column, _), c in table.cells.items() if column != "NMF"} == {"missing"}


def test_expect_grid(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    make_job(tmp_path, "1", "nmf", "babble", 0, snr_summary(1.0))
    jobs = load_jobs([tmp_path])
    expect = parse_expect("NMF,vae_nmf_mu:factory")
    assert ("NMF", "pooled") in expect and ("vae_nmf_mu", "factory") in expect
    assert ("vae_nmf_mu", "babble") not in expect
    table = build_table(jobs, "table1", expect)
    assert table.cells[("-5", "NMF", "sdr")].status == "ok"
    assert table.cells[("-5", "VAE-NMF", "sdr")].status == "not run"  # not expected, no job
    ablation = build_ablation(jobs, "table1", expect)
    assert ablation.cells[("vae_nmf_mu", "-5", "SDR")].status == "missing"  # expected, no job
    assert parse_expect("VAE-NMF", ["table1"]) == {("VAE-NMF", "factory"), ("VAE-NMF", "babble")}
    with pytest.raises(ConfigError, match="KEY\\[:NOISE\\]"):
        parse_expect("nmf:mu:factory")
    with pytest.raises(ConfigError, match="unknown noise"):
        parse_expect("nmf:white")


def test_table2_and_ablation(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "vae_nmf", "pooled", 0, snr_summary(4.0, pesq=2.5, input_sdr=-2.0))
    make_job(tmp_path, "1", "vae_nmf_mu", "pooled", 0, snr_summary(3.0, input_sdr=-2.0))
    make_job(tmp_path, "2", "nmf", "pooled", 0, snr_summary(1.0, input_sdr=-2.0))
    jobs = load_jobs([tmp_path])
    t2 = build_table(jobs, "table2")
    assert t2.cells[("-5", "VAE-NMF", "sdr")].ours == pytest.approx(4.0)
    assert t2.cells[("-5", "VAE-NMF", "sdr")].paper == 5.73
    assert t2.cells[("Aver", "VAE-NMF", "pesq")].ours == pytest.approx(2.65)
    # An ablation row fills no paper column.
    assert t2.cells[("-5", "NMF", "sdr")].ours == pytest.approx(1.0)
    t1 = build_table(jobs, "table1")
    assert {c.status for c in t1.cells.values()} == {"missing"}
    ab = build_ablation(jobs, "table2")
    assert ab.rows == ["nmf", "vae_nmf", "vae_nmf_mu", INPUT_ROW]
    assert ab.labels["vae_nmf_mu"] == "vae_nmf dictionary + mu activations"
    assert ab.cells[("vae_nmf_mu", "-5", "SDR")].ours == pytest.approx(3.0)
    assert ab.cells[(INPUT_ROW, "10", "SDR")].ours == pytest.approx(1.0)
    assert ab.cells[(INPUT_ROW, "0", "PESQ")].ours == pytest.approx(1.6)


def test_metrics_of_an_older_schema_are_refused_with_one_message(tmp_path, make_job, snr_summary):
    import json

    make_job(tmp_path, "0", "nmf", "pooled", 0, snr_summary(1.0))
    old = make_job(tmp_path, "1", "vae_nmf", "pooled", 0, snr_summary(1.0))
    data = json.loads((old / "metrics.json").read_text())
    for key in ("schema", "paper_column", "components"):
        data.pop(key)
    data.update(method="vae_nmf", separator="dnn")  # what version 1 wrote
    (old / "metrics.json").write_text(json.dumps(data))
    with pytest.warns(ReportWarning, match="has schema 1, this vaenmf reads schema 2"):
        jobs = load_jobs([tmp_path])
    assert next(j for j in jobs if j.path == old).status == "failed"
    cell = build_table(jobs, "table2").cells[("-5", "VAE-NMF", "sdr")]
    assert cell.status == "failed" and "rerun the job" in render_markdown(build_table(jobs, "table2"))


def test_duplicates_prefer_ok(tmp_path, make_job, snr_summary):
    make_job(tmp_path / "a", "0", "nmf", "pooled", 0, snr_summary(1.0))
    make_job(tmp_path / "b", "0", "nmf", "pooled", 0, status="failed")
    with pytest.warns(ReportWarning, match="2 jobs for nmf/pooled/seed 0"):
        table = build_table(load_jobs([tmp_path / "a", tmp_path / "b"]), "table2")
    assert table.cells[("-5", "NMF", "sdr")].status == "ok"


def test_write_report_files(full_sweep, tmp_path):
    out = tmp_path / "report"
    written = write_speech_report(load_jobs([full_sweep]), out)
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "table1.md",
            "table1.csv",
            "table1.tex",
            "ablation.md",
            "ablation.csv",
            "differences.md",
            "differences.csv",
        ]
    )
    md = (out / "table1.md").read_text()
    assert md.startswith("# Table 1: speech enhancement") and "[test split]" in md.splitlines()[0]
    # NMF at -5 dB: seed means 2 and 6 (B = 8), 4 utterances per seed with variance 5/3: SE^2 = 8/2 + 5/12,
    # df = SE^4 / (4^2 + 2 (5/24)^2 / 3) = 1.2170, t = 8.4261: 4 +- 17.708 (two seeds 4 dB apart decide little).
    assert "4.00 [-13.71, 21.71] (paper 2.90, +1.10)" in md
    assert "5.50 [-12.21, 23.21] (paper 8.86, -3.36)" in md
    assert "Corpus: demo" in md and "Seeds: 0, 1" in md and "abc1234 (16 jobs)" in md
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert len(rows) == 5 * 4 * 4
    assert list(rows[0]) == [
        "table",
        "eval_split",
        "snr",
        "column",
        "metric",
        "ours",
        "lo",
        "hi",
        "paper",
        "diff",
        "n_seeds",
        "n_utterances",
        "status",
        "std",
        "se",
        "df",
        "note",
        "ci_note",
    ]
    row = next(r for r in rows if (r["snr"], r["column"], r["metric"]) == ("-5", "NMF", "sdr"))
    assert float(row["ours"]) == pytest.approx(4.0) and float(row["paper"]) == 2.90
    assert float(row["diff"]) == pytest.approx(1.10) and row["n_seeds"] == "2" and row["status"] == "ok"
    assert row["eval_split"] == "test" and row["n_utterances"] == "8"
    assert float(row["lo"]) == pytest.approx(-13.708169, abs=1e-5) and float(row["hi"]) == pytest.approx(
        21.708169
    )
    assert float(row["se"]) == pytest.approx(math.sqrt(4 + 5 / 12)) and float(row["df"]) == pytest.approx(
        1.216983
    )
    assert float(row["std"]) == pytest.approx(math.sqrt(8.0))
    tex = (out / "table1.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\multicolumn{4}{c}{VAE-NMF}" in tex and "4.00" in tex
    assert "{\\scriptsize [$-13.71$, $21.71$]}" in tex and "[test split]" in tex
    ablation = list(csv.DictReader((out / "ablation.csv").open()))
    inp = next(r for r in ablation if r["method"] == "input" and r["snr"] == "-5" and r["metric"] == "sdr")
    assert float(inp["ours"]) == pytest.approx(0.0)  # (-1 factory, +1 babble) / 2
    sar = next(r for r in ablation if r["method"] == "input" and r["snr"] == "Aver" and r["metric"] == "sar")
    assert (
        sar["status"] == "n/a" and sar["ours"] == "" and sar["lo"] == "" and "not applicable" in sar["note"]
    )
    assert "input (unprocessed mixture)" in (out / "ablation.md").read_text()
    assert "nmf (nmf dictionary + mu activations)" in (out / "ablation.md").read_text()


def test_write_report_explicit_table_and_errors(full_sweep, tmp_path):
    jobs = load_jobs([full_sweep])
    written = write_speech_report(jobs, tmp_path / "o", tables=["table2"])
    assert (tmp_path / "o" / "table2.md").is_file()
    assert "missing" in (tmp_path / "o" / "table2.md").read_text()
    assert not (tmp_path / "o" / "table1.md").exists() and len(written) == 7
    with pytest.raises(ConfigError, match="unknown table"):
        write_speech_report(jobs, tmp_path / "o", tables=["table3"])
    with pytest.raises(DataError, match="does not exist"):
        load_jobs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no metrics.json found"):
        load_jobs([tmp_path / "empty"])
