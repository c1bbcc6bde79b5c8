"""Fixtures of the ``cluster`` tests: a real single-node SLURM cluster for the session, and ``vaenmf-train`` run
against it as a user runs it (a subprocess, with the cluster settings a user keeps in ``conf/local/slurm.yaml``).

``make test-cluster`` runs these tests; the default suite deselects them (marker ``cluster``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_slurm import ClusterUnavailable, LocalSlurm  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

#: What a user writes into ``conf/local/slurm.yaml`` for this test cluster (README, "Cluster (SLURM)"): read with
#: ``launcher=slurm`` only, into ``hydra.launcher``. One CPU and 1 GB per task keep two-core CI machines able
#: to run a two-task DDP job; ``timeout_min: 10`` is SLURM's ``--time``.
LOCAL_SLURM_YAML = """\
# conf/local/slurm.yaml: this machine's SLURM settings (git-ignored), read with launcher=slurm only.
partition: debug
account: vaenmf
timeout_min: 10
cpus_per_task: 1
mem_gb: 1
setup:
  - export OMP_NUM_THREADS=1
  - echo "vaenmf setup line ran on $(hostname)"
"""


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurm]:
    """munged, slurmctld and slurmd for the whole session; stopped by PID at the end, also after failures.

    Without SLURM (and no way to install it) the tests skip, unless ``VAENMF_REQUIRE_CLUSTER=1`` (``make
    test-cluster`` sets it): then they fail.
    """
    cluster = LocalSlurm()
    # A CI runner that times out sends SIGTERM: turn it into the KeyboardInterrupt after which pytest tears the
    # fixtures down (the default action would leave the daemons running).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            cluster.start(log=lambda msg: print(msg, file=sys.stderr))
        except ClusterUnavailable as err:
            if os.environ.get("VAENMF_REQUIRE_CLUSTER") == "1":
                pytest.fail(f"no SLURM here: {err}")
            pytest.skip(f"no SLURM here: {err}")
        yield cluster
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@pytest.fixture(scope="session")
def cluster_config_dir(tmp_path_factory) -> Path:
    """A copy of ``conf/`` whose ``local/`` holds only the test cluster's ``slurm.yaml`` (a developer's own
    git-ignored ``conf/local`` files stay out of the tests; the repository's ``conf/`` is not written)."""
    target = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(REPO_ROOT / "conf", target, ignore=shutil.ignore_patterns("local"))
    (target / "local").mkdir()
    (target / "local" / "slurm.yaml").write_text(LOCAL_SLURM_YAML)
    return target


@pytest.fixture(scope="session")
def cluster_env(slurm_cluster: LocalSlurm, cluster_config_dir: Path) -> dict[str, str]:
    """Environment of the submitting process; sbatch exports it to the jobs (no network: W&B disabled)."""
    python_path = [str(REPO_ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        **slurm_cluster.env,
        "VAENMF_CONFIG_DIR": str(cluster_config_dir),
        "PYTHONPATH": os.pathsep.join(python_path),
        "WANDB_MODE": "disabled",
        "WANDB_ERROR_REPORTING": "false",
        "HYDRA_FULL_ERROR": "1",
    }


class Submission:
    """A ``vaenmf-train`` process started in the background, its output in files (no pipe to fill up)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], name: str) -> None:
        self.args = args
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vaenmf.train", *args], cwd=cwd, env=env, stdout=out, stderr=err
            )

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    @property
    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def submit(tmp_path: Path, cluster_env: dict[str, str]) -> Iterator[Callable[..., Submission]]:
    """``submit(args, name=..., env_extra=...)``: start ``vaenmf-train ARGS`` against the test cluster."""
    started: list[Submission] = []

    def _submit(args: list[str], name: str = "train", env_extra: dict[str, str] | None = None) -> Submission:
        job = Submission(args, tmp_path, {**cluster_env, **(env_extra or {})}, f"{name}-{len(started)}")
        started.append(job)
        return job

    yield _submit
    for job in started:
        job.kill()
