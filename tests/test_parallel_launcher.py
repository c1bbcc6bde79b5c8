"""launcher=parallel (vaenmf.cluster.local) and `scripts/reproduce.py --jobs`: the serial sweep's results, sooner.

A sweep run two jobs at a time must leave exactly the metrics.json (every score row, summary, dictionary
statistic) of the same sweep run one job at a time; a failed job must not stop the others; jobs that share
fitted dictionaries must not run side by side before the first of them is done.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from vaenmf.cluster.local import SlotFolder, dictionary_group
from vaenmf.train import CONFIG_DIR, REPO_ROOT

#: metrics.json keys that record where and how fast a job ran, not what it computed.
RUN_KEYS = (
    "output_dir",
    "wall_time_s",
    "timings_s",
    "cpu_timings_s",
    "peak_rss_mb",
    "peak_rss_scope",
    "training_epochs",
    "scoring",
)


def _train(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "vaenmf.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _results(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a job computed: metrics.json without the run's whereabouts and timings, and without paths."""
    kept = {k: v for k, v in metrics.items() if k not in RUN_KEYS}
    kept["config"] = {k: v for k, v in metrics["config"].items() if k != "paths"}
    return kept


def _sweep_results(sweep: Path) -> dict[str, dict[str, Any]]:
    return {
        str(path.parent.relative_to(sweep)): _results(json.loads(path.read_text()))
        for path in sorted(sweep.rglob("metrics.json"))
    }


def _line(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


# ------------------------------------------------------------------------------------------------ pieces
def test_slots_are_shared_and_released(tmp_path):
    slots, other = SlotFolder(tmp_path / "slots", 2), SlotFolder(tmp_path / "slots", 2)
    first, second = slots.try_slot(), other.try_slot()
    assert first is not None and second is not None
    assert slots.try_slot() is None and other.try_slot() is None
    SlotFolder.release(first)
    third = other.try_slot()
    assert third is not None
    for handle in (second, third):
        SlotFolder.release(handle)


def test_a_group_has_one_first_job_until_it_is_done(tmp_path):
    slots, other = SlotFolder(tmp_path, 1), SlotFolder(tmp_path, 1)
    lock = slots.try_group("g")
    assert lock is not None and other.try_group("g") is None and not other.group_done("g")
    slots.finish_group("g")
    SlotFolder.release(lock)
    assert other.group_done("g")


def test_dictionary_groups_follow_the_shared_dictionaries():
    nmf = dictionary_group(_compose("method=nmf", "noise=factory"))
    assert nmf is not None
    # DNMF and the NMF-DNN ablation start from the NMF dictionaries; another noise shares the speech dictionary.
    assert dictionary_group(_compose("method=dnmf", "noise=babble")) == nmf
    assert dictionary_group(_compose("method=nmf_dnn", "noise=pooled")) == nmf
    vae = dictionary_group(_compose("method=vae_nmf"))
    assert vae not in (None, nmf) and dictionary_group(_compose("method=vae_nmf_mu")) == vae
    assert dictionary_group(_compose("method=nmf", "seed=1")) != nmf
    assert dictionary_group(_compose("method=nmf", "dictionary.rank=20")) != nmf
    assert dictionary_group(_compose("method=drnn")) is None  # no dictionary
    assert dictionary_group(_compose("method=nmf", "cache_dictionaries=false")) is None  # nothing shared


# -------------------------------------------------------------------------------------------- end to end
SWEEP = ["-m", "experiment=smoke", "method=nmf,dnmf", "seed=0,1", "logger=none"]


def test_a_parallel_sweep_computes_exactly_what_the_serial_sweep_computes(tmp_path):
    serial = _train(
        [*SWEEP, f"hydra.sweep.dir={tmp_path / 's'}", f"paths.output_root={tmp_path / 'so'}"], tmp_path
    )
    assert serial.returncode == 0, serial.stderr[-3000:]
    parallel = _train(
        [
            *SWEEP,
            "launcher=parallel",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={tmp_path / 'p'}",
            f"paths.output_root={tmp_path / 'po'}",
        ],
        tmp_path,
    )
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    log = parallel.stdout + parallel.stderr
    assert "4 jobs locally, 2 at a time, 1 CPU(s) each" in log and "Sweep finished: 4 job(s) ok" in log
    expected, got = _sweep_results(tmp_path / "s"), _sweep_results(tmp_path / "p")
    assert sorted(got) == sorted(expected) == ["0", "1", "2", "3"]
    for job in expected:
        assert got[job]["status"] == "ok"
        assert got[job] == expected[job], job
    # Each worker scored in its own process (one CPU per job), the serial jobs in a pool (or alone on 1 CPU).
    for job in expected:
        assert json.loads((tmp_path / "p" / job / "metrics.json").read_text())["scoring"]["workers"] == 0
    # DNMF (#2, #3) starts from the NMF dictionaries of its seed: it started after that NMF job ended, and
    # reused its cached dictionaries instead of fitting them again.
    lines = log.splitlines()
    assert _line(lines, "] #2 started") > _line(lines, "] #0 done in")
    assert _line(lines, "] #3 started") > _line(lines, "] #1 done in")
    assert log.count("reusing cached dictionary") == 4
    # Quiet: no Lightning tip, the device lines once per worker process (not once per Trainer).
    assert "Tip:" not in log and log.count("GPU available") <= 2


def test_a_failed_job_does_not_stop_the_parallel_sweep(tmp_path):
    result = _train(
        [
            "-m",
            "experiment=smoke",
            "method=nmf",
            "dictionary.rank=4,100000",
            "logger=none",
            "launcher=parallel",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"paths.output_root={tmp_path}",
        ],
        tmp_path,
    )
    assert result.returncode != 0
    ok = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())
    failed = json.loads((tmp_path / "sweep" / "1" / "metrics.json").read_text())
    assert ok["status"] == "ok" and failed["status"] == "failed" and "rank" in failed["error"]
    log = result.stdout + result.stderr
    assert "1 job(s) ok, 1 failed (#1)" in log


# ------------------------------------------------------------------------------------------- reproduce
#: A reproduce run in a minute: every sweep, two methods per table, two stage epochs, one test utterance.
TINY = [
    "--experiments",
    "table1,table2,fig2_vaf",
    "logger=none",
    "max_stage_epochs=2",
    "speech:data.n_test_utterances=1",
    "speech:data.test_snrs=[0]",
    "speech:data.dict_speech_frames=1500",
    "speech:data.dict_noise_frames=1200",
    "speech:data.n_train_utterances=4",
    "table1:method=nmf,dnmf,drnn",
    "table2:method=nmf,vae_nmf",
    "fig2_vaf:data.subjects=[1]",
    "fig2_vaf:data.demo_movements=2",
]


def _reproduce(out: Path, jobs: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false"}
    return subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "reproduce.py"),
            "--out",
            str(out),
            "--jobs",
            str(jobs),
            *TINY,
        ],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_reproduce_with_two_jobs_at_a_time_gives_the_serial_tables(tmp_path):
    serial = _reproduce(tmp_path / "serial", 1)
    assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-3000:]
    parallel = _reproduce(tmp_path / "parallel", 2)
    assert parallel.returncode == 0, parallel.stdout[-3000:] + parallel.stderr[-3000:]
    assert "table1, table2, fig2_vaf at once, 2 jobs at a time" in parallel.stdout
    for sweep in ("table1", "table2", "fig2_vaf"):
        expected = _sweep_results(tmp_path / "serial" / "sweeps" / sweep)
        got = _sweep_results(tmp_path / "parallel" / "sweeps" / sweep)
        assert expected and got == expected, sweep
    tables = sorted(p.name for p in (tmp_path / "serial").glob("*.csv"))
    assert {"table1.csv", "table2.csv", "vaf.csv"} <= set(tables)
    for name in tables:
        assert _csv_rows(tmp_path / "parallel" / name) == _csv_rows(tmp_path / "serial" / name), name
