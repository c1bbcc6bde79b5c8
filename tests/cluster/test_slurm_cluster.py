"""``launcher=slurm`` against a real single-node SLURM cluster (``make test-cluster``; marker ``cluster``).

(a) a two-job sweep becomes one SLURM job array through the Hydra submitit launcher, both tasks finish, and
    ``vaenmf-report`` builds Table 1 from them; rerunning the same command submits nothing, and after the
    submitting process of a rerun died, its job still finishes;
(b) a two-process CPU DDP job (``trainer=ddp`` on CPU, gloo, two tasks started by srun) trains VAE-NMF and the
    encoding DNN, and only global rank 0 writes ``config.yaml`` and ``metrics.json``;
(c) running array tasks are requeued, by ``scontrol requeue`` and by the USR2 signal that submitit handles,
    while their encoding-DNN stage trains; each resumes the stage from ``last.ckpt`` at the epoch after the
    checkpoint, repeats the uninterrupted run's losses and ends with its metrics, exactly;
(d) the same, by ``scontrol requeue``, for a VAE-NMF and an NMF speech dictionary interrupted mid-fit.

Every job's overrides are in the constants below (today's config spelling), so that a config reshape changes
only those lines.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cluster

WRITE_AUDIT_DIR = Path(__file__).resolve().parent / "write_audit"

# -- the jobs (one place) -------------------------------------------------------------------------------------
#: (a) the sweep: two jobs, factory and babble noise.
SMOKE_SWEEP = ["experiment=smoke", "noise=factory,babble"]
SMOKE_NOISES = ("factory", "babble")
#: (b) VAE-NMF dictionaries and the encoding DNN, each trained by two DDP processes on CPU (gloo).
DDP_JOB = [
    "experiment=smoke",
    "method=vae_nmf",
    "dictionary.epochs=3",
    "activations.epochs=2",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
]
#: (b) the stages that train under DDP: checkpoint folder, the log line that gives its training frames, its
#: epochs and batch size in DDP_JOB, and whether its loader drops the last incomplete batch.
DDP_STAGES = {
    "speech_dict": (r"speech_dict: fitting a rank-\d+ \S+ dictionary on (\d+) frames", 3, 128, False),
    "noise_dict_factory": (
        r"noise_dict_factory: fitting a rank-\d+ \S+ dictionary on (\d+) frames",
        3,
        128,
        False,
    ),
    "encoder": (r"encoder: (\d+) training frames", 2, 128, True),
}
DDP_WORLD_SIZE = 2
#: (c) NMF dictionaries, then the encoding DNN, whose stage is interrupted. Full-batch encoder training (a batch
#: larger than the 1182 training frames) only keeps its 40 epochs short; the resume of shuffled mini-batches is
#: test (d)'s VAE-NMF stage. The dictionary cache is on (the default): the second attempt takes both
#: dictionaries from it (its first attempt, or another task, filled it), which changes nothing (every stage
#: seeds itself, vaenmf.tasks.runtime.seed_stage).
RESUME_JOB = [
    "experiment=smoke",
    "method=nmf_dnn",
    "max_stage_epochs=null",
    "activations.epochs=40",
    "activations.batch_size=100000",
    "activations.checkpoint_every=5",
]
RESUME_EPOCHS = 40
RESUME_STAGE = "encoder"
#: The stage's epoch loss in its CSV log (csv/<stage>/metrics.csv).
RESUME_LOSS = f"{RESUME_STAGE}/mse_epoch"
#: (c) three array tasks of the same job (tags are not part of the config hash): requeued by scontrol,
#: signalled with USR2, and the uninterrupted reference.
RESUME_SWEEP = "tags=[requeue],[usr2],[reference]"
REQUEUE, USR2, REFERENCE = 0, 1, 2
#: Interrupt once last.ckpt holds at least this epoch (the first checkpoint: epoch 4 of 0-39).
INTERRUPT_AFTER_EPOCH = 4
#: (d) jobs whose speech dictionary stage is requeued mid-fit, with the stage's length (epochs or
#: multiplicative-update iterations), checkpoint period and loss in its CSV log: VAE-NMF (Adam on shuffled
#: mini-batches, posterior samples: its resume needs the random states and the loader's shuffling state from the
#: checkpoint) and NMF (full-batch multiplicative updates; W and H are the checkpointed state; the divergence is
#: logged every 10th iteration, and the checkpoint period is a multiple of 10). The task is requeued at the
#: stage's first checkpoint; measured, it dies before the next one (the second attempt resumed at epoch 2 of 12,
#: iteration 50 of 600), so the lengths leave a margin of several checkpoint periods for a slower kill.
DICT_RESUME_JOBS = {
    "vae_nmf": (["method=vae_nmf_mu", "dictionary.epochs=12"], 12, 2, "speech_dict/elbo_epoch"),
    "nmf": (["method=nmf", "dictionary.mu_iterations=600"], 600, 50, "speech_dict/divergence"),
}
DICT_RESUME_COMMON = ["experiment=smoke", "max_stage_epochs=null", "data.test_snrs=[0]"]
DICT_STAGE = "speech_dict"

COMMON = ["-m", "launcher=slurm", "torch_threads=1"]


def wait_until(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition`` until it returns something truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _squeue(*args: str, env: dict[str, str]) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", *args], env=env, capture_output=True, text=True, timeout=30)
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def _submission_scripts(sweep: Path) -> list[Path]:
    return sorted((sweep / ".submitit").glob("*/*_submission.sh"))


def _task_logs(sweep: Path, array: str, task: int) -> str:
    folder = sweep / ".submitit" / f"{array}_{task}"
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("*_log.*")))


def _array_id(sweep: Path) -> str:
    (script,) = _submission_scripts(sweep)
    return script.parent.name


# -- (a) ------------------------------------------------------------------------------------------------------
def test_sweep_runs_as_a_job_array_and_the_report_reads_it(tmp_path, submit, cluster_env):
    sweep = tmp_path / "sweep_a"
    args = [*COMMON, *SMOKE_SWEEP, f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path / 'out'}"]
    job = submit(args, name="sweep_a")
    assert job.wait(timeout=240) == 0, job.output[-4000:]

    # One sbatch script: a two-task array on the configured partition and account, with the setup lines of
    # conf/local/slurm.yaml, one task per node (trainer.devices=1) and no GPU request (CPU trainer).
    (script,) = _submission_scripts(sweep)
    text = script.read_text()
    assert "#SBATCH --array=0-1%2" in text
    assert "#SBATCH --partition=debug" in text and "#SBATCH --account=vaenmf" in text
    assert "#SBATCH --time=10" in text and "#SBATCH --cpus-per-task=1" in text
    assert "#SBATCH --ntasks-per-node=1" in text and "gpu" not in text.lower()
    assert "export OMP_NUM_THREADS=1" in text
    array = script.parent.name

    for num, noise in enumerate(SMOKE_NOISES):
        metrics = json.loads((sweep / str(num) / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["noise"] == noise
        assert metrics["output_dir"] == str(sweep / str(num))
        # ... and it ran as task <num> of that array, through srun, after the setup lines.
        logs = _task_logs(sweep, array, num)
        assert "vaenmf setup line ran on" in logs
        assert (sweep / ".submitit" / f"{array}_{num}" / f"{array}_{num}_0_result.pkl").is_file()

    # The cluster keeps no job accounting: one line says so, instead of a sacct warning at every poll.
    assert job.output.count("sacct is unavailable") == 1, job.output[-3000:]
    assert "Bypassing sacct error" not in job.output

    report = _report(sweep, tmp_path / "rep", cluster_env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "read 2 job(s) (0 failed or missing)" in report.stdout + report.stderr
    table = (tmp_path / "rep" / "table1.md").read_text()
    assert "Jobs: 2 ok" in table
    # The NMF cell at 0 dB is the mean of the two array tasks' SDR (Table 1 averages over the noise types).
    sdr = [json.loads((sweep / str(n) / "metrics.json").read_text())["summary"]["0"]["sdr"] for n in (0, 1)]
    row = next(line for line in table.splitlines() if line.startswith("| 0 |"))
    assert row.split("|")[2].strip().startswith(f"{sum(sdr) / 2:.2f} "), row

    # Rerunning the same command submits nothing: every job's metrics.json is complete, same config and code.
    rerun = submit(args, name="sweep_a_rerun")
    assert rerun.wait(timeout=120) == 0, rerun.output[-4000:]
    assert len(re.findall(r"#\d : .*\[finished: .*metrics\.json, not resubmitted\]", rerun.output)) == 2
    assert "Every job of this sweep is finished; nothing submitted" in rerun.output
    assert len(_submission_scripts(sweep)) == 1

    # The submitting process dies (a closed login session) once a job of the sweep is queued: the job runs on
    # and writes its results, and the same command afterwards finds the sweep finished. (While the job is still
    # queued, the same command refuses to submit it twice: test (c).) Job 1 must run again: its result is gone.
    (sweep / "1" / "metrics.json").unlink()
    dying = submit(args, name="sweep_a_dying")
    wait_until(lambda: "Submitted 1 job(s)" in dying.output, 90, "the second submission")
    dying.kill()
    assert "not resubmitted" in dying.output.split("#0 : ")[1].splitlines()[0]
    assert len(_submission_scripts(sweep)) == 2
    wait_until(lambda: (sweep / "1" / "metrics.json").is_file(), 240, "job 1 without its submitting process")
    assert json.loads((sweep / "1" / "metrics.json").read_text())["status"] == "ok"
    wait_until(lambda: not _squeue("-o", "%i", env=cluster_env), 60, "the queue to empty")
    final = submit(args, name="sweep_a_final")
    assert final.wait(timeout=120) == 0 and "nothing submitted" in final.output, final.output[-3000:]


def _report(sweep: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vaenmf.report.cli", str(sweep), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- (b) ------------------------------------------------------------------------------------------------------
def test_cpu_ddp_job_trains_in_two_srun_tasks_and_rank_zero_alone_writes(tmp_path, submit, cluster_env):
    sweep = tmp_path / "sweep_b"
    audit = tmp_path / "writes.log"
    args = [*COMMON, *DDP_JOB, f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path / 'out'}"]
    # Python audit hooks in every process of the job record who writes config.yaml and metrics.json.
    env_extra = {
        "VAENMF_TEST_WRITE_LOG": str(audit),
        "PYTHONPATH": os.pathsep.join([str(WRITE_AUDIT_DIR), cluster_env["PYTHONPATH"]]),
    }
    job = submit(args, name="ddp", env_extra=env_extra)
    assert job.wait(timeout=300) == 0, job.output[-4000:]

    (script,) = _submission_scripts(sweep)
    text = script.read_text()
    assert "#SBATCH --ntasks-per-node=2" in text and "#SBATCH --nodes=1" in text
    assert "gpu" not in text.lower()  # CPU DDP: no GPU request
    array = script.parent.name
    job_dir = sweep / "0"
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok", metrics.get("error")
    trainer = metrics["config"]["trainer"]
    assert trainer["strategy"] == "ddp" and trainer["devices"] == 2 and trainer["accelerator"] == "cpu"
    assert trainer["sync_batchnorm"] is False
    assert "summary" in metrics  # written by rank 0, which scores

    # Two processes, started by srun (one SLURM task each), joined one gloo process group ...
    logs = "".join(
        p.read_text(errors="replace") for p in sorted((sweep / ".submitit").glob(f"{array}*/*_log.*"))
    )
    assert "distributed_backend=gloo" in logs
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in logs, logs[-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in logs
    # ... and every training stage (VAE-NMF speech and noise dictionaries, encoding DNN) ran data-parallel:
    # each rank took half of the frames (DistributedSampler), so the stage took half the optimiser steps.
    for stage, (pattern, epochs, batch, drop_last) in DDP_STAGES.items():
        frames = int(re.search(pattern, logs).group(1))
        per_rank = math.ceil(frames / DDP_WORLD_SIZE)
        steps = per_rank // batch if drop_last else math.ceil(per_rank / batch)
        single = frames // batch if drop_last else math.ceil(frames / batch)
        ckpt = torch.load(
            job_dir / "checkpoints" / stage / "last.ckpt", map_location="cpu", weights_only=False
        )
        assert ckpt["global_step"] == epochs * steps != epochs * single, (stage, ckpt["global_step"], frames)
    assert "sync_dist" not in logs  # the encoder's epoch metrics are reduced over the ranks
    assert "srun` command is available" not in logs

    # Only global rank 0 wrote config.yaml and metrics.json, though both ranks ran the job.
    records = [line.split(" ", 2) for line in audit.read_text().splitlines()]
    assert {rank for kind, rank, _ in records if kind == "start" and rank != "-"} == {"0", "1"}, records
    ours = [
        (rank, Path(path).name)
        for rank, _, path in records
        if rank != "start" and Path(path).parent == job_dir
    ]
    names = {name for _, name in ours}
    assert "config.yaml" in names and "metrics.json" in names, records
    assert {rank for rank, _ in ours} == {"0"}, ours


# -- (c) and (d) ----------------------------------------------------------------------------------------------
def _ckpt_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # not written yet, or being replaced
        return None


def _epoch_losses(job_dir: Path, stage: str = RESUME_STAGE, loss: str = RESUME_LOSS) -> dict[int, float]:
    with open(job_dir / "csv" / stage / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {int(r["epoch"]): float(r[loss]) for r in rows if r.get(loss)}


def _task_state(array: str, task: int, env: dict[str, str]) -> str:
    rows = _squeue("-r", "-t", "all", "-o", "%i|%T|%r", "-j", array, env=env)
    return next((r[1] for r in rows if r[0] == f"{array}_{task}"), "")


def _interrupt_and_release(
    interrupts: dict[tuple[str, int], tuple[list[str], Path, int]], env: dict[str, str], timeout: float = 240
) -> dict[tuple[str, int], int]:
    """Interrupt running array tasks mid-stage, and start each again as soon as SLURM has requeued it.

    Args:
        interrupts: ``{(array, task): (command, last_ckpt, epoch)}``: ``command <array>_<task>`` is run once the
            task's ``last_ckpt`` holds ``epoch`` or a later one (the tasks run at once, each is polled).
        env: The cluster's environment.

    Returns:
        ``{(array, task): epoch}``: the epoch of the checkpoint the task's first attempt left, which its second
        attempt resumes from.
    """
    pending = dict(interrupts)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for (array, task), (command, ckpt, epoch) in list(pending.items()):
            if (_ckpt_epoch(ckpt) or -1) >= epoch:
                assert _task_state(array, task, env) == "RUNNING", (array, task)
                subprocess.run([*command, f"{array}_{task}"], env=env, check=True, timeout=30)
                del pending[array, task]
        time.sleep(0.2)
    assert not pending, f"tasks {sorted(pending)} never wrote their checkpoint"
    saved = {}
    for (array, task), (_, ckpt, _) in interrupts.items():
        # Requeued: SLURM holds it PENDING until now + 120 s (its requeue delay); release it at once.
        wait_until(
            lambda a=array, t=task: _task_state(a, t, env) == "PENDING", 90, f"{array}_{task} requeued"
        )
        saved[array, task] = _ckpt_epoch(ckpt)  # the first attempt is over: the checkpoint it resumes from
        subprocess.run(
            ["scontrol", "update", f"JobId={array}_{task}", "StartTime=now"], env=env, check=True, timeout=30
        )
    return saved


def _check_resumed_exactly(
    logs: str, job_dir: Path, reference_dir: Path, stage: str, loss: str, saved: int | None, total: int
) -> None:
    """The task of ``job_dir`` resumed ``stage`` from its checkpoint of epoch ``saved`` (the last before the
    interruption), not from scratch nor from the end of the stage, and then did what the uninterrupted task of
    ``reference_dir`` did: the same losses after the restart, the same metrics, to the last bit."""
    ckpt = job_dir / "checkpoints" / stage / "last.ckpt"
    assert saved is not None and saved + 1 < total, (stage, saved, total)
    assert logs.count(f"Resuming stage {stage} from {ckpt} ({saved + 1} epochs done)") == 1, logs[-3000:]
    assert logs.count(f"Restored all states from the checkpoint at {ckpt}") == 1
    # The stage's CSV log of the second attempt (Lightning starts a new one) begins at the epoch after the
    # checkpoint and runs to the stage's last epoch ...
    losses, ref_losses = _epoch_losses(job_dir, stage, loss), _epoch_losses(reference_dir, stage, loss)
    assert min(losses) == saved + 1 and max(losses) == total - 1 == max(ref_losses), (
        saved,
        sorted(losses)[:3],
    )
    # ... with the restored weights, optimiser state, random states and loader state, every epoch after the
    # restart repeats the uninterrupted run's loss exactly (measured: identical, as for a local SIGKILL,
    # tests/tasks/test_faults.py) ...
    relative = max(abs(losses[e] - ref_losses[e]) / abs(ref_losses[e]) for e in losses)
    print(
        f"{job_dir}: {stage} resumed at epoch {saved + 1}; its losses within {relative:.1e} of the reference's"
    )
    assert losses == {e: ref_losses[e] for e in losses}, stage
    # ... and the job ends with the uninterrupted run's metrics, bit for bit (same mixtures, same separator).
    metrics = json.loads((job_dir / "metrics.json").read_text())
    reference = json.loads((reference_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" == reference["status"], metrics.get("error")
    assert metrics["config_hash"] == reference["config_hash"]
    deviation = {
        snr: max(abs(metrics["summary"][snr][k] - v) for k, v in ref.items() if isinstance(v, float))
        for snr, ref in reference["summary"].items()
    }
    print(f"{job_dir}: largest deviation of a summary metric from the reference, per SNR: {deviation}")
    assert metrics["summary"] == reference["summary"]


@pytest.mark.timeout(600)
def test_requeued_tasks_resume_from_last_ckpt_and_match_an_uninterrupted_run(tmp_path, submit, cluster_env):
    sweep = tmp_path / "sweep_c"
    args = [
        *COMMON,
        *RESUME_JOB,
        RESUME_SWEEP,
        f"hydra.sweep.dir={sweep}",
        f"paths.output_root={tmp_path / 'out'}",
    ]
    job = submit(args, name="resume")
    array = wait_until(lambda: _submission_scripts(sweep) and _array_id(sweep), 60, "the sbatch script")

    def ckpt(task: int) -> Path:
        return sweep / str(task) / "checkpoints" / RESUME_STAGE / "last.ckpt"

    # Interrupt each task as soon as its stage has written a checkpoint (both run at once).
    saved = _interrupt_and_release(
        {
            (array, REQUEUE): (["scontrol", "requeue"], ckpt(REQUEUE), INTERRUPT_AFTER_EPOCH),
            # submitit's handler: checkpoint the submission, `scontrol requeue` the task itself, exit.
            (array, USR2): (["scancel", "--signal=USR2"], ckpt(USR2), INTERRUPT_AFTER_EPOCH),
        },
        cluster_env,
    )

    # A second submission of the same sweep while its array is queued submits nothing.
    again = submit(args, name="resume_again")
    assert again.wait(timeout=120) == 2
    assert "are still in the SLURM queue" in again.output and "Traceback" not in again.output

    assert job.wait(timeout=420) == 0, job.output[-4000:]
    assert sorted(_epoch_losses(sweep / str(REFERENCE))) == list(range(RESUME_EPOCHS))
    assert "Resuming stage" not in _task_logs(sweep, array, REFERENCE)
    for task in (REQUEUE, USR2):
        logs = _task_logs(sweep, array, task)
        if task == REQUEUE:
            assert "DUE TO JOB REQUEUE" in logs
        else:  # the time-limit branch of submitit's handler (timeout_min <= 10), which needs max_num_timeout > 0
            assert "Caught signal SIGUSR2" in logs and "this job is timed-out" in logs, logs[-3000:]
            assert f"Requeued job {array}_{task} (2 remaining timeouts)" in logs, logs[-3000:]
        # Its second attempt (the logs after submitit's last start) took both dictionaries from the cache and
        # resumed the encoder from its checkpoint.
        second_attempt = logs.rsplit("Starting with JobEnvironment", 1)[1]
        assert second_attempt.count("reusing cached dictionary") == 2, second_attempt[-3000:]
        assert "Resuming stage encoder" in second_attempt
        assert INTERRUPT_AFTER_EPOCH <= saved[array, task] < RESUME_EPOCHS - 5, saved
        _check_resumed_exactly(
            logs,
            sweep / str(task),
            sweep / str(REFERENCE),
            RESUME_STAGE,
            RESUME_LOSS,
            saved[array, task],
            RESUME_EPOCHS,
        )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", sorted(DICT_RESUME_JOBS))
def test_requeued_dictionary_stages_resume_mid_fit_and_match_an_uninterrupted_run(
    tmp_path, submit, cluster_env, kind
):
    overrides, total, every, loss = DICT_RESUME_JOBS[kind]
    sweep = tmp_path / "sweep_d"
    # Two tasks of the same job (paths are not part of the config hash): requeued, and the reference. Each has
    # a dictionary cache of its own: a shared one would hand the requeued task the dictionary that the reference
    # finished while it was requeued, and the stage would not resume at all.
    caches = ",".join(str(tmp_path / "cache" / name) for name in ("requeued", "reference"))
    args = [
        *COMMON,
        *DICT_RESUME_COMMON,
        *overrides,
        f"dictionary.checkpoint_every={every}",
        f"paths.cache_dir={caches}",
        f"hydra.sweep.dir={sweep}",
        f"paths.output_root={tmp_path / 'out'}",
    ]
    job = submit(args, name=f"resume_{kind}")
    array = wait_until(lambda: _submission_scripts(sweep) and _array_id(sweep), 60, "the sbatch script")
    ckpt = sweep / "0" / "checkpoints" / DICT_STAGE / "last.ckpt"
    # Requeued at the stage's first checkpoint; the second attempt resumes from the last one the first left.
    saved = _interrupt_and_release({(array, 0): (["scontrol", "requeue"], ckpt, every - 1)}, cluster_env)
    assert job.wait(timeout=420) == 0, job.output[-4000:]

    logs = _task_logs(sweep, array, 0)
    assert "DUE TO JOB REQUEUE" in logs and "Resuming stage" not in _task_logs(sweep, array, 1)
    # Mid-fit: the resumed attempt had at least one more checkpoint period of the stage to do.
    assert every - 1 <= saved[array, 0] < total - every, saved
    _check_resumed_exactly(logs, sweep / "0", sweep / "1", DICT_STAGE, loss, saved[array, 0], total)
    # The fitted dictionary (the stage's final checkpoint) is the uninterrupted run's.
    final = [
        torch.load(
            sweep / n / "checkpoints" / DICT_STAGE / "last.ckpt", map_location="cpu", weights_only=True
        )
        for n in ("0", "1")
    ]
    assert final[0]["state_dict"].keys() == final[1]["state_dict"].keys()
    for name, value in final[0]["state_dict"].items():
        assert torch.equal(value, final[1]["state_dict"][name]), name
