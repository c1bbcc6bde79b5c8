"""Faults a cluster job meets, for real: SIGKILL mid-stage and resume, reruns under another config, a second job
on the same folder, Ctrl-C, and results that a failed rerun must not destroy.

Each kill test starts ``vaenmf-train`` in a subprocess, waits until the stage under test has checkpointed at
least ``after`` epochs (reading its ``last.ckpt``, which is written atomically), sends SIGKILL, reruns the job in
the same folder, checks from which epoch the stage continued, and compares the final metrics with an
uninterrupted run of the same config. The resumed stages restore the global random states and the data
modules' shuffling state from the checkpoint, so even the stochastic stages (VAE-NMF, the encoding DNN, the
DRNN) end with the uninterrupted run's numbers exactly; the comparison asks for equality to 1e-9.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Small but not tiny: each killed stage runs long enough (a second or more) to be killed mid-way.
BASE = [
    "experiment=smoke",
    "cache_dictionaries=false",
    "logger=csv",
    "max_stage_epochs=null",
    "data.test_snrs=[-5]",
]
TRAIN = [sys.executable, "-m", "vaenmf.train"]
RESUMED = re.compile(r"Resuming stage (\S+) from \S+ \((\d+) epochs done\)")


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false", "HYDRA_FULL_ERROR": "0"}


def _args(job: Path, extra: list[str]) -> list[str]:
    return [*BASE, *extra, f"hydra.run.dir={job}", f"paths.output_root={job.parent}", "torch_threads=1"]


def run_and_kill(args: list[str], last_ckpt: Path, after: int, cwd: Path, timeout: float = 300.0) -> int:
    """Start ``vaenmf-train ARGS``, SIGKILL it once ``last_ckpt`` records at least ``after`` epochs; return them."""
    proc = subprocess.Popen(
        TRAIN + args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(
                    f"the job ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
                )
            if last_ckpt.is_file() and last_ckpt.stat().st_mtime_ns != seen:
                seen = last_ckpt.stat().st_mtime_ns
                epochs = int(torch.load(last_ckpt, map_location="cpu", weights_only=True)["epoch"]) + 1
                if epochs >= after:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return epochs
            time.sleep(0.005)
        raise AssertionError(f"no checkpoint with {after} epochs in {last_ckpt} within {timeout} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(TRAIN + args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _summary(job: Path) -> dict:
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "ok", metrics.get("error")
    return metrics["summary"] if metrics["task"] == "speech" else metrics["summary"]


def _assert_same_numbers(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_same_numbers(a[key], b[key])
        elif isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(
    ("extra", "stage", "total", "after"),
    [
        pytest.param(
            ["method=nmf", "dictionary.mu_iterations=400", "dictionary.checkpoint_every=20"], "speech_dict", 400, 20,
            id="nmf",
        ),
        pytest.param(
            ["method=vae_nmf", "dictionary.epochs=12", "dictionary.checkpoint_every=2", "activations.epochs=4"],
            "speech_dict", 12, 4, id="vae_nmf",
        ),
        pytest.param(
            ["method=dnmf", "dictionary.mu_iterations=30", "reconstruction.mu_iterations=300",
             "reconstruction.checkpoint_every=20"], "dnmf_recon", 300, 20, id="dnmf", marks=pytest.mark.slow,
        ),
        pytest.param(
            ["method=nmf_dnn", "dictionary.mu_iterations=30", "activations.epochs=16",
             "activations.checkpoint_every=2"], "encoder", 16, 4, id="encoder", marks=pytest.mark.slow,
        ),
        pytest.param(
            ["method=drnn", "network.epochs=24", "network.checkpoint_every=3"], "drnn", 24, 6, id="drnn",
            marks=pytest.mark.slow,
        ),
    ],
)  # fmt: skip
def test_a_killed_stage_resumes_where_it_stopped_and_ends_as_an_uninterrupted_run(
    tmp_path, extra, stage, total, after
):
    job = tmp_path / "killed"
    killed_at = run_and_kill(_args(job, extra), job / "checkpoints" / stage / "last.ckpt", after, tmp_path)
    assert not (job / "metrics.json").exists()
    again = run(_args(job, extra), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = dict(RESUMED.findall(again.stdout + again.stderr))
    # The stage continued from the checkpoint the kill left (not from scratch, not from an older one).
    assert after <= int(resumed[stage]) == killed_at < total
    reference = tmp_path / "uninterrupted"
    straight = run(_args(reference, extra), tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "Resuming" not in straight.stdout + straight.stderr
    _assert_same_numbers(_summary(job), _summary(reference))


STACK_RESUMED = re.compile(r"VAE-NMF stack (\d+): resuming at epoch (\d+)")


def _stack_epochs(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


def run_and_kill_stack(
    args: list[str], checkpoint: Path, after: int, cwd: Path, timeout: float = 300.0
) -> int:
    """As :func:`run_and_kill`, for the batched synergy fit's stack checkpoint."""
    proc = subprocess.Popen(
        TRAIN + args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the job ended before it was killed"
            if checkpoint.is_file() and _stack_epochs(checkpoint) >= after:
                epochs = _stack_epochs(checkpoint)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return epochs
            time.sleep(0.005)
        raise AssertionError(f"no stack checkpoint with {after} epochs within {timeout} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


SYNERGY = ["task=synergy", "method=vae_nmf", "data.subjects=[1]", "data.movements=[1,2]", "logger=csv",
           "dictionary.checkpoint_every=2"]  # fmt: skip


def _synergy_args(job: Path, extra: list[str]) -> list[str]:
    return [*SYNERGY, *extra, f"hydra.run.dir={job}", f"paths.output_root={job.parent}", "torch_threads=1"]


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "resumed_with"), [(1, 1), (2, 1)])
def test_a_killed_batched_synergy_job_resumes_its_stack(tmp_path, workers, resumed_with):
    """One stack in the job's process, or one per worker process (workers=2: each movement's stack in its own,
    killed with the job), resumed by a job of one process (as on a node with fewer CPUs): the same folder, the
    same stacks."""
    extra = ["dictionary.epochs=60", f"synergy.workers={workers}"]
    job = tmp_path / "killed"
    checkpoint = job / "checkpoints" / "vae_nmf_stack" / "stack_0000.pt"
    killed_at = run_and_kill_stack(_synergy_args(job, extra), checkpoint, 4, tmp_path)
    stacks = sorted(checkpoint.parent.glob("stack_*.pt"))
    left = {p.name: (p.stat().st_mtime_ns, _stack_epochs(p)) for p in stacks}
    time.sleep(1.0)
    assert {p.name: (p.stat().st_mtime_ns, _stack_epochs(p)) for p in stacks} == left  # nothing trains on
    again = run(_synergy_args(job, [*extra, f"synergy.workers={resumed_with}"]), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = {int(k): int(e) for k, e in STACK_RESUMED.findall(again.stdout + again.stderr)}
    assert resumed[0] == killed_at  # stack 0 continued from the checkpoint the kill left
    assert resumed == {int(name[6:10]): epochs for name, (_, epochs) in left.items()}
    reference = tmp_path / "uninterrupted"
    assert run(_synergy_args(reference, extra), tmp_path).returncode == 0
    _assert_same_numbers(_summary(job), _summary(reference))


@pytest.mark.slow
def test_a_killed_synergy_job_resumes_its_movement_and_keeps_finished_ones(tmp_path):
    extra = ["synergy.batched=false", "dictionary.epochs=12"]
    job = tmp_path / "killed"
    # Movement 2's fit: movement 1 is finished (movements/s1_m1.json) by then.
    killed_at = run_and_kill(
        _synergy_args(job, extra), job / "checkpoints" / "s1_m2" / "last.ckpt", 4, tmp_path
    )
    assert (job / "movements" / "s1_m1.json").is_file() and not (job / "movements" / "s1_m2.json").exists()
    again = run(_synergy_args(job, extra), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "s1_m1: done in a previous attempt" in log
    assert dict(RESUMED.findall(log)) == {"s1_m2": str(killed_at)}
    reference = tmp_path / "uninterrupted"
    assert run(_synergy_args(reference, extra), tmp_path).returncode == 0
    _assert_same_numbers(_summary(job), _summary(reference))


def test_a_rerun_under_another_config_is_refused_and_destroys_nothing(tmp_path):
    """The probe of the issue: a finished beta = 1 folder rerun with beta = 2 resumed the beta = 1 checkpoint."""
    job = tmp_path / "job"
    cache = tmp_path / "cache" / "dictionaries"
    args = [*BASE, "cache_dictionaries=true", f"hydra.run.dir={job}", f"paths.output_root={tmp_path}"]
    assert run(args, tmp_path).returncode == 0
    first = json.loads((job / "metrics.json").read_text())
    entries = sorted(p.name for p in cache.iterdir())
    result = run([*args, "dictionary.system.beta=2"], tmp_path)
    assert result.returncode == 1
    assert "holds a job with another config (dictionary.system.beta: 1 -> 2)" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing of the first job changed, and no cache entry was written under the beta = 2 key.
    assert json.loads((job / "metrics.json").read_text()) == first
    assert sorted(p.name for p in cache.iterdir()) == entries
    attempts = [json.loads(line) for line in (job / "attempts.jsonl").read_text().splitlines()]
    assert [a["status"] for a in attempts] == ["ok", "failed"] and "another config" in attempts[1]["error"]
    # The same config again: the complete result is kept, nothing is recomputed.
    same = run(args, tmp_path)
    assert same.returncode == 0 and "holds this job's complete result" in same.stdout + same.stderr
    assert json.loads((job / "metrics.json").read_text()) == first


@pytest.mark.slow  # the SLURM requeue tests also check results with the cache on equal the reference
def test_results_do_not_depend_on_the_dictionary_cache(tmp_path):
    """A cached fit draws no random numbers: every stage is seeded from the job's seed and its own identity."""
    args = [*BASE, "method=vae_nmf", "dictionary.epochs=3", "activations.epochs=2", "cache_dictionaries=true"]
    fresh, cached = tmp_path / "fresh", tmp_path / "cached"
    assert (
        run(
            [*args, f"hydra.run.dir={fresh}", f"paths.output_root={tmp_path}", "torch_threads=1"], tmp_path
        ).returncode
        == 0
    )
    second = run(
        [*args, f"hydra.run.dir={cached}", f"paths.output_root={tmp_path}", "torch_threads=1"], tmp_path
    )
    assert second.returncode == 0 and "reusing cached dictionary" in second.stdout + second.stderr
    _assert_same_numbers(_summary(fresh), _summary(cached))


def test_a_checkpoint_of_other_inputs_is_not_resumed(tmp_path):
    """Stage level: the same folder and stage, other data (the fingerprint differs): refit, old one set aside."""
    from hydra import compose, initialize_config_dir

    from vaenmf.tasks.dictionary import dictionary_key, fit_dictionary_stage
    from vaenmf.tasks.runtime import JobContext
    from vaenmf.train import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["method=nmf", "logger=none", "trainer.enable_progress_bar=false", "dictionary.rank=3",
                       "dictionary.mu_iterations=20", "dictionary.checkpoint_every=5", f"paths.output_root={tmp_path}"],
        )  # fmt: skip
    job = JobContext(cfg, tmp_path / "job")
    g = torch.Generator().manual_seed(0)
    X1, X2 = torch.rand(12, 40, generator=g), torch.rand(12, 40, generator=g)
    W1, _ = fit_dictionary_stage(job, "d", X1, cfg.dictionary, 0, None)
    checkpoint = torch.load(job.checkpoint_dir("d") / "last.ckpt", weights_only=True)
    assert checkpoint["vaenmf"]["fingerprint"] == dictionary_key(X1, cfg.dictionary, 0)
    W2, _ = fit_dictionary_stage(job, "d", X2, cfg.dictionary, 0, None)
    fresh, _ = fit_dictionary_stage(JobContext(cfg, tmp_path / "fresh"), "d", X2, cfg.dictionary, 0, None)
    torch.testing.assert_close(W2, fresh)  # refitted from scratch, not continued from X1's factors
    assert not torch.allclose(W1, W2)
    assert (tmp_path / "job" / "checkpoints" / "d.stale-1" / "last.ckpt").is_file()


def test_a_failed_rerun_keeps_the_complete_result(tmp_path):
    job = tmp_path / "job"
    args = [*BASE, "dictionary.mu_iterations=5", f"hydra.run.dir={job}", f"paths.output_root={tmp_path}"]
    assert run(args, tmp_path).returncode == 0
    complete = (job / "metrics.json").read_text()
    bad = run([*args, "dictionary.rank=abc"], tmp_path)
    assert bad.returncode == 1 and "dictionary.rank must be a positive integer, got 'abc'" in bad.stderr
    assert (job / "metrics.json").read_text() == complete
    last = json.loads((job / "attempts.jsonl").read_text().splitlines()[-1])
    assert last["status"] == "failed" and "dictionary.rank" in last["error"]
    # The report reads the complete result.
    from vaenmf.report.jobs import load_jobs

    (loaded,) = load_jobs([job])
    assert loaded.status == "ok"


def test_the_job_folder_lock_refuses_a_second_holder_and_dies_with_a_killed_one(tmp_path):
    """The lock alone, in seconds (the end-to-end version below is `slow`): a holder in another process makes a
    second entry fail with one message naming its pid; SIGKILL of the holder frees the folder at once."""
    from vaenmf.errors import ConfigError
    from vaenmf.tasks.jobdir import JobDirectory

    job = tmp_path / "job"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from vaenmf.tasks.jobdir import JobDirectory\n"
         "with JobDirectory(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)", str(job)],
        env=_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        message = f"another vaenmf-train \\(pid {holder.pid} on .*is running in {job}"
        with pytest.raises(ConfigError, match=message), JobDirectory(job):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with JobDirectory(job):  # no stale lock: the kernel released it with the killed process
        pass


@pytest.mark.slow
def test_a_second_job_on_the_same_folder_refuses_and_a_killed_job_leaves_no_lock(tmp_path):
    job = tmp_path / "job"
    args = _args(job, ["method=nmf", "dictionary.mu_iterations=3000", "dictionary.checkpoint_every=10"])
    first = subprocess.Popen(
        TRAIN + args, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while not (job / "checkpoints" / "speech_dict").is_dir():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = run(args, tmp_path)
        assert second.returncode == 1
        assert f"another vaenmf-train (pid {first.pid}" in second.stderr and "is running in" in second.stderr
        assert not (job / "metrics.json").exists()  # the refused job wrote nothing over the running one
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = run(args[:-1] + ["torch_threads=1", "dictionary.mu_iterations=3000"], tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not list(job.glob("checkpoints/speech_dict/last-v*.ckpt"))  # no stray second last.ckpt


def test_files_are_created_with_the_users_umask(tmp_path):
    job = tmp_path / "job"
    code = (
        "import os, sys, runpy; os.umask(0o002); sys.argv = ['vaenmf-train', *sys.argv[1:]]; "
        "runpy.run_module('vaenmf.train', run_name='__main__')"
    )
    args = [*BASE, "dictionary.mu_iterations=5", "cache_dictionaries=true", f"hydra.run.dir={job}",
            f"paths.output_root={tmp_path}"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for path in (job / "metrics.json", job / "config.yaml", job / "checkpoints" / "speech_dict" / "last.ckpt",
                 next((tmp_path / "cache" / "dictionaries").iterdir())):  # fmt: skip
        assert path.stat().st_mode & 0o777 == 0o664, path


def test_ctrl_c_stops_the_sweep_with_one_line_and_records_interrupted(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *BASE, "method=nmf", "dictionary.mu_iterations=4000", "dictionary.checkpoint_every=10",
            "seed=0,1", f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path}", "torch_threads=1"]  # fmt: skip
    proc = subprocess.Popen(
        TRAIN + args,
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background of a non-interactive shell (`bash .ci/run &`) ignores SIGINT, and a
        # child inherits that: give the job the Ctrl-C a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not (sweep / "0" / "checkpoints" / "speech_dict").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.count("vaenmf-train: interrupted") == 1 and "Traceback" not in err
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "SystemExit" not in metrics["error"]
    assert not (sweep / "1").exists()  # the sweep stopped: the second job never started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dictionary.rank=abc"], "dictionary.rank must be a positive integer, got 'abc'"),
        (["dictionary.epochs=-1", "method=vae_nmf"], "dictionary.epochs must be a positive integer, got -1"),
        (["activations.mask_power=0"], "activations.mask_power must be finite and > 0, got 0"),
        (["seed=-3"], "seed must be a nonnegative integer, got -3"),
        (
            ["data.n_test_utterances=40"],
            "data.n_test_utterances=40 asks for more utterances than the test split has (24",
        ),
    ],
)
def test_bad_values_are_refused_when_the_job_starts(tmp_path, train_cli, args, message):
    job = tmp_path / "job"
    result = train_cli([*BASE, *args, f"hydra.run.dir={job}", f"paths.output_root={tmp_path}"], tmp_path)
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (job / "checkpoints").exists()


def test_folders_that_are_files_are_one_clear_error(tmp_path, train_cli):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    result = train_cli([*BASE, f"hydra.run.dir={a_file}"], tmp_path)
    assert result.returncode == 2 and "hydra.run.dir" in result.stderr and "is a file" in result.stderr
    result = train_cli([*BASE, f"hydra.run.dir={tmp_path / 'job'}", f"paths.output_root={a_file}"], tmp_path)
    assert result.returncode == 1 and f"paths.output_root={a_file} is a file" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_at_an_absurd_scale_is_named_not_a_nan_traceback():
    import numpy as np

    import vaenmf
    from vaenmf.errors import ConfigError, DataError

    X = np.random.default_rng(0).random((20, 300))
    with pytest.raises(DataError, match=r"values up to 1e\+30 .* overflow float32 when squared"):
        vaenmf.fit_dictionary(X * 1e30, method="vae_nmf", rank=3, max_iter=2)
    with pytest.raises(ConfigError, match="max_iter must be a positive integer, got -1"):
        vaenmf.fit_dictionary(X, method="vae_nmf", rank=3, max_iter=-1)
    with pytest.raises(ConfigError, match="max_iter must be a positive integer, got 0"):
        vaenmf.fit_dictionary(X, method="nmf", rank=3, max_iter=0)
    model = vaenmf.VAENMFEstimator(rank=3, max_epochs=1).fit(X)
    with pytest.raises(ConfigError, match="n_samples must be a positive integer, got 0"):
        vaenmf.encode(model, X, kind="sample", n_samples=0)
