"""Helpers to run stage scripts in a scratch copy of the project, as DVC would."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

# What a clone of the project holds, less tests and docs.
PROJECT_FILES = ("stages", "tools", "dvc.yaml", "params.yaml", ".dvcignore", ".dvc", ".gitignore")


def make_project(folder: Path, overrides: dict | None = None) -> Path:
    """Copy the pipeline's code and params into `folder`, applying nested `overrides` to params."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
        else:
            shutil.copy(src, folder / name)
    set_params(folder, overrides or {})
    return folder


def set_params(folder: Path, overrides: dict) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())

    def merge(node, changes):
        for key, value in changes.items():
            if isinstance(value, dict):
                merge(node.setdefault(key, {}), value)
            else:
                node[key] = value

    merge(params, overrides)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def env() -> dict:
    """The environment for stage and dvc subprocesses: this interpreter's venv first on PATH."""
    result = dict(os.environ)
    result["PATH"] = str(Path(sys.executable).parent) + os.pathsep + result.get("PATH", "")
    result["DVC_NO_ANALYTICS"] = "1"
    result.pop("PYTHONPATH", None)
    return result


def run(args: list, cwd: Path, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# Root ignores file permissions through CAP_DAC_OVERRIDE; without it, as for any user, they apply.
# CI runs as root, so permission tests run their stage with those capabilities dropped.
UNPRIVILEGED = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
                if os.geteuid() == 0 and shutil.which("setpriv") else [])


def stage(name: str, cwd: Path, *args: str, check: bool = False, unprivileged: bool = False,
          extra_env: dict | None = None) -> subprocess.CompletedProcess:
    prefix = UNPRIVILEGED if unprivileged else []
    command = [*prefix, sys.executable, "-m", "stages", name, *args]
    if extra_env:
        proc = subprocess.run(command, cwd=cwd, env={**env(), **extra_env}, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc
    return run(command, cwd, check=check)


def permissions_apply() -> bool:
    """Whether a stage run with `unprivileged=True` is refused by file permissions."""
    return os.geteuid() != 0 or bool(UNPRIVILEGED)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one-line error a failed stage printed (asserting it is exactly one line)."""
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def venv_path_hook_installed() -> bool:
    """Whether `make setup` put tools/venv-path.pth into the running environment."""
    import sysconfig

    return (Path(sysconfig.get_paths()["purelib"]) / "ae-compare-venv-path.pth").is_file()


def inside(folder: Path, function, *args):
    """`function(*args)` run with `folder` as the working directory (a tool's main reads it)."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        return function(*args)
    finally:
        os.chdir(here)


def peak_of(command: list, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run `command`; its result and its peak resident memory in MB, sampled every 50 ms."""
    import time

    import psutil

    proc = subprocess.Popen(command, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr), peak
