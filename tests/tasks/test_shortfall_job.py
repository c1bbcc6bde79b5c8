"""What the data fell short of is recorded: in a job's metrics.json (``shortfalls``) and in the report's headings."""

from __future__ import annotations

import json

from vaenmf.report.cli import main as report_main


def test_a_job_on_a_short_noise_records_it_and_the_report_heading_says_it(tmp_path, train_cli):
    sweep = tmp_path / "sweep"
    # 15 s of demo factory noise: its training part (60%, 9 s) gives 1126 frames of the smoke's 1200.
    short = ["experiment=smoke", "noise=factory", "data.demo_noise_seconds=15"]
    full = ["experiment=smoke", "noise=babble"]
    for name, overrides in (("short", short), ("full", full)):
        result = train_cli(
            [*overrides, f"paths.output_root={tmp_path}", f"hydra.run.dir={sweep / name}"], tmp_path
        )
        assert result.returncode == 0, result.stderr[-3000:]
    metrics = {name: json.loads((sweep / name / "metrics.json").read_text()) for name in ("short", "full")}
    assert metrics["short"]["shortfalls"] == [
        {
            "what": "noise dictionary",
            "asked": 1200,
            "got": 1126,
            "unit": "frames",
            "where": "factory",
            "source": "demo:factory(seed=0)",
        }
    ]
    assert metrics["full"]["shortfalls"] == []  # the smoke's sizes are met

    assert report_main([str(sweep), "--out", str(tmp_path / "both")]) == 0
    heading = (tmp_path / "both" / "table1.md").read_text().split("| SNR (dB)")[0]
    assert (
        "- SHORT of the protocol: noise dictionary 1126 of 1200 frames (factory) [1 of 2 jobs]\n" in heading
    )
    assert (
        r"\textbf{SHORT of the protocol: noise dictionary 1126 of 1200 frames (factory)"
        in (tmp_path / "both" / "table1.tex").read_text()
    )
    assert report_main([str(sweep / "full"), "--out", str(tmp_path / "full")]) == 0
    for name in ("table1.md", "table1.tex"):
        assert "SHORT" not in (tmp_path / "full" / name).read_text()
