"""`make sweep` on a Dask cluster, end to end: a LocalCluster of worker processes, a bare git repository as git
remote and a folder as DVC remote, a 2 seeds x 2 latent sizes grid on tiny data, one worker killed in the
middle of a cell. Every cell appears exactly once in `dvc exp show` and in plots/sweep/ of the coordinating
clone; a second sweep runs nothing; a scheduler that cannot be reached is found before anything is pushed;
losing every worker ends the sweep in bounded time; a failing cell keeps its log; the SLURM job script
renders without a scheduler.
"""
from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import data_source_for_e2e
from tests.stagerun import env, inside, make_project, run

TINY = {
    "archs": ["stacked"],
    "data": {"train_limit": 300, "test_limit": 100},
    "train": {"epochs": 1},
    "tsne": {"per_class": 5, "perplexity": 4},
    "baselines": {"train_limit": 200},
    "sweep": {"latent_dims": [2, 4], "seeds": [1, 2], "steps": None},
}


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], repo, check=True)


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory):
    """A clone with a git and a DVC remote, its data prepared and shared, then its data.source folder gone."""
    root = tmp_path_factory.mktemp("cluster")
    source = root / "source"
    shutil.copytree(data_source_for_e2e(root), source)
    repo = make_project(root / "repo", {**TINY, "data": {**TINY["data"], "source": str(source)}})
    run(["git", "init", "-q", "--bare", str(root / "remote.git")], root, check=True)
    run(["git", "init", "-q", "-b", "main"], repo, check=True)
    git(repo, "remote", "add", "origin", str(root / "remote.git"))
    run(["dvc", "remote", "add", "-d", "shared", str(root / "dvc-remote")], repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    git(repo, "push", "-q", "origin", "main")
    run(["dvc", "repro", "prepare"], repo, check=True)
    shutil.rmtree(source)  # workers and the coordinator restore the data from the DVC remote from here on
    return repo


def local_cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        env={"PATH": env()["PATH"], "DVC_NO_ANALYTICS": "1"})


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as local:
        yield local


def sweep(repo: Path, scheduler: str, *args: str, timeout: int = 900, git_remote: str = "origin",
          environment: dict | None = None) -> subprocess.CompletedProcess:
    remote = ["--git-remote", git_remote] if git_remote else []
    return subprocess.run([sys.executable, "-m", "tools.sweep", "--scheduler", scheduler, *remote, *args], cwd=repo,
                          env={**env(), **(environment or {})}, capture_output=True, text=True, timeout=timeout)


def worker_pids(cluster) -> list[int]:
    return [pid for worker in cluster.workers.values()
            if (pid := getattr(getattr(worker, "process", None), "pid", None))]


def running_a_cell(pids: list[int]) -> int | None:
    """The first of `pids` with a cell's `dvc exp run` among its descendants."""
    for pid in pids:
        try:
            if any("exp" in c.cmdline() and "run" in c.cmdline() for c in psutil.Process(pid).children(True)):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def wait_for(find, deadline_seconds: float = 300):
    deadline = time.time() + deadline_seconds
    while time.time() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    return None


def remote_refs(repo: Path, prefix: str) -> list[str]:
    return run(["git", "ls-remote", "origin", prefix], repo, check=True).stdout.split()


def test_a_grid_on_dask_survives_a_killed_worker_and_lists_every_cell_once(coordinator, cluster):
    killed: list = []

    def kill_one():
        pid = wait_for(lambda: running_a_cell(worker_pids(cluster)))
        if pid:
            time.sleep(2)  # well inside the cell
            psutil.Process(pid).send_signal(signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    proc = sweep(coordinator, cluster.scheduler_address)
    killer.join(timeout=5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert killed, "no worker was seen running a cell"
    assert "4 to run" in proc.stdout and "on the Dask cluster at" in proc.stdout

    head = run(["git", "rev-parse", "HEAD"], coordinator, check=True).stdout.strip()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], coordinator, check=True).stdout)
    names = [exp["name"] for commit in shown for exp in (commit.get("experiments") or [])]
    assert sorted(names) == sorted(f"cell-s{s}-d{d}-{head[:7]}" for s in (1, 2) for d in (2, 4))
    with open(coordinator / "plots/sweep/runs.csv") as f:
        cells = [(row["seed"], row["latent_dim"]) for row in csv.DictReader(f) if row["name"] == "stacked"]
    assert sorted(cells) == [("1", "2"), ("1", "4"), ("2", "2"), ("2", "4")]
    report = (coordinator / "plots/sweep/report.md").read_text()
    assert "the Dask cluster at" in report and "(rank " in report
    assert len(list((coordinator / "plots/sweep/logs").glob("cell-*.log"))) == 4
    assert remote_refs(coordinator, "refs/sweeps/*") == []  # the sweep's ref went with it
    exps = run([sys.executable, "-m", "tools.exps"], coordinator, check=True).stdout
    assert all(name in exps for name in names)

    # Run, commit, run again (docs/machines.md's order): the results committed, nothing left to run.
    git(coordinator, "add", "-A")
    git(coordinator, "commit", "-qm", "sweep results")
    again = sweep(coordinator, cluster.scheduler_address)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 finished, 0 to run" not in again.stdout and "4 finished, 0 to run" in again.stdout
    assert "computed 4 of these cells" in (coordinator / "plots/sweep/report.md").read_text()  # kept


def test_another_clone_lists_the_cells_and_restores_them_without_recomputing(coordinator, tmp_path):
    clone = tmp_path / "clone"
    remote = str(coordinator.parent / "remote.git")
    run(["git", "clone", "-q", "-b", "main", remote, str(clone)], tmp_path, check=True)
    head = run(["git", "rev-parse", "HEAD~1"], coordinator, check=True).stdout.strip()
    name = f"cell-s2-d4-{head[:7]}"
    run(["dvc", "exp", "pull", "origin", name], clone, check=True)
    run(["dvc", "exp", "apply", name], clone, check=True)
    run(["dvc", "pull", "--run-cache"], clone, check=True)
    repro = run(["dvc", "repro", "--pull"], clone, check=True)
    assert "Running stage" not in repro.stdout, repro.stdout


# (address, extra arguments, what the one line says); 192.0.2.1 is TEST-NET-1: refused before any connection.
UNUSABLE = [
    ("tcp://127.0.0.1:9", [], "no Dask scheduler answered"),
    ("http://x", [], "not a Dask scheduler address"),
    ("tcp://", [], "not a Dask scheduler address"),
    ("tcp://127.0.0.1:99999", [], "not a Dask scheduler address"),
    ("tcp://192.0.2.1:8786", [], "unencrypted, and not on this machine"),
    ("tls://127.0.0.1:9", [], "no TLS credentials: --tls-ca-file"),
    ("tls://127.0.0.1:9", ["--tls-ca-file", "/nonexistent/ca.pem", "--tls-cert", "/nonexistent/c.pem"],
     "--tls-ca-file /nonexistent/ca.pem: no such readable file"),
]


@pytest.mark.parametrize("address,extra,says", UNUSABLE)
@pytest.mark.parametrize("cells", ["to run", "none to run"])
def test_a_scheduler_that_cannot_be_used_is_one_line_before_anything_is_pushed(coordinator, address, extra, says,
                                                                               cells):
    from tests.stagerun import set_params

    objects = sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file())
    # With a cell to run, and with none: either way the scheduler is reached first (docs/machines.md).
    set_params(coordinator, {"sweep": {"seeds": [9] if cells == "to run" else []}})
    try:
        proc = sweep(coordinator, address, "--connect-timeout", "3", *extra, timeout=120)
    finally:
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert says in errors[0] and "unexpected" not in errors[0]
    assert address in errors[0] or extra  # a bad flag is named instead of the address
    assert proc.stderr.strip() == errors[0], proc.stderr  # nothing else, no Dask log lines
    assert remote_refs(coordinator, "refs/sweeps/*") == []
    assert sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file()) == objects


@pytest.mark.parametrize("remote,says", [(None, "--scheduler needs --git-remote NAME"),
                                         ("nowhere", "--git-remote nowhere: no such git remote"),
                                         ("gone", "not reachable"),
                                         ("refusing", "cannot push to it")])
def test_a_git_remote_that_is_not_named_or_cannot_be_pushed_to_is_one_line_before_any_cell(coordinator, cluster,
                                                                                            remote, says, tmp_path):
    from tests.stagerun import set_params

    refusing = tmp_path / "refusing.git"
    run(["git", "init", "-q", "--bare", str(refusing)], tmp_path, check=True)
    hook = refusing / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'read-only mirror' >&2\nexit 1\n")
    hook.chmod(0o755)
    git(coordinator, "remote", "add", "gone", str(tmp_path / "no-such-repository.git"))
    git(coordinator, "remote", "add", "refusing", str(refusing))
    objects = sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file())
    set_params(coordinator, {"sweep": {"seeds": [9]}})
    try:
        proc = sweep(coordinator, cluster.scheduler_address, git_remote=remote, timeout=300)
    finally:
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
        git(coordinator, "remote", "remove", "gone")
        git(coordinator, "remote", "remove", "refusing")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and says in errors[0], proc.stdout + proc.stderr
    assert "done on" not in proc.stdout and "cell(s) to run on" not in proc.stdout  # no cell started
    assert sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file()) == objects
    assert remote_refs(coordinator, "refs/sweeps/*") == []


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributed.cli." + args[0], *args[1:]], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("lost", ["workers", "scheduler"])
def test_losing_every_worker_or_the_scheduler_ends_the_sweep_in_bounded_time(coordinator, lost):
    """As a user has it: `dask scheduler` and `dask worker` as processes of their own, the `dask worker` killed (or
    the scheduler) in the middle of a cell."""
    from tests.stagerun import set_params

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = dask("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    worker = dask("dask_worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard")
    set_params(coordinator, {"sweep": {"seeds": [5], "latent_dims": [2]}})  # a cell not run yet
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep", "--scheduler", address, "--git-remote", "origin",
                             "--connect-timeout", "5", "--no-workers-timeout", "5"], cwd=coordinator, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: running_a_cell([worker.pid])), "no worker was seen running a cell"
        # The `dask worker` processes (the command and the worker it started), not the cell's: the kernel tells
        # each step's guard (PR_SET_PDEATHSIG), which stops the rest of the cell and removes its clone.
        top = psutil.Process(worker.pid)
        victims = [top, *(p for p in top.children() if "prctl" not in " ".join(p.cmdline()))]
        if lost == "scheduler":
            victims = [psutil.Process(scheduler.pid)]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=120)
        assert time.monotonic() - stopped < 60
    finally:
        for leftover in (proc, worker, scheduler):
            if leftover.poll() is None:
                leftover.kill()
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    expected = "no Dask worker for 5 s" if lost == "workers" else "lost the Dask scheduler"
    assert len(errors) == 1 and expected in errors[0] and "not run: cell-s5-d2" in errors[0], stderr
    assert stderr.strip() == errors[0], stderr  # Dask's own "Failed to reconnect" lines stay quiet
    if lost == "workers":  # and the killed worker's clone went with it, without waiting for another cell
        left = lambda: list(Path(tempfile.gettempdir()).glob("ae-cell-cell-s5-d2-*"))  # noqa: E731
        assert wait_for(lambda: not left() or None, 120), [(p, sorted(x.name for x in p.iterdir())) for p in left()]
    if lost == "workers":  # the cell's processes went with their worker (each step's guard saw to it)
        def cell_processes():
            return [p for p in psutil.process_iter(["cmdline"]) if "cell-s5-d2" in " ".join(p.info["cmdline"] or [])]

        assert wait_for(lambda: not cell_processes() or None, 30), [p.info["cmdline"] for p in cell_processes()]
    assert remote_refs(coordinator, "refs/sweeps/*") == []


def throwaway_credentials(folder: Path) -> dict:
    """A CA and one certificate it signed (for 127.0.0.1 and localhost), made with openssl as docs/machines.md
    shows: the scheduler, the worker and the sweep all use them."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        run(["openssl", *args], folder, check=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ae-sweep test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ae-sweep", "-keyout", "node.key",
            "-out", "node.csr")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
            "2", "-extfile", "san.cnf", "-out", "node.pem")
    return {"ca": str(folder / "ca.pem"), "cert": str(folder / "node.pem"), "key": str(folder / "node.key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make throwaway certificates")
def test_a_cell_runs_over_tls_with_a_real_scheduler_and_worker(coordinator, tmp_path):
    """`dask scheduler` and `dask worker` as a user starts them over TLS (docs/machines.md), the sweep with the
    credentials from its flags; then dask's own config (environment variables) instead of the flags."""
    from tests.stagerun import set_params

    tls = throwaway_credentials(tmp_path / "tls")
    flags = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    scheduler = dask("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", "tls",
                     "--no-dashboard", *flags)
    worker = dask("dask_worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard", *flags)
    set_params(coordinator, {"sweep": {"seeds": [7], "latent_dims": [2]}})  # a cell not run yet
    try:
        proc = sweep(coordinator, address, *flags, "--connect-timeout", "30", timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "1 to run" in proc.stdout and f"on the Dask cluster at {address}" in proc.stdout
        assert "cell seed 7, latent 2 done on" in proc.stdout
        # The same credentials from dask's config: nothing left to run, but the scheduler is reached over TLS.
        config = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": tls["ca"],
                  "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": tls["cert"],
                  "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": tls["key"]}
        again = sweep(coordinator, address, "--connect-timeout", "30", environment=config, timeout=300)
        assert again.returncode == 0 and "1 finished, 0 to run" in again.stdout, again.stderr[-2000:]
        # A plain client is not let in.
        plain = sweep(coordinator, f"tcp://127.0.0.1:{port}", "--connect-timeout", "3", timeout=120)
        assert plain.returncode == 1 and "no Dask scheduler answered" in plain.stderr, plain.stderr
    finally:
        for process in (worker, scheduler):
            process.kill()
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
    shown = run(["dvc", "exp", "show", "--json"], coordinator, check=True).stdout
    assert "cell-s7-d2-" in shown


def test_a_failing_cell_is_one_line_and_keeps_its_log(coordinator):
    from tools.cells import cell_name, run_cell
    from tools.cluster import cluster_plan, remove_sweep_ref

    plan = inside(coordinator, cluster_plan, "origin")  # the remote named, as --git-remote names it
    try:
        outcome = run_cell({**plan, "seed": -1, "latent_dim": 2, "threads": 1, "name": cell_name(-1, 2, "bad")})
    finally:
        inside(coordinator, remove_sweep_ref, plan, "origin")
    assert "error: params.yaml: seed is -1; expected an integer from 0" in outcome["error"]
    assert "dvc exp run" in outcome["log"] and outcome["error"] in outcome["log"]


def test_the_slurm_job_script_renders_without_a_scheduler(coordinator):
    proc = run([sys.executable, "-m", "tools.cluster", "slurm", "--cores", "8", "--memory", "16GB",
                "--print-job-script"], coordinator, check=True)
    script = proc.stdout
    assert "#SBATCH -J ae-sweep" in script and "#SBATCH --mem=" in script
    assert "distributed.cli.dask_worker" in script and "--nworkers 8" in script
    assert script.count("--nthreads") == 1 and "--nthreads 1" in script
    assert "port" not in proc.stderr.lower(), proc.stderr  # no scheduler was started to render it
    # Over TLS, with this run's credentials; no worker dashboard (nothing listens that nobody asked for).
    assert "tls://SCHEDULER:8786" in script and "--protocol tls://" in script and "tcp://" not in script
    assert "--tls-ca-file" in script and "--tls-cert" in script and "--tls-key" in script
    assert "--no-dashboard" in script and ":8787" not in script
    for bad in (["--cores", "0"], ["--adapt-max", "x"], ["--bogus"]):
        line = run([sys.executable, "-m", "tools.cluster", "slurm", *bad], coordinator).stderr.strip()
        assert line.startswith("error: ") and "\n" not in line
