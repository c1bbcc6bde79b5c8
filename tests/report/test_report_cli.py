"""The vaenmf-report command line."""

from __future__ import annotations

import subprocess
import sys

from vaenmf.report.cli import main


def test_cli_writes_tables(full_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(full_sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("table1.md", "table1.csv", "table1.tex", "ablation.md", "ablation.csv"):
        assert (out / name).is_file()
        assert f"wrote {out / name}" in printed
    assert not (out / "table2.md").exists()  # no pooled-noise job: Table 2 not asked for
    assert main([str(full_sweep), "--out", str(out), "--tables", "table1,table2"]) == 0
    assert (out / "table2.md").is_file()


def test_cli_bad_dirs_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "does not exist" in err and "nope" in err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no metrics.json found" in err
    assert f"{tmp_path / 'empty'}: the folder holds no jobs" in err
    assert not (tmp_path / "o").exists()
    # A sweep whose jobs started but none finished: said so, naming the folder.
    (tmp_path / "started" / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "started" / "0" / ".hydra" / "overrides.yaml").write_text("[]\n")
    assert main([str(tmp_path / "started"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'started'}: none of its 1 job folder(s) has finished" in err


def test_no_summary_run_unless_the_jobs_were_logged_to_wandb(full_sweep, tmp_path, capsys):
    # Hand-written jobs have no wandb_run.json: no W&B run, no sync line.
    assert main([str(full_sweep), "--out", str(tmp_path / "o")]) == 0
    assert "wandb sync" not in capsys.readouterr().out and not (tmp_path / "o" / "wandb").exists()


def test_cli_bad_options_exit_2(full_sweep, tmp_path, capsys):
    assert main([str(full_sweep), "--out", str(tmp_path / "o"), "--tables", "table3"]) == 2
    assert "--tables" in capsys.readouterr().err
    assert main([str(full_sweep), "--out", str(tmp_path / "o"), "--expect", "nmf:mu:factory"]) == 2
    assert "KEY[:NOISE]" in capsys.readouterr().err


def test_cli_malformed_job_warns_and_shows_failed(full_sweep, tmp_path, capsys):
    bad = full_sweep / "3" / "metrics.json"
    bad.write_text("not json")
    assert main([str(full_sweep), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "warning: malformed" in captured.err and str(bad) in captured.err
    assert "1 failed or missing" in captured.out
    md = (tmp_path / "o" / "table1.md").read_text()
    assert str(bad) in md and "partial" in md


def test_cli_subprocess_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vaenmf.report.cli", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("vaenmf-report: error:")
