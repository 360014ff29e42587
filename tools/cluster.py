"""Where the sweep's cells run: this machine, or a Dask cluster; and starting Dask workers on SLURM.

    python -m tools.sweep [--jobs N]                                       # this machine
    python -m tools.sweep --scheduler tls://host:8786 --git-remote NAME    # a Dask cluster, over TLS
    python -m tools.cluster slurm --workers 4 --cores 8 --memory 16GB [--adapt-max 16] [--print-job-script]

Whoever reaches a Dask scheduler runs code as the user of every worker: a cluster sweep
speaks TLS (tools/dispatch.py refuses plain tcp:// beyond this machine unless told
otherwise), SLURM workers are started over TLS with credentials made for the run, and
nothing listens beyond loopback that the user did not ask for (docs/machines.md).

Either way each cell runs `tools.cells.run_cell` on a Dask worker, in a temporary
clone of the commit being swept (refs/sweeps/<commit>, removed when the sweep ends)
with the workspace's uncommitted changes applied, and publishes an ordinary DVC
experiment (tools/dispatch.py runs them). What differs is what the clones share:

- this machine (`local_plan`): the clone is made from this repository and shares
  its DVC cache (`dvc cache dir --local`), so outputs and the run-cache need no
  copying; the experiment is pushed back into this repository's refs/exps.
- a cluster (`cluster_plan`): the clone is made from the git remote the user names
  (`--git-remote`, never a default: in a fresh clone `origin` is the upstream), and
  outputs travel through the default DVC remote. The scheduler is reached before
  anything is pushed; then the commit goes to the git remote (the first push, so a
  remote that is missing, unreachable or read-only is one line before any cell), the stages every cell
  shares (SHARED_STAGES) and the run-cache to the DVC remote (`make share`), and each cell publishes with
  `dvc exp push` and `make share`; the coordinator pulls the cells' refs at the end.

Cells run with `train.threads` = sweep.threads (default 1) wherever they run, so a
cell's results do not depend on the machine that ran it (docs/guarantees.md): start
each machine's workers with `--nthreads 1` and one process per core.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from tools.cells import SWEEP_REFS
from tools.cli import parser_for, positive_int
from tools.experiments import dvc, git

# Pipeline outputs: `dvc exp run` rewrites them in each cell, so they are not part of the changes carried.
OUTPUTS = ("plots", "metrics", "dvc.lock")
CODE = ("stages", "tools", "dvc.yaml", "params.yaml")
# Stages whose params no cell changes (neither seed nor latent size nor threads): run once here, before
# the cells, so that every cell restores them from the run-cache instead of cells started together each
# computing them (the pixels baseline is 11 minutes of SVM on full Fashion-MNIST). They also spare a
# clone the data.source folder.
SHARED_STAGES = ("prepare", "baseline_pixels")


def workspace_changes() -> str:
    """The workspace's uncommitted changes to tracked files, as a binary patch (outputs left out)."""
    untracked = git("ls-files", "--others", "--exclude-standard", "--", *CODE).split()
    if untracked:
        raise PipelineError(f"untracked files among the pipeline's code: {', '.join(untracked[:5])}; "
                            "git add them (cells run in clones, which see tracked files only)")
    return git("diff", "HEAD", "--binary", "--", ".", *(f":(exclude){path}" for path in OUTPUTS))


def code_key(commit: str, patch: str) -> str:
    """The commit, and the changes on top of it if any, in a few characters: part of each cell's name."""
    return commit[:7] + (f"-{hashlib.sha1(patch.encode()).hexdigest()[:6]}" if patch else "")


def run_shared_stages(*flags: str) -> None:
    """SHARED_STAGES, here, before any cell (`flags`: for `dvc repro`, as --pull)."""
    print(f"sweep: first the stages every cell shares, here: {', '.join(SHARED_STAGES)}", flush=True)
    dvc("repro", "--quiet", *flags, *SHARED_STAGES, capture=False)


def local_plan() -> dict:
    """What every cell on this machine needs: this repository as git remote, its DVC cache shared."""
    from dvc.repo import Repo

    root = Path(git("rev-parse", "--show-toplevel").strip())
    commit, patch = git("rev-parse", "HEAD").strip(), workspace_changes()
    run_shared_stages()
    git("update-ref", f"{SWEEP_REFS}/{commit}", commit)
    repo = Repo(str(root))
    try:
        cache_dir = repo.cache.legacy.path
    finally:
        repo.close()
    return {"commit": commit, "patch": patch, "code_key": code_key(commit, patch), "git_url": str(root),
            "cache_dir": str(cache_dir)}


def dvc_remote_url() -> str:
    """The default DVC remote's URL as DVC resolves it (a local path made absolute), for every worker's clone."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        config = Repo(".").config
    except DvcException as err:
        raise PipelineError(f"dvc: {' '.join(str(err).split())}") from None
    name = config["core"].get("remote")
    if not name or name not in config["remote"]:
        raise PipelineError("no default DVC remote; add one that every machine reaches: "
                            "dvc remote add -d shared s3://bucket/path (or ssh://…, or a shared folder)")
    return str(config["remote"][name]["url"])


def git_remote_url(git_remote: str) -> str:
    url = git("remote", "get-url", git_remote, check=False).strip()
    if not url:
        raise PipelineError(f"--git-remote {git_remote}: no such git remote in this clone (git remote -v lists "
                            f"them; add one you own: git remote add sweeps <url>)")
    if "://" not in url and ":" not in url.split("/")[0] and not os.path.isabs(url):
        url = str(Path(url).resolve())
    return url


GIT_CHECK_SECONDS = 60


def _git_quietly(*args: str) -> subprocess.CompletedProcess:
    """git without prompts (a missing credential fails, never waits at a terminal), bounded in time."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": os.environ.get(
        "GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=20")}
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, env=env, timeout=GIT_CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 1, "", f"no answer within {GIT_CHECK_SECONDS} s")


def check_git_remote(git_remote: str) -> str:
    """The git remote's URL, once it answers; one line naming it if it is missing or unreachable."""
    url = git_remote_url(git_remote)
    proc = _git_quietly("ls-remote", "--heads", git_remote)
    if proc.returncode:
        reason = " ".join(proc.stderr.split())[-200:] or f"exit {proc.returncode}"
        raise PipelineError(f"--git-remote {git_remote} ({url}): not reachable ({reason}); nothing was pushed")
    return url


def publish_commit(git_remote: str, url: str, commit: str) -> None:
    """The commit being swept, as refs/sweeps/<commit> on the git remote: the sweep's first push, so a remote
    this user cannot write to is one line before anything else is pushed or run."""
    proc = _git_quietly("push", "--quiet", "--force", git_remote, f"{commit}:{SWEEP_REFS}/{commit}")
    if proc.returncode:
        reason = " ".join(proc.stderr.split())[-200:] or f"exit {proc.returncode}"
        raise PipelineError(f"--git-remote {git_remote} ({url}): cannot push to it ({reason}); nothing was pushed")


def cluster_plan(git_remote: str) -> dict:
    """Publish the commit and the stages every cell shares; what every cell on the cluster needs.

    Call once the scheduler answered: nothing is pushed for a sweep that cannot start."""
    from tools.share import main as share

    commit, patch = git("rev-parse", "HEAD").strip(), workspace_changes()
    git_url, dvc_url = check_git_remote(git_remote), dvc_remote_url()
    publish_commit(git_remote, git_url, commit)
    run_shared_stages("--pull")
    share([])  # the workspace's outputs, the run-cache and the runs' outputs, as `make share`
    return {"commit": commit, "patch": patch, "code_key": code_key(commit, patch), "git_url": git_url,
            "dvc_url": dvc_url}


def remove_sweep_ref(plan: dict, git_remote: str | None) -> None:
    """The sweep's ref, here or on the git remote: gone once the sweep ends, however it ends."""
    ref = f"{SWEEP_REFS}/{plan['commit']}"
    if git_remote is None:
        git("update-ref", "-d", ref, check=False)
    else:
        git("push", "--quiet", git_remote, f":{ref}", check=False)


def pull_experiments(git_remote: str, names: list) -> None:
    """The named experiments' refs from the git remote (their metrics and params live in git)."""
    if names:
        dvc("exp", "pull", "--no-cache", "--force", git_remote, *names)


# --------------------------------------------------------------------------- starting workers on SLURM
# Workers start no dashboard; the scheduler's listens on loopback (reach it with ssh -L 8787:localhost:8787).
WORKER_ARGS = ["--no-dashboard"]
SCHEDULER_DASHBOARD = "127.0.0.1:8787"


def slurm_security(args):
    """TLS credentials for the scheduler and the workers: the user's PEM files, or (by default) a throwaway CA
    and certificate made for this run, the workers' copies written 0600 under --shared-temp-dir."""
    from distributed.security import Security

    given = [args.tls_ca_file, args.tls_cert, args.tls_key]
    if any(given) and not all(given):
        raise PipelineError("--tls-ca-file, --tls-cert and --tls-key go together (or none: credentials made for "
                            "this run)")
    for flag, path in zip(("--tls-ca-file", "--tls-cert", "--tls-key"), given):
        if path and not os.access(path, os.R_OK):
            raise PipelineError(f"{flag} {path}: no such readable file (a PEM file expected)")
    if all(given):
        return Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert, tls_client_key=args.tls_key,
                        tls_scheduler_cert=args.tls_cert, tls_scheduler_key=args.tls_key,
                        tls_worker_cert=args.tls_cert, tls_worker_key=args.tls_key, require_encryption=True)
    return Security.temporary()


def slurm_cluster(args):
    from dask_jobqueue import SLURMCluster

    # One single-threaded worker process per core; dask-jobqueue adds --nthreads itself from cores/processes.
    return SLURMCluster(cores=args.cores, processes=args.cores, memory=args.memory, walltime=args.walltime,
                        queue=args.queue, python=str(Path(sys.executable)), job_name="ae-sweep",
                        security=slurm_security(args), protocol="tls://",
                        shared_temp_directory=args.shared_temp_dir, worker_extra_args=WORKER_ARGS,
                        scheduler_options={"dashboard_address": SCHEDULER_DASHBOARD})


def job_script(args) -> str:
    """The SLURM job script, rendered without starting a scheduler (its address and, unless given, the
    credentials' paths are placeholders: the real run writes them under --shared-temp-dir)."""
    from dask_jobqueue.slurm import SLURMJob
    from distributed.security import Security

    slurm_security(args)  # the same checks as a real start
    folder = args.shared_temp_dir
    security = Security(tls_ca_file=args.tls_ca_file or f"{folder}/.dask-jobqueue.worker.ca_file.XXXX",
                        tls_worker_cert=args.tls_cert or f"{folder}/.dask-jobqueue.worker.cert.XXXX",
                        tls_worker_key=args.tls_key or f"{folder}/.dask-jobqueue.worker.key.XXXX",
                        require_encryption=True)
    job = SLURMJob(scheduler="tls://SCHEDULER:8786", name="ae-sweep", job_name="ae-sweep", cores=args.cores,
                   processes=args.cores, memory=args.memory, walltime=args.walltime, queue=args.queue,
                   python=str(Path(sys.executable)), protocol="tls://", security=security,
                   worker_extra_args=WORKER_ARGS)
    return job.job_script()


def sweep_tls_flags(cluster, args) -> str:
    """The sweep's TLS flags for this cluster: the user's files, or the copies of this run's credentials that
    dask-jobqueue wrote for the workers (one certificate serves every role)."""
    if args.tls_ca_file:
        return f"--tls-ca-file {args.tls_ca_file} --tls-cert {args.tls_cert} --tls-key {args.tls_key}"
    worker = getattr(cluster, "_job_kwargs", {}).get("security")
    paths = [getattr(worker, name, None) for name in ("tls_ca_file", "tls_worker_cert", "tls_worker_key")]
    if not all(isinstance(path, str) and os.path.isfile(path) for path in paths):
        return "--tls-ca-file CA --tls-cert CERT --tls-key KEY"
    return "--tls-ca-file {} --tls-cert {} --tls-key {}".format(*paths)


def main(argv: list[str]) -> None:
    parser = parser_for("python -m tools.cluster", "Start Dask workers for make sweep.")
    sub = parser.add_subparsers(dest="kind", required=True)
    slurm = sub.add_parser("slurm", help="a scheduler here and workers as SLURM jobs (dask-jobqueue)")
    slurm.add_argument("--workers", type=positive_int("--workers"), default=1,
                       help="SLURM jobs at start, each one machine's worth of workers")
    slurm.add_argument("--adapt-max", type=positive_int("--adapt-max"),
                       help="scale between --workers and this many jobs with the queue of cells (Dask's adapt)")
    slurm.add_argument("--cores", type=positive_int("--cores"), default=4, help="cores per job, one worker each")
    slurm.add_argument("--memory", default="16GB", help="memory per job")
    slurm.add_argument("--walltime", default="04:00:00")
    slurm.add_argument("--queue", help="SLURM partition")
    slurm.add_argument("--print-job-script", action="store_true", help="print the job script, start nothing")
    slurm.add_argument("--tls-ca-file", help="CA certificate (PEM) instead of credentials made for this run")
    slurm.add_argument("--tls-cert", help="certificate (PEM) of the scheduler, the workers and the sweep")
    slurm.add_argument("--tls-key", help="its private key (PEM)")
    slurm.add_argument("--shared-temp-dir", default=os.path.expanduser("~"),
                       help="a folder every node reads, for the workers' copies of the run's credentials "
                            "(0600; default: your home)")
    args = parser.parse_args(argv)
    if args.print_job_script:
        print(job_script(args))
        return
    cluster = slurm_cluster(args)
    if args.adapt_max:
        cluster.adapt(minimum_jobs=args.workers, maximum_jobs=max(args.workers, args.adapt_max))
    else:
        cluster.scale(jobs=args.workers)
    print(f"scheduler: {cluster.scheduler_address} (TLS); dashboard on this machine only: "
          f"http://{SCHEDULER_DASHBOARD}/status; Ctrl-C here stops the workers", flush=True)
    print(f"run the sweep: python -m tools.sweep --scheduler {cluster.scheduler_address} --git-remote NAME "
          f"{sweep_tls_flags(cluster, args)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        cluster.close()


if __name__ == "__main__":
    run_stage(main, "cluster", sys.argv[1:])
