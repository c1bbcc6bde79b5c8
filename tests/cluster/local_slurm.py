"""A throwaway single-node SLURM cluster, for the ``cluster`` tests and for trying the launcher by hand.

Everything lives in one folder: ``slurm.conf``, the munge key and socket, the controller's state, slurmd's
spool, pid and log files. Nothing is written to ``/etc``, no system daemon is touched: munged listens on a
socket inside the folder (``AuthInfo=socket=...``), slurmctld and slurmd on two free TCP ports, and the client
commands find this cluster through ``SLURM_CONF``. The three daemons run in the foreground as children of the
process that started them, so their PIDs are known exactly; :meth:`LocalSlurm.stop` cancels the cluster's
jobs and then ends exactly those PIDs (the ``down`` command reads them from ``pids.json`` and checks each
PID's command line first, so a reused PID is never signalled).

The settings are those that worked on a container without systemd or cgroups (``PITFALLS.md``): one node (it
declares at least 4 CPUs), ``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` with ``CR_Core``, no job
accounting. ``KillWait=2`` (SLURM's default is 30 s) only shortens how long a cancelled or requeued job that
ignores SIGTERM (submitit's jobs do) keeps running before SIGKILL.

By hand::

    python tests/cluster/local_slurm.py up --dir /tmp/vaenmf-slurm   # prints: export SLURM_CONF=...
    export SLURM_CONF=/tmp/vaenmf-slurm/slurm.conf
    sinfo; srun -n2 hostname; vaenmf-train -m launcher=slurm ...
    python tests/cluster/local_slurm.py down --dir /tmp/vaenmf-slurm

The Debian packages (``slurm-wlm``, ``munge``) are installed with apt-get when they are missing and the process
is root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
)
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """SLURM is not installed and cannot be installed here (not root, or apt unreachable)."""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name, path=_sbin_path()) is None]


def _sbin_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(parts + [p for p in ("/usr/sbin", "/sbin", "/usr/local/sbin") if p not in parts])


def ensure_packages(log=print) -> None:
    """Install ``slurm-wlm`` and ``munge`` with apt-get when a binary is missing (root only)."""
    missing = missing_binaries()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterUnavailable(
            f"SLURM binaries missing ({', '.join(missing)}) and they can only be installed as root with "
            f"apt-get: apt-get install -y {' '.join(PACKAGES)}"
        )
    log(f"local_slurm: installing {' '.join(PACKAGES)} with apt-get (missing: {', '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *PACKAGES],
            check=True,
            env=env,
            timeout=900,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        output = getattr(err, "stderr", b"") or b""
        raise ClusterUnavailable(f"apt-get failed: {err}\n{output.decode(errors='replace')[-2000:]}") from err
    still = missing_binaries()
    if still:
        raise ClusterUnavailable(f"installed {PACKAGES} but still missing: {still}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mem_mib() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


class LocalSlurm:
    """A single-node SLURM cluster in ``root`` (a temporary folder by default).

    Args:
        root: Folder for configuration, state, logs (created; removed by :meth:`stop` only when it was temporary).
        cpus: CPUs the node declares (default: the machine's, at least 4). More than the machine has is allowed
            (``SlurmdParameters=config_overrides``): a two-task DDP job and three small array tasks then run at
            once on a two-core machine, time-sharing its cores.
        kill_wait: Seconds between SIGTERM and SIGKILL when a job is cancelled or requeued.
    """

    def __init__(self, root: Path | None = None, cpus: int | None = None, kill_wait: int = 2) -> None:
        self._temporary = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="vaenmf-slurm-")).resolve()
        self.cpus = int(cpus or max(4, os.cpu_count() or 1))
        self.kill_wait = int(kill_wait)
        self.hostname = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._procs: dict[str, subprocess.Popen] = {}

    # -- configuration --------------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to talk to this cluster (``SLURM_CONF``; PATH with the sbin folders)."""
        return {"SLURM_CONF": str(self.conf), "PATH": _sbin_path()}

    def write_config(self) -> None:
        for sub in ("munge", "munge-key", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged wants its socket's folders searchable by everyone, and its key readable by root alone.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "munge", 0o755)
        os.chmod(self.root / "munge-key", 0o700)
        key = self.root / "munge-key" / "munge.key"
        if not key.exists():
            subprocess.run(
                ["mungekey", "--create", f"--keyfile={key}"], check=True, env={**os.environ, **self.env}
            )
        os.chmod(key, 0o600)
        lines = [
            "# Written by tests/cluster/local_slurm.py: a throwaway single-node cluster.",
            "ClusterName=vaenmf-test",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            # No slurmdbd: `sacct` answers "accounting storage is disabled" (vaenmf's launcher then follows the
            # jobs with squeue, see vaenmf.cluster.launcher).
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            f"KillWait={self.kill_wait}",
            "InactiveLimit=0",
            "MinJobAge=300",
            "MessageTimeout=10",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={int(_mem_mib() * 0.9)} "
            "State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.hostname} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))

    # -- daemons --------------------------------------------------------------------------------------------
    def _commands(self) -> dict[str, list[str]]:
        munge = self.root / "munge"
        return {
            "munged": [
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={self.root / 'munge-key' / 'munge.key'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge-key' / 'munged.seed'}",
            ],
            "slurmctld": ["slurmctld", "-D", "-i", "-f", str(self.conf)],
            "slurmd": ["slurmd", "-D", "-f", str(self.conf), "-N", self.hostname],
        }

    def start(self, timeout: float = 90.0, log=print) -> LocalSlurm:
        """Install if needed, write the configuration, start munged, slurmctld and slurmd, wait for ``idle``."""
        ensure_packages(log)
        self.write_config()
        env = {**os.environ, **self.env}
        try:
            for name, cmd in self._commands().items():
                out = open(self.root / "log" / f"{name}.stdout", "ab")  # noqa: SIM115 (owned by the Popen)
                self._procs[name] = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
                out.close()
                self._save_pids()
                if name == "munged":
                    self._wait_for(lambda: self.munge_socket.exists(), 20, "munged socket")
                if name == "slurmctld":
                    self._wait_for(
                        lambda: self._run(["scontrol", "ping"]).returncode == 0, timeout, "slurmctld"
                    )
            self._wait_for(self._node_idle, timeout, f"node {self.hostname} idle in sinfo")
        except BaseException:
            self.stop()
            raise
        log(f"local_slurm: cluster up in {self.root} (munged, slurmctld, slurmd: PIDs {self.pids()})")
        return self

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    def _save_pids(self) -> None:
        (self.root / "pids.json").write_text(json.dumps(self.pids()))

    def _run(self, cmd: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                cmd, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", "timeout")

    def _node_idle(self) -> bool:
        result = self._run(["sinfo", "-h", "-N", "-o", "%T"])
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode} while waiting for {what}: {self.logs()}"
                    )
            if condition():
                return
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}: {self.logs()}")

    def logs(self, tail: int = 20) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def jobs(self) -> list[str]:
        """Ids of the jobs in the queue (pending, running, completing)."""
        result = self._run(["squeue", "-h", "-o", "%A"])
        return result.stdout.split() if result.returncode == 0 else []

    def cancel_all(self, timeout: float = 60.0) -> None:
        """Cancel every job of this cluster and wait until the queue is empty (so no job step outlives slurmd)."""
        ids = self.jobs()
        if not ids:
            return
        self._run(["scancel", *ids])
        deadline = time.monotonic() + timeout
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel the cluster's jobs, then end exactly the daemons this object started (slurmd, slurmctld, munged)."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.cancel_all()
        for name in reversed(DAEMONS):
            proc = self._procs.get(name)
            if proc is None:
                continue
            _terminate(proc.pid, lambda p=proc: p.poll() is not None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        with contextlib.suppress(OSError):
            (self.root / "pids.json").unlink()
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int, exited, grace: float = 10.0) -> None:
    """SIGTERM ``pid``, then SIGKILL if it has not exited after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if exited():
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _pid_is(pid: int, name: str, root: Path) -> bool:
    """Whether ``pid`` is still the daemon ``name`` of the cluster in ``root`` (guards against a reused PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = b" ".join(cmdline).decode(errors="replace")
    return bool(cmdline) and Path(cmdline[0].decode()).name == name and str(root) in text


def down(root: Path) -> None:
    """Stop the cluster that ``up`` started in ``root``: cancel its jobs, end the daemons whose PIDs it recorded."""
    root = Path(root).resolve()
    pids_file = root / "pids.json"
    if not pids_file.exists():
        print(f"local_slurm: no cluster recorded in {root}")
        return
    pids = json.loads(pids_file.read_text())
    cluster = LocalSlurm(root)
    if _pid_is(pids.get("slurmctld", -1), "slurmctld", root):
        cluster.cancel_all()
    for name in reversed(DAEMONS):
        pid = pids.get(name)
        if pid is None or not _pid_is(pid, name, root):
            continue
        _terminate(pid, lambda p=pid, n=name: not _pid_is(p, n, root))
        print(f"local_slurm: stopped {name} (PID {pid})")
    pids_file.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "vaenmf-slurm")
    parser.add_argument("--cpus", type=int, default=None)
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.command == "up":
        if (root / "pids.json").exists():
            print(f"local_slurm: {root} already has a cluster (run `down` first)", file=sys.stderr)
            return 1
        cluster = LocalSlurm(root, cpus=args.cpus)
        try:
            cluster.start()
        except (ClusterUnavailable, RuntimeError, TimeoutError) as err:
            print(f"local_slurm: error: {err}", file=sys.stderr)
            return 1
        # The daemons run in their own sessions and outlive this command; `down` stops them by PID.
        cluster._procs.clear()
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    if args.command == "down":
        down(root)
        return 0
    cluster = LocalSlurm(root)
    result = cluster._run(["sinfo"])
    print(result.stdout or result.stderr, end="")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
