"""The muscle-synergy report from hand-written synergy jobs: vaf.csv, the claims checked, figures, the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from vaenmf.report.cli import main as report_main
from vaenmf.report.jobs import ReportWarning, load_jobs
from vaenmf.report.synergy import method_rows, render_markdown, render_vaf_csv, write_synergy_report

N_MUSCLES = 3


def _write_synergy_job(
    root: Path, name: str, method: str, per_muscle: list[float], status: str = "ok", subject: int = 1
) -> Path:
    job = root / name
    job.mkdir(parents=True)
    keys = ["fixed_w"] + (["posterior_mean", "posterior_sample"] if method == "vae_nmf" else [])
    rows = []
    for movement in (1, 2):
        vaf = {
            f"{split}/{k}": {
                "overall": float(np.mean(per_muscle)) - 0.01 * movement,
                "per_muscle": per_muscle,
            }
            for split in ("train", "test")
            for k in keys
        }
        rows.append({"subject": subject, "movement": movement, "vaf": vaf, "synergy_recovery": 0.9})
    data = {
        "schema": 2,
        "task": "synergy",
        "method": method,
        "seed": 0,
        "corpus": "demo",
        "status": status,
        "rows": rows if status == "ok" else [],
        "summary": {
            f"train/{k}": {"vaf_mean": 0.9, "vaf_std": 0.0, "vaf_min": 0.9, "n_movements": 2} for k in keys
        },
        "rank": 4,
        "config": {
            "synergy": {"figure_subject": 1, "figure_movement": 1},
            "data": {"train_repetitions": [1, 3, 4, 6, 7, 8, 9], "test_repetitions": [2, 5, 10]},
        },
    }
    if status != "ok":
        data["error"] = "DataError: broken"
    (job / "metrics.json").write_text(json.dumps(data))
    t = np.linspace(0, 1, 50)
    original = np.stack([np.sin(3 * t + i) + 1.5 for i in range(N_MUSCLES)])
    arrays = {"sample_rate": np.array(100.0)}
    for split in ("train", "test"):
        arrays[f"{split}/original"] = original
        for k in keys:
            arrays[f"{split}/{k}"] = original * (0.9 if method == "vae_nmf" else 0.99)
    np.savez(job / "figure_emg.npz", **arrays)
    return job


def test_vaf_csv_has_every_value_and_shows_failed_jobs(tmp_path):
    _write_synergy_job(tmp_path, "0", "nmf", [0.95, 0.96, 0.97])
    _write_synergy_job(tmp_path, "1", "vae_nmf", [0.90, 0.91, 0.92], status="failed")
    jobs = load_jobs([tmp_path])
    rows = list(csv.DictReader(io.StringIO(render_vaf_csv(jobs))))
    ok = [r for r in rows if r["status"] == "ok"]
    # 2 movements x 2 splits x 1 reconstruction x (3 muscles + overall).
    assert len(ok) == 2 * 2 * (N_MUSCLES + 1)
    assert {r["muscle"] for r in ok} == {"all", "1", "2", "3"}
    assert float(next(r for r in ok if r["muscle"] == "2")["vaf"]) == 0.96
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["method"] == "vae_nmf" and failed[0]["vaf"] == ""


def test_paper_claims_are_checked_on_the_numbers(tmp_path):
    _write_synergy_job(tmp_path / "a", "0", "nmf", [0.95, 0.96, 0.97])
    _write_synergy_job(tmp_path / "a", "1", "vae_nmf", [0.91, 0.92, 0.93])
    md = render_markdown(load_jobs([tmp_path / "a"]))
    assert "rank-4 synergies; training repetitions [1, 3, 4, 6, 7, 8, 9], held-out [2, 5, 10]" in md
    assert "NMF `fixed_w`, VAE-NMF `posterior_sample`" in md
    assert "above 90% for every muscle: yes" in md and "VAE-NMF below NMF for every muscle: yes (3 of 3" in md
    _write_synergy_job(tmp_path / "b", "0", "nmf", [0.95, 0.96, 0.97])
    _write_synergy_job(tmp_path / "b", "1", "vae_nmf", [0.85, 0.98, 0.93])
    md = render_markdown(load_jobs([tmp_path / "b"]))
    assert "above 90% for every muscle: no (lowest: NMF 0.950, VAE-NMF 0.850)" in md
    assert "VAE-NMF below NMF for every muscle: no (2 of 3 muscles)" in md


def test_figures_and_missing_method(tmp_path):
    _write_synergy_job(tmp_path, "0", "nmf", [0.95, 0.96, 0.97])
    written = write_synergy_report(load_jobs([tmp_path]), tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "vaf.csv",
            "fig2_vaf.md",
            "fig2_vaf.png",
            "fig2_vaf.pdf",
            "fig2_vaf_summary.png",
            "fig2_vaf_summary.pdf",
        ]
    )
    assert all(p.stat().st_size > 0 for p in written)
    md = (tmp_path / "out" / "fig2_vaf.md").read_text()
    assert "VAE-NMF | - | - | missing (no job)" in md and "Not checkable" in md


def test_cli_reports_a_synergy_only_sweep(tmp_path, capsys):
    _write_synergy_job(tmp_path / "sweep", "0", "nmf", [0.95, 0.96, 0.97])
    _write_synergy_job(tmp_path / "sweep", "1", "vae_nmf", [0.91, 0.92, 0.93])
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "fig2_vaf.png" in out and "table1" not in out
    assert (tmp_path / "out" / "vaf.csv").is_file()


def test_synergy_jobs_do_not_shadow_speech_jobs(tmp_path, make_job, snr_summary, recwarn):
    """A Figure 2 job of method nmf sits in the same sweep folder as the Table 1 job nmf/factory."""
    make_job(tmp_path, "speech", "nmf", "factory", 0, snr_summary(3.0))
    make_job(tmp_path, "speech_babble", "nmf", "babble", 0, snr_summary(3.0))
    synergy = _write_synergy_job(tmp_path, "synergy", "nmf", [0.95, 0.96, 0.97])
    (synergy / "config.yaml").write_text(
        "task: synergy\nseed: 0\nmethod:\n  name: nmf\n  paper_column: NMF\n"
    )
    jobs = load_jobs([tmp_path])
    job = next(j for j in jobs if j.task == "synergy")
    assert job.noise is None
    from vaenmf.report.speech import write_speech_report

    write_speech_report(jobs, tmp_path / "out", tables=["table1"])
    assert not [w for w in recwarn if "jobs for nmf" in str(w.message)]
    row = next(
        line for line in (tmp_path / "out" / "table1.md").read_text().splitlines() if line.startswith("| -5")
    )
    assert "3.00 [0.95, 5.05] (paper 2.90" in row


def test_jobs_that_split_the_subjects_are_merged(tmp_path, recwarn):
    """A cluster sweep with one job per subject (`data.subjects=[1],[2]`) is one study in the report."""
    _write_synergy_job(tmp_path, "0", "nmf", [0.95, 0.96, 0.97], subject=1)
    _write_synergy_job(tmp_path, "1", "nmf", [0.85, 0.86, 0.87], subject=2)
    jobs = load_jobs([tmp_path])
    rows = method_rows(jobs, "nmf")
    assert list(rows) == [0] and sorted((r["subject"], r["movement"]) for r in rows[0]) == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    md = render_markdown(jobs)
    train = next(line for line in md.splitlines() if line.startswith("| NMF (seed 0) | train | fixed_w"))
    # Mean over the 4 movements of both jobs: (0.96 - 0.01, 0.96 - 0.02, 0.86 - 0.01, 0.86 - 0.02) -> 0.895;
    # sample variance 0.0101 / 3, SE 0.02901, t(0.975, 3) = 3.18245: 0.895 -+ 0.0923.
    assert "| 0.8950 [0.8027, 0.9873] |" in train and "| 4 |" in train
    assert not [w for w in recwarn if issubclass(w.category, ReportWarning)]
    _write_synergy_job(tmp_path, "2", "nmf", [0.5, 0.5, 0.5], subject=2)  # the same movements again
    with pytest.warns(ReportWarning, match="subject 2 movement 1 is in more than one job"):
        rows = method_rows(load_jobs([tmp_path]), "nmf")
    assert len(rows[0]) == 4
    # The whole report says it once per duplicate, not once per table and figure.
    with pytest.warns(ReportWarning) as caught:
        write_synergy_report(load_jobs([tmp_path]), tmp_path / "out")
    assert sum("subject 2 movement 1" in str(w.message) for w in caught) == 1


def test_mean_vaf_carries_its_interval_over_movements(tmp_path):
    _write_synergy_job(tmp_path, "0", "nmf", [0.95, 0.96, 0.97])
    md = render_markdown(load_jobs([tmp_path]))
    # Movements score 0.95 and 0.94: mean 0.945, SE 0.005, t(0.975, 1) = 12.7062: 0.945 -+ 0.0635.
    assert "| NMF (seed 0) | train | fixed_w | 0.9450 [0.8815, 1.0085] | 0.0050 |" in md


def test_the_heading_says_what_the_recordings_fell_short_of(tmp_path):
    root = tmp_path / "sweep"
    job = _write_synergy_job(root, "0", "nmf", [0.95, 0.92, 0.91])
    _write_synergy_job(root, "1", "vae_nmf", [0.94, 0.91, 0.90])
    assert "SHORT" not in render_markdown(load_jobs([root]))  # files without the key: nothing short
    data = json.loads((job / "metrics.json").read_text())
    data["shortfalls"] = [
        {"what": "movements", "asked": 12, "got": 11, "unit": "", "where": "subject 2: movement 5 absent"}
    ]
    (job / "metrics.json").write_text(json.dumps(data))
    text = render_markdown(load_jobs([root]))
    assert (
        "**SHORT of the protocol: movements 11 of 12 (subject 2: movement 5 absent) [1 of 2 jobs]**" in text
    )
