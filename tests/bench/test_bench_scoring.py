"""Smoke test of scripts/bench/scoring.py on one demo utterance per SNR: it runs, writes its JSON, the split adds
up, and the pool's rows are the in-process rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "scoring.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_scoring_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scoring_bench_writes_the_split_and_the_pool_timings(tmp_path):
    out = tmp_path / "scoring.json"
    args = ["--out", str(out), "--utterances", "1", "--repeats", "1", "--workers", "1"]
    assert _load_script().main([*args, "--dictionary-iterations", "3", "--quiet"]) == 0
    report = json.loads(out.read_text())
    split = report["split"]
    assert split["mixtures"] == 4  # one utterance at each of the four test SNRs
    parts = split["cpu_s_per_mixture"]
    assert set(parts) >= {"enhance", "bss_eval_references", "pesq_estimate", "stoi_input", "score_utterance"}
    assert all(value >= 0 for value in parts.values())
    assert abs(split["sum_of_score_parts_cpu_s"] - parts["score_utterance"]) < 0.5 * parts["score_utterance"]
    assert set(report["pool"]) == {"workers_0", "workers_1"}
    assert all(entry["rows_identical_to_in_process"] for entry in report["pool"].values())
