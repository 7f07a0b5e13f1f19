"""A real single-node Slurm cluster on localhost for the cluster test: munged, slurmctld and slurmd
started in the foreground from a private folder (own munge key and socket, own slurm.conf, free
ports), so nothing system-wide is touched and the daemons are stopped by the process ids started here.

The config is also written to /etc/slurm/slurm.conf (when no file is there; removed on stop):
the executor's job step runs `srun` inside each job with every SLURM_* variable but the job's identity
removed, SLURM_CONF included, so that srun finds the cluster only through the standard path.

Job status: the Snakemake slurm executor asks `sacct`, or `squeue` when told so and when the
cluster keeps finished jobs visible (MinJobAge at least 3x the first status-check delay). A cluster
without an accounting store answers `sacct` with an error, so the test cluster keeps finished jobs
for 10 minutes and the test profile selects `squeue`, a mode the plugin supports and documents.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MIN_JOB_AGE_S = 600


class Unavailable(RuntimeError):
    """Slurm cannot be installed or started here; the reason becomes the test's skip message."""


def ensure_installed(timeout: int = 900) -> None:
    """Install Debian's slurm-wlm and munge when absent (root and apt-get only)."""
    if all(shutil.which(d) for d in (*DAEMONS, "sbatch", "squeue")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("slurm-wlm/munge are not installed and cannot be (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=timeout)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not all(shutil.which(d) for d in DAEMONS):
        raise Unavailable(f"apt-get install slurm-wlm munge failed: {proc.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


@dataclass
class Cluster:
    """A started cluster: its folder, the environment its clients need, and the daemons' processes."""

    root: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    system_conf: Path | None = None  # written here, removed on stop

    def stop(self) -> None:
        """Stop the daemons started here, by process id, last started first."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        if self.system_conf is not None:
            self.system_conf.unlink(missing_ok=True)
            self.system_conf = None

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.root.glob("*.log")))


def slurm_conf(root: Path, host: str, munge_socket: Path) -> str:
    cpus = os.cpu_count() or 1
    return f"""ClusterName=safemttest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge={MIN_JOB_AGE_S}
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
NodeName={host} CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _wait(check, what: str, cluster: Cluster, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                raise Unavailable(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                                  f"{cluster.logs()}")
        if check():
            return
        time.sleep(0.5)
    raise Unavailable(f"timed out waiting for {what}:\n{cluster.logs()}")


def start(root: Path) -> Cluster:
    """Start munged, slurmctld and slurmd for a one-node cluster on this host; wait until it is idle."""
    ensure_installed()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # munged refuses a key or socket in a folder others can write
    for sub in ("state", "spool", "munge"):
        (root / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    key, sock = root / "munge" / "munge.key", root / "munge" / "munge.sock"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, host, sock))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = Cluster(root=root, env=env)
    out = open(root / "daemons.out", "ab")
    if SYSTEM_CONF.exists():
        raise Unavailable(f"{SYSTEM_CONF} exists (a cluster is configured here; not touching it)")
    try:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(conf.read_text())
    except OSError as exc:
        raise Unavailable(f"cannot write {SYSTEM_CONF}: {exc}") from exc
    cluster.system_conf = SYSTEM_CONF
    try:
        cluster.procs["munged"] = subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/munged.log",
             f"--seed-file={root}/munge/munged.seed"], stdout=out, stderr=out, env=env)
        _wait(sock.exists, "the munge socket", cluster)
        cluster.procs["slurmctld"] = subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)],
                                                      stdout=out, stderr=out, env=env)
        cluster.procs["slurmd"] = subprocess.Popen(["slurmd", "-D", "-f", str(conf)],
                                                   stdout=out, stderr=out, env=env)

        def idle() -> bool:
            proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
            return proc.returncode == 0 and proc.stdout.strip() in ("idle", "mix")

        _wait(idle, "the node to be idle (sinfo)", cluster, timeout=90)
    except BaseException:
        cluster.stop()
        raise
    return cluster
