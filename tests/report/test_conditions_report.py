"""Noise conditions beyond the paper's tables in the report: other noises, pools, files and mismatched-noise jobs
go to conditions.{md,csv}, labelled with what they were trained and tested on, and never into Tables 1 and 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from vaenmf.report.cli import main as report_main
from vaenmf.report.conditions import build_conditions, other_conditions
from vaenmf.report.jobs import load_jobs


def _mismatched(job: Path, test_noise: str) -> Path:
    """Make a hand-written job one trained on its noise and tested on ``test_noise``."""
    data = json.loads((job / "metrics.json").read_text())
    data["test_noise"] = test_noise
    for row in data["rows"]:
        row["noise"] = test_noise
        row["utterance"] = row["utterance"].replace(f"_{data['noise']}_", f"_{test_noise}_")
    (job / "metrics.json").write_text(json.dumps(data))
    return job


@pytest.fixture
def sweep(tmp_path, make_job, snr_summary):
    root = tmp_path / "sweep"
    for k, method in enumerate(("nmf", "vae_nmf")):
        make_job(root, f"f{k}", method, "factory", 0, snr_summary(1.0 + k))
        make_job(root, f"b{k}", method, "babble", 0, snr_summary(3.0 + k))
        make_job(root, f"w{k}", method, "white", 0, snr_summary(10.0 + k))
        make_job(root, f"p{k}", method, "pooled:white+pink", 0, snr_summary(12.0 + k))
        _mismatched(make_job(root, f"m{k}", method, "factory", 0, snr_summary(-3.0 + k)), "babble")
    return root


def test_other_conditions_get_their_own_sections(sweep):
    jobs = load_jobs([sweep])
    assert [j.condition for j in jobs if j.path.name == "m0"] == ["factory -> babble"]
    assert other_conditions(jobs, "test") == ["factory -> babble", "pooled:white+pink", "white"]
    tables = {t.condition: t for t in build_conditions(jobs, "test")}
    mismatched = tables["factory -> babble"]
    assert (mismatched.noise, mismatched.test_noise) == ("factory", "babble")
    assert mismatched.title == "trained on factory, tested on babble (mismatched noise)"
    assert mismatched.rows == ["nmf", "vae_nmf", "input"]
    assert mismatched.cells[("nmf", "-5", "SDR")].ours == pytest.approx(-3.0)
    assert mismatched.cells[("vae_nmf", "Aver", "SDR")].ours == pytest.approx(-2.0 + 1.5)
    assert mismatched.cells[("nmf", "-5", "SDR")].ci is not None  # intervals over the per-utterance rows
    assert tables["white"].cells[("vae_nmf", "0", "SDR")].ours == pytest.approx(12.0)
    assert tables["white"].title == "noise white"


def test_the_report_labels_them_and_keeps_them_out_of_the_paper_tables(sweep, tmp_path):
    out = tmp_path / "report"
    assert report_main([str(sweep), "--out", str(out)]) == 0
    text = (out / "conditions.md").read_text()
    assert "## factory -> babble: trained on factory, tested on babble (mismatched noise)" in text
    assert "## white: noise white" in text and "## pooled:white+pink: noise pooled:white+pink" in text
    rows = list(csv.DictReader(io.StringIO((out / "conditions.csv").read_text())))
    nmf = [r for r in rows if r["condition"] == "factory -> babble" and r["method"] == "nmf"]
    first = next(r for r in nmf if r["metric"] == "sdr" and r["snr"] == "-5")
    assert (first["noise"], first["test_noise"], first["ours"]) == ("factory", "babble", "-3.0")
    # Table 1 averages the matched factory and babble jobs only: NMF at -5 dB is (1 + 3) / 2, not the
    # mismatched job's -3.
    table1 = list(csv.DictReader(io.StringIO((out / "table1.csv").read_text())))
    cell = next(r for r in table1 if r["snr"] == "-5" and r["column"] == "NMF" and r["metric"] == "sdr")
    assert float(cell["ours"]) == pytest.approx(2.0) and cell["status"] == "ok"
    assert "white" not in (out / "table1.md").read_text() and not (out / "table2.md").exists()


def test_a_sweep_of_other_conditions_only(tmp_path, make_job, snr_summary):
    root = tmp_path / "sweep"
    make_job(root, "0", "nmf", "white", 0, snr_summary(5.0))
    out = tmp_path / "report"
    assert report_main([str(root), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["conditions.csv", "conditions.md"]
    make_job(root, "1", "nmf", "white", 0, snr_summary(5.0), eval_split="validation")
    assert report_main([str(root), "--out", str(tmp_path / "both")]) == 0
    names = sorted(p.name for p in (tmp_path / "both").iterdir())
    assert names == [
        "conditions.csv",
        "conditions.md",
        "conditions_validation.csv",
        "conditions_validation.md",
    ]
    assert (
        "[VALIDATION split, not the test set]" in (tmp_path / "both" / "conditions_validation.md").read_text()
    )
