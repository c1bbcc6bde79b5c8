"""scripts/dry_run.py: one job per method on a corpus of the real size, stages scaled to the protocol's epochs,
and the cost of the whole study; (slow) the script end to end on a small generated corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dry_run.py"


@pytest.fixture(scope="module")
def dry(load_script):
    return load_script("dry_run")


def _result(wall, cpu=None, epochs=None, scoring=None):
    """A run record as run_job leaves it (only what the estimate reads)."""
    return {
        "metrics": {
            "timings_s": dict(wall),
            "cpu_timings_s": dict(cpu or wall),
            "training_epochs": epochs or {},
            "scoring": scoring or {"workers": 0},
            "peak_rss_mb": dict.fromkeys(wall, 1000.0),
        }
    }


def test_plan_covers_every_method_of_the_study_and_shortens_only_the_networks(dry):
    jobs = {j.name: j for j in dry.plan_jobs()}
    assert set(jobs) == {f"speech_{m}" for m in dry.SPEECH_METHODS} | {
        f"synergy_{m}" for m in dry.SYNERGY_METHODS
    }
    assert jobs["speech_drnn"].capped == {"drnn": "network.epochs"}
    assert jobs["speech_vae_nmf"].capped == jobs["speech_nmf_dnn"].capped == {"encoder": "activations.epochs"}
    assert jobs["synergy_vae_nmf"].capped == {"vae_nmf_stack": "dictionary.epochs"}
    for name in ("speech_nmf", "speech_dnmf", "speech_vae_nmf_mu", "synergy_nmf"):
        assert jobs[name].capped == {}  # the dictionary fits and MU stages run as in the study
    with pytest.raises(SystemExit, match="speech_nfm"):
        dry.plan_jobs(["speech_nfm"])


def test_protocol_lengths_are_the_composed_defaults(dry):
    jobs = {j.name: j for j in dry.plan_jobs()}
    assert dry.protocol_lengths(jobs["speech_drnn"]) == {"drnn": 100}
    assert dry.protocol_lengths(jobs["speech_vae_nmf"]) == {"encoder": 30}
    assert dry.protocol_lengths(jobs["synergy_vae_nmf"]) == {"vae_nmf_stack": 150}


def test_commands_route_task_overrides_and_switch_the_caches_off(dry, tmp_path):
    jobs = {j.name: j for j in dry.plan_jobs()}
    extra = ["speech:data.n_test_utterances=2", "synergy:data.subjects=[1]", "trainer.accelerator=cpu"]
    speech = dry.job_command(jobs["speech_drnn"], tmp_path / "root", tmp_path, 3, extra)
    synergy = dry.job_command(jobs["synergy_nmf"], tmp_path / "root", tmp_path, 3, extra)
    assert "network.epochs=3" in speech and "data=speech_timit" in speech and "cache_features=false" in speech
    assert "data.n_test_utterances=2" in speech and "data.subjects=[1]" not in speech
    assert "data.subjects=[1]" in synergy and "data.n_test_utterances=2" not in synergy
    assert "trainer.accelerator=cpu" in speech and "trainer.accelerator=cpu" in synergy
    assert f"paths.data_root={tmp_path / 'root'}" in synergy and "data=ninapro_db1" in synergy
    # One stack process, as in the study's sweep of one-CPU jobs.
    assert "synergy.workers=1" in synergy and not any("synergy.workers" in a for a in speech)


def test_a_shortened_stage_is_scaled_by_its_measured_seconds_per_epoch(dry):
    job = dry.Job("speech_drnn", "speech", "drnn", {"drnn": "network.epochs"})
    result = _result(
        {"data": 10.0, "training_set": 20.0, "separator": 50.0, "enhance_and_score": 30.0},
        {"data": 10.0, "training_set": 20.0, "separator": 25.0, "enhance_and_score": 20.0},
        {"drnn": {"epochs": 2, "seconds": 40.0, "batches_per_epoch": 100}},
        {"workers": 1, "score_cpu_s": 12.0},
    )
    scaled = dry.at_protocol(job, result, {"drnn": 100})
    assert scaled["wall_s"]["separator"] == pytest.approx(50.0 + 98 * 20.0)
    assert scaled["cpu_s"]["separator"] == pytest.approx(25.0 + 98 * 20.0 * 0.5)  # the stage's CPU/wall ratio
    assert scaled["wall_s"]["data"] == 10.0 and scaled["scaled"]["drnn"]["seconds_per_epoch"] == 20.0
    # The scoring worker's CPU is part of the job's serial cost.
    assert scaled["serial_cpu_s"] == pytest.approx(10 + 20 + 25 + 98 * 10 + 20 + 12)
    result["metrics"]["training_epochs"] = {}
    with pytest.raises(SystemExit, match="no timed epochs"):
        dry.at_protocol(job, result, {"drnn": 100})


def _study(dry):
    """Per-method results with round numbers: every method 100 s of data + dictionaries ... at protocol."""
    results = {}
    for method in dry.SPEECH_METHODS:
        stages = {"data": 1.0, "enhance_and_score": 10.0, "separator": 5.0}
        epochs = {}
        if method != "drnn":
            stages |= {"dictionary_frames": 2.0, "dictionaries": 19.0}
            epochs = {"speech_dict": {"epochs": 1, "seconds": 10.0, "batches_per_epoch": 1},
                      "noise_dict_factory": {"epochs": 1, "seconds": 9.0, "batches_per_epoch": 1}}  # fmt: skip
        if method in ("vae_nmf", "nmf_dnn", "dnmf", "drnn"):
            stages["training_set"] = 3.0
        r = _result(stages, epochs=epochs)
        r["lengths"] = {}
        r["protocol"] = dry.at_protocol(dry.Job(method, "speech", method), r, {})
        results[f"speech_{method}"] = r
    for method in dry.SYNERGY_METHODS:
        r = _result({"data": 1.0, "synergies": 7.0})
        r["lengths"] = {}
        r["protocol"] = dry.at_protocol(dry.Job(method, "synergy", method), r, {})
        results[f"synergy_{method}"] = r
    return results


def test_the_study_estimate_counts_each_cached_stage_once_per_condition(dry):
    results = _study(dry)
    speech = {k.removeprefix("speech_"): v for k, v in results.items() if k.startswith("speech_")}
    # Per condition: dictionaries are fitted by one NMF and one VAE-NMF job (the other three reuse them: 3 x 19 s);
    # in conditions 2 and 3 those two fit the noise dictionary only (2 x 10 s each); the dictionary frames are
    # prepared once (4 x 2 s saved) and the training set once (3 x 3 s saved).
    per_condition = 3 * 19 + 4 * 2 + 3 * 3
    assert dry.cache_savings(speech) == pytest.approx(3 * per_condition + 2 * 2 * 10)
    est = dry.study_estimate(results)
    job_costs = sum(r["protocol"]["serial_cpu_s"] for k, r in results.items() if k.startswith("speech_"))
    assert est["serial_cpu_s_without_caches"] == pytest.approx(3 * job_costs + 2 * 8.0)
    assert est["serial_cpu_s"] == pytest.approx(
        est["serial_cpu_s_without_caches"] - est["cache_savings_cpu_s"]
    )
    assert est["two_cpu_cores_s"] == pytest.approx(est["serial_cpu_s"] / 2)
    lo, hi = est["one_gpu_node_s_model"]
    assert 0 < lo <= hi < est["serial_cpu_s"]
    del results["speech_dnmf"]
    assert dry.study_estimate(results) == {"complete": False, "missing_methods": ["dnmf"]}


def test_refuses_a_corpus_folder_it_did_not_write(dry, tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mine.txt").write_text("a user's file")
    with pytest.raises(SystemExit, match="was not written by this script"):
        dry.prepare_corpus(tmp_path, 0.01)
    assert (tmp_path / "corpus" / "mine.txt").is_file()


@pytest.mark.slow
def test_dry_run_end_to_end_on_a_small_generated_corpus(tmp_path, repo_root):
    """The script at a reduced size: corpus, check, three jobs, the tables; a rerun reuses the finished jobs."""
    command = [
        sys.executable,
        str(SCRIPT),
        str(tmp_path / "dry"),
        "--scale",
        "0.01",
        "--epochs",
        "2",
        "--only",
        "speech_nmf,speech_drnn,synergy_vae_nmf",
        "speech:data.n_test_utterances=2",
        "speech:data.test_snrs=[0]",
        "synergy:data.subjects=[1]",
    ]
    env = {"PYTHONPATH": str(repo_root / "src"), "PATH": "/usr/bin:/bin", "WANDB_MODE": "disabled"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500, cwd=repo_root)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "dry" / "dry_run.json").read_text())
    assert set(summary["jobs"]) == {"speech_nmf", "speech_drnn", "synergy_vae_nmf"}
    assert summary["estimate"]["complete"] is False  # three of the eight jobs
    drnn = summary["jobs"]["speech_drnn"]
    assert drnn["metrics"]["status"] == "ok" and drnn["metrics"]["peak_rss_scope"] == "stage"
    assert set(drnn["metrics"]["timings_s"]) == {"data", "training_set", "separator", "enhance_and_score"}
    epochs = drnn["metrics"]["training_epochs"]["drnn"]
    assert epochs["epochs"] == 2 and epochs["batches_per_epoch"] > 0
    measured, scaled = drnn["metrics"]["timings_s"]["separator"], drnn["protocol"]["wall_s"]["separator"]
    assert scaled == pytest.approx(measured + 98 * epochs["seconds"] / 2)
    assert all(100 < mb < 20000 for mb in drnn["metrics"]["peak_rss_mb"].values())
    stack = summary["jobs"]["synergy_vae_nmf"]["metrics"]["training_epochs"]["vae_nmf_stack"]
    assert stack["epochs"] == 2 and stack["batches_per_epoch"] > 0 and stack["workers"] == 1
    # The epochs' time is every stack's (they run one after the other), so it is most of the stage's.
    assert stack["seconds"] <= summary["jobs"]["synergy_vae_nmf"]["metrics"]["timings_s"]["synergies"]
    assert summary["jobs"]["synergy_vae_nmf"]["counts"] == {"movements": 12}
    table = (tmp_path / "dry" / "dry_run.md").read_text()
    assert "| speech_drnn |" in table and "| synergy_vae_nmf |" in table
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=repo_root)
    assert again.returncode == 0 and again.stdout.count("reusing the finished job") == 3
