"""One cell of the sweep's grid, wherever it runs: a temporary clone, one `dvc exp run`, published.

`run_cell(spec)` runs on a Dask worker: an in-process one for a sweep on this machine,
or a `dask worker` on another machine for a sweep on a cluster. It clones the commit
being swept (`spec["git_url"]`, ref refs/sweeps/<commit>), applies the workspace's
uncommitted changes (`spec["patch"]`), and either shares this machine's DVC cache
(`spec["cache_dir"]`: outputs and run-cache are already where the sweep reads them)
or pulls the run-cache from the DVC remote (`spec["dvc_url"]`). It then runs `dvc exp
run -S seed=S -S train.latent_dim=D -S train.threads=T [-S train.steps=N -S train.epochs=null]
--name <cell>`, so every stage
any machine already ran comes from the run-cache, and publishes the experiment to
the git remote it cloned from (`dvc exp push`), with its outputs to the DVC remote
when there is one.

Every step runs under a guard process: in a session of its own (Ctrl-C at the
terminal reaches the guard, which stops the whole step), and killed with its parent
(PR_SET_PDEATHSIG): a worker that dies mid-cell takes its training with it. A clone
whose worker died is removed by the next cell on that host. The cell's whole output
goes to one log, returned with the outcome, so cells never interleave their output
and a failed one keeps its log.

Imports only the standard library at the top: the Dask task carries this module by
value, so a worker needs the project's environment (dvc, the stages' packages) but
not the project itself.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_REFS = "refs/sweeps"
CLONE_PREFIX = "ae-cell-"
OWNER = ".owner"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
LOG_TAIL_BYTES = 200_000
STOP_GRACE_SECONDS = 3

# The guard: a python -c program between the worker and each step. It asks the kernel for
# SIGTERM when the thread that started it dies, starts the step in a session of its own,
# and on SIGTERM, SIGINT or SIGHUP stops the step's whole process group (TERM, then KILL);
# when its worker is gone (killed with or without the step), it also removes the cell's
# clone (argv[3]), which nobody else would remove before the next cell on this host.
GUARD = r"""
import ctypes, os, shutil, signal, subprocess, sys, time
parent, child = int(sys.argv[1]), None
def reaped():  # in a signal handler Popen.poll() cannot take the lock the interrupted wait() holds
    try:
        return os.waitpid(child.pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True
def group_alive():
    try:
        os.killpg(child.pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
def orphaned():
    if os.getppid() == parent:
        return False
    deadline = time.time() + float(sys.argv[2])
    while child is not None and group_alive() and time.time() < deadline:  # nothing may write there any more
        time.sleep(0.1)
    for _ in range(10):
        shutil.rmtree(sys.argv[3], ignore_errors=True)
        if not os.path.exists(sys.argv[3]):
            break
        time.sleep(0.2)
    return True
def stop(signum, frame):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if child is None or not group_alive():
            break
        os.killpg(child.pid, sig)
        deadline = time.time() + float(sys.argv[2])
        while time.time() < deadline and (not reaped() or group_alive()):
            time.sleep(0.1)
    orphaned()
    os._exit(128 + signum)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, stop)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if orphaned():
    sys.exit(143)
child = subprocess.Popen(sys.argv[4:], start_new_session=True)
code = child.wait()
orphaned()
sys.exit(code)
"""


class Cancelled(Exception):
    """The sweep asked its cells to stop."""


def cell_name(seed: int, latent_dim: int, code_key: str) -> str:
    """A cell's experiment name: fixed by the cell and the code it runs, so a rerun replaces, never adds."""
    return f"cell-s{seed}-d{latent_dim}-{code_key}"


def _pid_alive(pid: int) -> bool:
    # As stages.common.outputs.atomic's; repeated because this module travels alone, by value.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_clones(folder: Path, older_than_seconds: float = 3600) -> list[Path]:
    """Remove the clones in `folder` whose owner on this host is gone (a killed worker, a killed sweep)."""
    removed = []
    host = socket.gethostname()
    for clone in sorted(folder.glob(f"{CLONE_PREFIX}*")):
        try:
            owner_host, owner_pid = (clone / OWNER).read_text().split()
            stale = owner_host == host and not _pid_alive(int(owner_pid))
        except (OSError, ValueError):  # no owner written yet, or unreadable: stale only when old
            try:
                stale = time.time() - clone.stat().st_mtime > older_than_seconds
            except OSError:
                continue
        if stale:
            shutil.rmtree(clone, ignore_errors=True)
            removed.append(clone)
    return removed


def error_line(log: str) -> str:
    """The stage's own one-line error if the log has one, else DVC's, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for prefix in ("error: ", "ERROR: "):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1][:500]
    return (lines[-1] if lines else "no output")[:500]


def _cancel_event(name: str | None):
    if not name:
        return None
    try:
        from distributed import Event

        return Event(name)
    except (ImportError, ValueError):  # not on a Dask worker (a direct call, a test)
        return None


def _step(args: list, cwd: Path, work: Path, env: dict, log, cancel, stdin_path: Path | None = None) -> int:
    """Run one step under the guard, its output appended to `log`; its exit status. Raises Cancelled."""
    log.write(f"$ {' '.join(map(str, args))}\n".encode())
    log.flush()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        guard = subprocess.Popen([sys.executable, "-c", GUARD, str(os.getpid()), str(STOP_GRACE_SECONDS), str(work),
                                  *args],
                                 cwd=cwd, env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT)
    finally:
        if stdin_path:
            stdin.close()
    try:
        while True:
            try:
                return guard.wait(timeout=2)
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    guard.terminate()
                    guard.wait()
                    raise Cancelled from None
    except BaseException:
        if guard.poll() is None:  # an interrupt in this process: the step must not outlive it
            guard.terminate()
            guard.wait()
        raise


def _steps(spec: dict, repo: Path) -> list[list]:
    """The commands of one cell, in order: (command, may fail)."""
    python, ref = sys.executable, f"{SWEEP_REFS}/{spec['commit']}"
    steps = [(["git", "clone", "-q", "--no-checkout", spec["git_url"], str(repo)], False),
             (["git", "fetch", "-q", "origin", f"+{ref}:{ref}"], False),
             (["git", "checkout", "-q", spec["commit"]], False)]
    if spec.get("patch"):
        steps.append((["git", "apply", "--binary", "--whitespace=nowarn", "-"], False))
    if spec.get("cache_dir"):
        steps.append(([python, "-m", "dvc", "cache", "dir", "--local", spec["cache_dir"]], False))
    else:
        steps += [([python, "-m", "dvc", "remote", "add", "--local", "--force", "--default", "sweep",
                    spec["dvc_url"]], False),
                  ([python, "-m", "dvc", "pull", "--run-cache", "--quiet"], True)]  # an empty remote is fine
    run = [python, "-m", "dvc", "exp", "run", "--name", spec["name"], "--set-param", f"seed={spec['seed']}",
           "--set-param", f"train.latent_dim={spec['latent_dim']}", "--set-param", f"train.threads={spec['threads']}"]
    if spec.get("steps") is not None:  # sweep.steps: every cell trains that many optimizer steps
        run += ["--set-param", f"train.steps={spec['steps']}", "--set-param", "train.epochs=null"]
    if spec.get("targets"):
        # A part of a cell (tools/sweep.py's split_tail): some of its stages, into the shared run-cache, where the
        # cell itself then finds them. Nothing of it is published; its clone goes with it.
        return [*steps, ([*run[:5], *run[7:], *spec["targets"]], False)]
    steps.append((run if spec.get("cache_dir") else [*run[:5], "--pull", *run[5:]], False))
    if spec.get("cache_dir"):
        steps.append(([python, "-m", "dvc", "exp", "push", "--force", "--no-cache", "origin", spec["name"]], False))
    else:
        steps += [([python, "-m", "dvc", "exp", "push", "--force", "--run-cache", "origin", spec["name"]], False),
                  ([python, "-m", "tools.share"], False)]
    return steps


def run_cell(spec: dict) -> dict:
    """Run one cell; its outcome, with the tail of its log. Never raises for the cell's own failure (a bad
    parameter fails the same way everywhere; retrying it helps nothing)."""
    started = time.perf_counter()
    outcome = {"seed": spec["seed"], "latent_dim": spec["latent_dim"], "name": spec["name"],
               "host": socket.gethostname()}
    folder = Path(spec.get("temp_dir") or tempfile.gettempdir())
    remove_stale_clones(folder)
    work = Path(tempfile.mkdtemp(prefix=f"{CLONE_PREFIX}{spec['name']}-", dir=folder))
    (work / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
    repo, log_path = work / "repo", work / "cell.log"
    patch = work / "changes.patch"
    patch.write_text(spec.get("patch") or "")
    env = {**os.environ, **{name: str(spec["threads"]) for name in THREAD_VARIABLES}, "DVC_NO_ANALYTICS": "1",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    cancel = _cancel_event(spec.get("cancel"))
    try:
        with open(log_path, "ab") as log:
            for args, may_fail in _steps(spec, repo):
                stdin = patch if args[:2] == ["git", "apply"] else None
                status = _step(args, work if args[1] == "clone" else repo, work, env, log, cancel, stdin)
                if status and not may_fail:
                    text = _tail(log_path)
                    return {**outcome, "error": error_line(text), "log": text,
                            "seconds": round(time.perf_counter() - started, 1)}
        return {**outcome, "log": _tail(log_path), "seconds": round(time.perf_counter() - started, 1)}
    except Cancelled:
        return {**outcome, "error": "cancelled: the sweep was stopped", "log": _tail(log_path),
                "seconds": round(time.perf_counter() - started, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        return f.read().decode("utf-8", errors="replace")

