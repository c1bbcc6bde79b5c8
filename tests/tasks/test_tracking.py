"""W&B that a cluster user can read (issue 12, item 3): what the jobs and the report log, read back from the
offline run files (vaenmf.wandb_offline parses ``run-*.wandb``; nothing touches the network).

The end-to-end tests run real jobs in subprocesses with ``WANDB_MODE=offline``; the unit tests use in-process
offline runs under ``tmp_path``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from vaenmf import tracking
from vaenmf.tasks.runtime import JobContext
from vaenmf.train import CONFIG_DIR
from vaenmf.wandb_offline import OfflineRunError, read_offline_run, run_folders

OFFLINE = {"WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true"}
#: A speech job in a few seconds: 5 dictionary updates, one test utterance at one SNR.
TINY_SPEECH = [
    "experiment=smoke",
    "logger=wandb",
    "dictionary.mu_iterations=5",
    "data.n_test_utterances=1",
    "data.test_snrs=[0]",
    "cache_dictionaries=false",
]
#: A synergy job in seconds: one subject, two movements, VAE-NMF capped at 2 epochs per fit.
TINY_SYNERGY = [
    "task=synergy",
    "data=emg_demo",
    "data.subjects=[1]",
    "data.movements=[1,2]",
    "method=vae_nmf",
    "max_stage_epochs=2",
    "logger=wandb",
]


def _compose(overrides: list[str], tmp_path: Path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[*overrides, f"paths.output_root={tmp_path}"], return_hydra_config=True
        )
    return cfg


@pytest.fixture
def offline(monkeypatch):
    import wandb

    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(tracking.GROUP_ENV, raising=False)
    # W&B keeps the settings it first saw in a process-wide singleton: drop it so that this test's offline
    # environment is read, whatever an earlier test of the session left there.
    wandb.teardown()
    yield

    if wandb.run is not None:  # a test that failed half-way must not leave its run to the next
        wandb.finish()


@pytest.fixture
def hydra_job():
    """Set Hydra's config for code that asks HydraConfig where the job was launched; cleared afterwards."""

    def set_config(cfg, mode: str, output_dir: Path, sweep_dir: Path | None = None):
        from hydra.types import RunMode

        cfg = copy.deepcopy(cfg)
        OmegaConf.set_readonly(cfg.hydra, False)  # set_config left an earlier copy read-only
        with open_dict(cfg):
            cfg.hydra.mode = RunMode[mode]
            cfg.hydra.runtime.output_dir = str(output_dir)
            if sweep_dir is not None:
                cfg.hydra.sweep.dir = str(sweep_dir)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield set_config
    HydraConfig.instance().cfg = None


def _only_run(folder: Path):
    runs = run_folders(folder / "wandb")
    assert len(runs) == 1, runs
    return read_offline_run(runs[0], wait=30)  # W&B's writer ends the file after finish() returns


# ---------------------------------------------------------------------------------------------------------------
# Names, groups, tags


def test_group_is_the_sweep_folder_or_the_run_folder_never_the_task_name(tmp_path, hydra_job, monkeypatch):
    monkeypatch.delenv(tracking.GROUP_ENV, raising=False)
    cfg = _compose(["experiment=table1"], tmp_path)
    sweep_a, sweep_b = tmp_path / "table1" / "multiruns" / "day1", tmp_path / "table1" / "multiruns" / "day2"
    hydra_job(cfg, "MULTIRUN", sweep_a / "3", sweep_a)
    job_3 = tracking.run_group(cfg, sweep_a / "3")
    hydra_job(cfg, "MULTIRUN", sweep_a / "7", sweep_a)
    assert tracking.run_group(cfg, sweep_a / "7") == job_3 == "table1/multiruns/day1"  # one sweep, one group
    hydra_job(cfg, "MULTIRUN", sweep_b / "3", sweep_b)
    assert tracking.run_group(cfg, sweep_b / "3") == "table1/multiruns/day2"  # the same task, another sweep
    # A single run outside a sweep: a group of its own, its run folder.
    hydra_job(cfg, "RUN", tmp_path / "table1" / "runs" / "t0")
    assert tracking.run_group(cfg, tmp_path / "x") == "table1/runs/t0"
    # A sweep outside paths.output_root keeps its absolute path; an explicit group and the environment win.
    hydra_job(cfg, "MULTIRUN", Path("/elsewhere/sweep/0"), Path("/elsewhere/sweep"))
    assert tracking.run_group(cfg, "/elsewhere/sweep/0") == "/elsewhere/sweep"
    monkeypatch.setenv(tracking.GROUP_ENV, "reproduce-x")
    assert tracking.run_group(cfg, sweep_a / "3") == "reproduce-x"
    assert tracking.run_group(cfg, sweep_a / "3", explicit="mine") == "mine"
    long = tracking.group_name(Path("/") / ("d" * 200) / "sweep")
    assert len(long) <= tracking.MAX_GROUP and long.endswith("/sweep")


def test_job_type_name_and_tags_name_task_method_noise_or_subjects_seed_and_split(tmp_path):
    speech = _compose(["method=vae_nmf", "noise=babble", "seed=3", "tags=[mine]"], tmp_path)
    labels = tracking.job_labels(speech)
    assert tracking.job_type(labels) == "speech.vae_nmf"
    assert tracking.run_name(labels) == "vae_nmf babble seed3"
    assert tracking.run_tags(labels, speech.tags) == [
        "task:speech", "method:vae_nmf", "noise:babble", "seed:3", "eval_split:test", "experiment:speech", "mine",
    ]  # fmt: skip
    validation = _compose(["eval_split=validation"], tmp_path)
    assert "eval_split:validation" in tracking.run_tags(tracking.job_labels(validation))
    synergy = _compose(["task=synergy", "data=emg_demo", "data.subjects=[1,2,3,5]", "seed=1"], tmp_path)
    labels = tracking.job_labels(synergy)
    assert tracking.job_type(labels) == "synergy.nmf" and "noise" not in labels
    assert "subjects:1-3,5" in tracking.run_tags(labels) and "seed:1" in tracking.run_tags(labels)
    assert tracking.run_name(labels) == "nmf subjects 1-3,5 seed1"


# ---------------------------------------------------------------------------------------------------------------
# In-process runs: one per job, stable keys for per-movement fits, nothing when disabled


def test_each_job_gets_its_own_finished_run(tmp_path, offline):
    import wandb

    folders = []
    for seed in (0, 1):
        cfg = _compose(["logger=wandb", f"seed={seed}"], tmp_path)
        job = JobContext(cfg, tmp_path / f"job{seed}")
        (logger,) = job.loggers("speech_dict")
        logger.log_hyperparams({"rank": 40})
        logger.log_metrics({"speech_dict/divergence": 1.0 + seed, "epoch": 0}, step=0)
        job.log_summary({"test/0/sdr": 5.0 + seed})
        job.finish("ok" if seed == 0 else "failed")
        assert wandb.run is None  # never left open for the next job
        folders.append(tmp_path / f"job{seed}")
    runs = [_only_run(f) for f in folders]
    assert runs[0].run_id != runs[1].run_id
    for seed, (run, folder) in enumerate(zip(runs, folders, strict=True)):
        assert f"seed:{seed}" in run.tags and run.config["job"]["seed"] == str(seed)
        assert run.config["seed"] == seed and run.config["stages"] == {"speech_dict": {"rank": 40}}
        assert run.series("speech_dict/divergence") == [1.0 + seed]
        assert run.summary["test/0/sdr"] == 5.0 + seed
        sidecar = json.loads((folder / tracking.SIDECAR).read_text())
        assert sidecar["id"] == run.run_id and sidecar["group"] == run.group and sidecar["mode"] == "offline"
    assert (runs[0].exit_code, runs[0].summary["status"]) == (0, "ok")
    assert (runs[1].exit_code, runs[1].summary["status"]) == (1, "failed")


def test_per_movement_fits_log_under_stable_keys(tmp_path, offline):
    cfg = _compose(["logger=wandb", "task=synergy", "data=emg_demo"], tmp_path)
    job = JobContext(cfg, tmp_path / "job")
    for subject, movement in ((10, 1), (10, 2), (11, 1)):
        stage = f"s{subject}_m{movement}"
        (logger,) = job.loggers(stage)
        logger.log_hyperparams({"log_prefix": f"{stage}/", "rank": 4})
        for epoch in range(3):
            logger.log_metrics({f"{stage}/elbo_epoch": -10.0 * subject + epoch, "epoch": epoch}, step=epoch)
    job.finish()
    run = _only_run(tmp_path / "job")
    assert not [k for k in run.history_keys() if re.match(r"s\d+_m\d+", k)]
    assert run.series("movement/elbo_epoch") == [-100.0, -99.0, -98.0] * 2 + [-110.0, -109.0, -108.0]
    assert run.series("movement/step") == list(range(1, 10))
    assert run.series("movement/subject") == [10] * 6 + [11] * 3
    assert run.step_metric("movement/elbo_epoch") == "movement/step"
    assert set(run.config["stages"]) == {"movement"}  # not one config entry per movement
    curves = run.table_rows("movement_curves")
    assert [(r["subject"], r["movement"], r["epoch"]) for r in curves][:4] == [
        (10, 1, 0),
        (10, 1, 1),
        (10, 1, 2),
        (10, 2, 0),
    ]
    assert curves[-1]["elbo_epoch"] == -108.0


def test_summary_run_syncs_each_jobs_latest_attempt_in_the_jobs_group(tmp_path, offline):
    cfg = _compose(["logger=wandb"], tmp_path)
    folder = tmp_path / "job"
    for status in ("interrupted", "ok"):  # a requeued job: the first attempt was stopped, the second finished
        job = JobContext(cfg, folder)
        job.loggers("speech_dict")[0].log_metrics({"speech_dict/divergence": 1.0}, step=0)
        job.finish(status)
    latest = json.loads((folder / tracking.SIDECAR).read_text())
    assert len(run_folders(folder)) == 2
    table = tmp_path / "out" / "table1.csv"
    table.parent.mkdir()
    table.write_text("table,snr,sdr\ntable1,-5,1.5\ntable1,Average,2.5\n")
    figure = tmp_path / "out" / "fig2_vaf.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(figure)
    report = tracking.log_report_run([folder], [table, figure], tmp_path / "out", sweeps=[str(tmp_path)])
    assert (report.tables, report.images) == (["tables/table1"], ["figures/fig2_vaf"])
    assert report.group == latest["group"] and report.note == "the jobs' group"
    assert report.sync_folders == [Path(latest["run_dir"]), report.folder]
    summary = read_offline_run(report.folder, wait=30)
    assert summary.group == latest["group"] and summary.job_type == "report"
    # A column mixing numbers and text (the Average row) is text; an all-number column stays numeric.
    assert summary.table_rows("tables/table1") == [
        {"table": "table1", "snr": "-5", "sdr": 1.5},
        {"table": "table1", "snr": "Average", "sdr": 2.5},
    ]
    with Image.open(summary.image("figures/fig2_vaf")) as logged:
        assert logged.size == (40, 30) and logged.convert("RGB").getpixel((5, 5)) == (200, 10, 10)
    assert tracking.log_report_run([folder], [table], tmp_path / "out", force=False) is None


def test_disabled_wandb_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = _compose(["logger=wandb"], tmp_path)
    job = JobContext(cfg, tmp_path / "job")
    (logger,) = job.loggers("speech_dict")
    logger.log_metrics({"speech_dict/divergence": 1.0}, step=0)
    tracking.log_speech_results(job, {"0": {"sdr": 1.0}}, [{"utterance": "u0", "snr": 0.0, "sdr": 1.0}])
    job.finish()
    assert not (tmp_path / "job" / "wandb").exists() and not (tmp_path / "job" / tracking.SIDECAR).exists()


def test_reading_a_damaged_or_missing_run_is_one_clear_error(tmp_path):
    with pytest.raises(OfflineRunError, match="holds no run-"):
        read_offline_run(tmp_path, wait=5)  # nothing to wait for: at once
    (tmp_path / "run-x.wandb").write_bytes(b"")
    with pytest.raises(OfflineRunError, match="empty or truncated"):
        read_offline_run(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# End to end: a seed sweep of speech jobs and the report's summary run; synergy jobs


def test_sweep_jobs_share_the_sweep_group_and_the_report_adds_a_summary_run(
    tmp_path, train_cli, monkeypatch, capsys
):
    sweep = tmp_path / "sweeps" / "smoke"
    result = train_cli(
        ["-m", *TINY_SPEECH, "seed=0,1", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={sweep}"],
        tmp_path,
        env_extra=OFFLINE,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    groups = set()
    for seed in (0, 1):
        folder = sweep / str(seed)
        metrics = json.loads((folder / "metrics.json").read_text())
        run = _only_run(folder)
        groups.add(run.group)
        assert run.job_type == "speech.nmf" and run.name == f"nmf factory seed{seed}" and run.exit_code == 0
        assert {"task:speech", "method:nmf", "noise:factory", f"seed:{seed}", "experiment:smoke"} <= set(
            run.tags
        )
        # Per-SNR metrics, equal to what metrics.json holds.
        for key in ("sdr", "sir", "sar", "pesq_nb", "stoi", "sdr_input"):
            assert run.summary[f"test/0/{key}"] == pytest.approx(metrics["summary"]["0"][key])
        # The per-utterance rows as a wandb.Table, one row per test mixture.
        utterances = run.table_rows("utterances")
        assert [r["utterance"] for r in utterances] == [r["utterance"] for r in metrics["rows"]]
        assert utterances[0]["sdr"] == pytest.approx(metrics["rows"][0]["sdr"])
        assert run.table_rows("snr_summary")[0]["sdr"] == pytest.approx(metrics["summary"]["0"]["sdr"])
        # Training curves under the stage's keys, against Lightning's step.
        curve = run.series("speech_dict/divergence")
        assert len(curve) >= 2 and curve[-1] < curve[0] and run.step_metric("trainer/global_step") is None
        assert run.config["job"]["method"] == "nmf" and run.config["dictionary"]["mu_iterations"] == 5
        assert f"wandb sync {run.folder}" in result.stdout + result.stderr
    assert groups == {"sweeps/smoke"}  # both jobs, one group: the sweep's folder

    # The report: a summary run in the jobs' group with its tables, and one sync command for all three runs.
    from vaenmf.report.cli import main as report

    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "report"
    assert report([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = _only_run(out)
    assert (summary.group, summary.job_type, summary.name) == ("sweeps/smoke", "report", "report")
    assert "experiment:smoke" in summary.tags and summary.exit_code == 0
    with open(out / "table1.csv") as fh:
        n_rows = sum(1 for _ in fh) - 1
    table1 = summary.table("tables/table1")
    assert len(table1["data"]) == n_rows and table1["columns"][:3] == ["table", "eval_split", "snr"]
    assert {"tables/table1", "tables/ablation", "tables/differences"} <= set(summary.summary)
    sync = next(line for line in printed.splitlines() if "wandb sync" in line)
    for folder in [*run_folders(sweep), summary.folder]:
        assert str(folder) in sync
    # --no-wandb: no second summary run.
    assert report([str(sweep), "--out", str(out), "--no-wandb"]) == 0
    assert len(run_folders(out / "wandb")) == 1


# The per-movement path (batched=false) is `slow`: the default batched path runs in `make test`.
@pytest.mark.parametrize("batched", [pytest.param("false", marks=pytest.mark.slow), "true"])
def test_synergy_job_logs_movement_table_figure_and_stable_curve_keys(tmp_path, train_cli, batched):
    out = tmp_path / "job"
    args = [
        *TINY_SYNERGY,
        f"synergy.batched={batched}",
        f"hydra.run.dir={out}",
        f"paths.output_root={tmp_path}",
    ]
    result = train_cli(args, tmp_path, env_extra=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    run = _only_run(out)
    assert run.job_type == "synergy.vae_nmf" and {"subjects:1", "seed:0", "task:synergy"} <= set(run.tags)
    # No per-movement keys (s1_m1/elbo_epoch, ...): a few stable ones.
    assert not [k for k in run.history_keys() if re.match(r"s\d+_m\d+", k)], sorted(run.history_keys())
    assert len(run.history_keys()) < 40
    if batched == "false":  # one Trainer per movement: movement/<metric>, 2 epochs each
        assert len(run.series("movement/elbo_epoch")) == 4 and run.series("movement/movement") == [1, 1, 2, 2]
        assert run.step_metric("movement/elbo_epoch") == "movement/step"
        assert {(r["subject"], r["movement"]) for r in run.table_rows("movement_curves")} == {(1, 1), (1, 2)}
    else:  # the stack's history: mean over movements per epoch, every model in the table
        history = run.table_rows("stack_history")
        assert [(r["movement"], r["epoch"]) for r in history] == [(1, 1), (1, 2), (2, 1), (2, 2)]
        means = run.series("stack/elbo_mean")
        assert means == pytest.approx([(history[e]["elbo"] + history[2 + e]["elbo"]) / 2 for e in (0, 1)])
        assert run.step_metric("stack/elbo_mean") == "stack/epoch"
    movements = run.table_rows("movements")
    assert [(r["subject"], r["movement"]) for r in movements] == [
        (r["subject"], r["movement"]) for r in metrics["rows"]
    ]
    for logged, row in zip(movements, metrics["rows"], strict=True):
        assert logged["vaf/test/fixed_w"] == pytest.approx(row["vaf"]["test/fixed_w"]["overall"])
        assert logged["vaf/train/posterior_mean"] == pytest.approx(
            row["vaf"]["train/posterior_mean"]["overall"]
        )
    assert run.summary["vaf/test/fixed_w"] == pytest.approx(metrics["summary"]["test/fixed_w"]["vaf_mean"])
    image = run.image("figure2/movement")
    assert image.suffix == ".png" and image.stat().st_size > 10_000


def test_seed_sweep_runs_every_job_of_the_grid_once_per_seed(tmp_path, train_cli):
    """`seed=0,1` in a multirun extends an experiment's grid (here table1's noises x the given methods); each job
    fails at once (max_stage_epochs=0) so that only the sweep's plumbing is paid for."""
    sweep = tmp_path / "sweep"
    args = ["-m", "experiment=table1", "method=nmf,vae_nmf", "seed=0,1", "max_stage_epochs=0", "logger=none",
            f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path}"]  # fmt: skip
    train_cli(args, tmp_path)
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    ran = sorted((j["method"], j["noise"], j["seed"]) for j in jobs)
    assert ran == sorted((m, n, s) for m in ("nmf", "vae_nmf") for n in ("factory", "babble") for s in (0, 1))
    assert all("max_stage_epochs" in j["error"] for j in jobs)


def test_offline_run_reader_sees_what_wandb_wrote(tmp_path, offline):
    """The reader against a run written by wandb itself (group, tags, config, history, tables, metrics)."""
    import wandb

    run = wandb.init(
        project="p", group="g", job_type="t", tags=["a", "b"], dir=str(tmp_path), config={"x": 1}
    )
    run.define_metric("k/step")
    run.define_metric("k/v", step_metric="k/step")
    for i in range(3):
        run.log({"k/v": i * 2, "k/step": i})
    run.log({"tab": wandb.Table(columns=["u", "s"], data=[["x", 1.0], ["y", 2.0]])})
    run.summary["extra"] = 7
    run.finish()
    read = read_offline_run(run_folders(tmp_path)[0], wait=30)
    assert (read.group, read.job_type, read.tags, read.project) == ("g", "t", ["a", "b"], "p")
    assert read.config["x"] == 1 and read.series("k/v") == [0, 2, 4] and read.step_metric("k/v") == "k/step"
    assert read.table_rows("tab") == [{"u": "x", "s": 1.0}, {"u": "y", "s": 2.0}]
    assert read.summary["extra"] == 7 and read.exit_code == 0


def test_wandb_sync_command_quotes_odd_folders():
    assert tracking.sync_command([Path("/a/b"), "/c d"]) == "wandb sync /a/b '/c d'"
    assert os.environ.get("WANDB_MODE") in (None, "disabled", "offline")  # the suite never goes online


def test_a_wandb_run_starts_without_the_anonymous_deprecation_warning(tmp_path):
    """Lightning's WandbLogger always hands wandb ``anonymous=None``, which wandb answers with "The anonymous
    setting has no effect" in every job's log. A fresh process: wandb says it once per process."""
    code = f"""
from hydra import compose, initialize_config_dir
from vaenmf.tasks.runtime import JobContext
with initialize_config_dir(config_dir={str(CONFIG_DIR)!r}, version_base="1.3"):
    cfg = compose("train", overrides=["logger=wandb", "paths.output_root={tmp_path}"], return_hydra_config=True)
job = JobContext(cfg, {str(tmp_path / "job")!r})
(logger,) = job.loggers("speech_dict")
logger.log_metrics({{"speech_dict/divergence": 1.0, "epoch": 0}}, step=0)
job.finish("ok")
"""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}
    env.pop("WANDB_SILENT", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_folders(tmp_path / "job" / "wandb")  # the run was started and written
    assert "anonymous" not in result.stdout + result.stderr
