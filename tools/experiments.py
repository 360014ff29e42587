"""DVC experiments as the tools read them: run `dvc`, list every experiment, read what each one recorded.

`dvc exp show --json --all-commits` renders every commit of the history, so it took
about 40 s on a repository of 67 commits and grows with each. An experiment is a git
commit under refs/exps/<baseline>/<name> (DVC's own layout, `ExpRefInfo`) whose
tree holds its params.yaml, its git-tracked metrics and its dvc.lock, so this module
lists the refs with one `git for-each-ref` and reads all their files through one
`git cat-file --batch`: a cost that grows with the experiments, not with the commits.

What an experiment recorded is input, checked where it is read: a metric that is not
a finite number in its metric's range is reported with the experiment, the file and
the key (`Experiment.problems`), never passed on; a params.yaml that does not parse
is such a problem too. Per-image outcomes (data/predictions/, data/errors/) come from
the DVC cache by the md5 that the experiment's dvc.lock records, pulled from the
default DVC remote where this clone does not have them, and are read with the
stages' own checked readers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.errors import PipelineError
from stages.common.evaluation.metrics import BASELINES, METRICS, in_range
from stages.common.outputs.layout import errors_path, metrics_path, predictions_path, run_path
from stages.common.outputs.read import MAX_TEXT_BYTES, load_errors, load_predictions, read_json
from stages.common.settings import parse_yaml

EXPS_NAMESPACE = "refs/exps"


def dvc(*args: str, capture: bool = True, env: dict | None = None, cwd=None) -> str:
    """Run `dvc` with this interpreter; its stdout, or PipelineError with DVC's last words."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or "").split())[-400:] if capture else "see the output above"
        raise PipelineError(f"dvc {' '.join(args)} failed: {detail}")
    return proc.stdout if capture else ""


def git(*args: str, cwd=None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode:
        said = " ".join(proc.stderr.split())[-300:] or f"no message, exit {proc.returncode}"
        raise PipelineError(f"git {' '.join(args)} ({said})")
    return proc.stdout


def flatten(node, prefix: str = "") -> dict:
    """A nested params mapping as dotted keys (`train.latent_dim`); lists and mappings kept as JSON."""
    if not isinstance(node, dict):
        return {prefix[:-1]: json.dumps(node) if isinstance(node, (list, dict)) else node}
    flat = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


# --------------------------------------------------------------------------- reading files at revisions
class Blobs:
    """Files at git revisions, through one `git cat-file --batch` process: `read(rev, path)` -> bytes or None."""

    def __init__(self, cwd=None):
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read(self, rev: str, path: str, limit: int = MAX_TEXT_BYTES) -> bytes | None:
        """The file, or None where the revision has none; PipelineError past `limit` bytes."""
        self.proc.stdin.write(f"{rev}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            return None
        size = int(header[2])
        if size > limit:
            self.proc.stdout.read(size + 1)
            raise PipelineError(f"{path} of experiment commit {rev[:7]}: {size:,} bytes, far more than a stage writes")
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after each object
        return data

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- experiments
@dataclass
class Experiment:
    name: str
    rev: str                 # the experiment's own commit
    baseline: str            # the commit it was run from
    params: dict             # its params.yaml
    metrics: dict            # metrics/<file>.json path -> its object, for every metric file it holds
    problems: list = field(default_factory=list)  # one line per value that could not be used


def experiment_refs(cwd=None) -> list[tuple[str, str, str]]:
    """(name, rev, baseline) of every experiment ref, newest commit first."""
    from dvc.repo.experiments.refs import ITER_SKIP_NAMESPACES, STASHES, ExpRefInfo

    out = git("for-each-ref", "--sort=-committerdate", "--format=%(objectname) %(refname)", EXPS_NAMESPACE,
              cwd=cwd)
    found = []
    for line in out.splitlines():
        rev, _, ref = line.partition(" ")
        if ref in STASHES or any(ref.startswith(space + "/") for space in ITER_SKIP_NAMESPACES):
            continue
        try:
            info = ExpRefInfo.from_ref(ref)
        except Exception:  # noqa: BLE001 - a ref DVC would not list either
            continue
        if info.name:
            found.append((info.name, rev, info.baseline_sha))
    return found


def metric_files(archs: list) -> list[str]:
    """Every metrics file a report reads: each metric's kind for each architecture, the SVM's for baselines."""
    paths = [str(metrics_path(m.kind, arch)) for arch in archs for m in METRICS]
    paths += [str(metrics_path(m.kind, name)) for name in BASELINES for m in METRICS if m.kind == "svm"]
    return list(dict.fromkeys(paths))


def _read_metrics(blobs: Blobs, exp: Experiment, paths: list[str]) -> None:
    for path in paths:
        data = blobs.read(exp.rev, path)
        if data is None:
            continue
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            exp.problems.append(f"{exp.name}: {path} is not valid JSON")
            continue
        if not isinstance(value, dict):
            exp.problems.append(f"{exp.name}: {path} is not a JSON object")
            continue
        exp.metrics[path] = value


def read_experiments(archs: list, cwd=None) -> list[Experiment]:
    """Every experiment with its params.yaml and the metrics files of `archs` and the baselines."""
    refs = experiment_refs(cwd)
    found = []
    with Blobs(cwd) as blobs:
        for name, rev, baseline in refs:
            exp = Experiment(name, rev, baseline, {}, {})
            text = blobs.read(rev, "params.yaml")
            try:
                params = parse_yaml(text.decode("utf-8"), f"params.yaml of experiment {name}") if text else None
            except (PipelineError, UnicodeDecodeError) as err:
                exp.problems.append(f"{name}: {err}")
                params = None
            if not isinstance(params, dict):
                exp.problems.append(f"{name}: params.yaml missing or not a mapping")
            else:
                exp.params = params
            _read_metrics(blobs, exp, metric_files(archs))
            found.append(exp)
    return found


def metric_value(exp: Experiment, metric, name: str):
    """The experiment's value of `metric` for feature space `name`: a number in range, None where the file or key
    is absent; one line in exp.problems (and None) for anything else."""
    path = str(metrics_path(metric.kind, name))
    value = exp.metrics.get(path, {}).get(metric.key)
    if value is None:
        return None
    if not in_range(metric, value):
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        exp.problems.append(f"{exp.name}: {path} has {metric.key} = {shown}; expected a number from "
                            f"{metric.bounds[0]:g} to {metric.bounds[1]:g}")
        return None
    return value


# --------------------------------------------------------------------------- code versions
def code_paths(dvc_yaml: dict) -> list[str]:
    """The files that decide a pipeline's results besides its params: dvc.yaml and every code file it lists."""
    paths = {"dvc.yaml"}
    for stage in (dvc_yaml.get("stages") or {}).values():
        for dep in stage.get("deps") or []:
            if isinstance(dep, str) and dep.endswith(".py"):
                paths.add(dep)
    return sorted(paths)


def code_versions(revs: list[str], paths: list[str], cwd=None) -> dict:
    """rev -> the blob ids of `paths` at that revision (one `git cat-file --batch-check` for all)."""
    if not revs:
        return {}
    query = "".join(f"{rev}:{path}\n" for rev in revs for path in paths)
    proc = subprocess.run(["git", "cat-file", "--batch-check"], input=query, capture_output=True, text=True, cwd=cwd)
    lines = proc.stdout.splitlines()
    if len(lines) != len(revs) * len(paths):
        raise PipelineError("git cat-file --batch-check gave an unexpected answer; is this a git repository?")
    ids = [line.split()[0] for line in lines]
    return {rev: tuple(ids[i * len(paths):(i + 1) * len(paths)]) for i, rev in enumerate(revs)}


def workspace_commit(cwd=None) -> str:
    """A commit of the workspace as it is (uncommitted changes to tracked files included), or HEAD without any;
    made with `git stash create`, which changes neither the working tree nor the index."""
    try:
        made = git("stash", "create", cwd=cwd).strip()
    except PipelineError as err:
        raise PipelineError(f"{err}: the sweep records this clone's uncommitted changes as a commit object, so "
                            ".git must be writable by you; or commit the changes first") from None
    return made or git("rev-parse", "HEAD", cwd=cwd).strip()


# --------------------------------------------------------------------------- per-image outcomes
def locked_outputs(blobs: Blobs, exp: Experiment) -> dict:
    """path -> md5 of every output the experiment's dvc.lock records."""
    text = blobs.read(exp.rev, "dvc.lock")
    try:
        lock = parse_yaml(text.decode("utf-8"), f"dvc.lock of experiment {exp.name}") if text else None
    except (PipelineError, UnicodeDecodeError) as err:
        raise PipelineError(str(err)) from None
    found = {}
    for stage in ((lock or {}).get("stages") or {}).values() if isinstance(lock, dict) else []:
        for out in (stage.get("outs") or []) if isinstance(stage, dict) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str) and isinstance(out.get("md5"), str):
                found[out["path"]] = out["md5"]
    return found


class OutcomeReader:
    """Per-image outcomes of experiments, from this clone's DVC cache (pulled from the default remote if absent)."""

    def __init__(self, cwd="."):
        from dvc.repo import Repo

        self.repo = Repo(str(cwd))
        self.cwd = cwd

    def paths(self, wanted: dict) -> dict:
        """(exp name, path) -> cache file, for md5s `wanted[(exp name, path)]`, fetching the missing ones once."""
        from dvc.exceptions import DvcException
        from dvc_data.hashfile.hash_info import HashInfo

        cache = self.repo.cache.local
        missing = {md5 for md5 in wanted.values() if not Path(cache.oid_to_path(md5)).is_file()}
        if missing:
            try:
                self.repo.cloud.pull([HashInfo("md5", md5) for md5 in sorted(missing)])
            except DvcException as err:
                raise PipelineError(f"dvc: fetching {len(missing)} per-image files of the experiments: "
                                    f"{' '.join(str(err).split())[:200]}") from None
        return {key: Path(cache.oid_to_path(md5)) for key, md5 in wanted.items()}

    def close(self) -> None:
        self.repo.close()


def outcome_files(exp: Experiment, lock: dict, archs: list) -> dict:
    """(kind, name) -> md5 of the per-image files an experiment has: predictions of every feature space, errors of
    every architecture."""
    wanted = {}
    for name in [*archs, *BASELINES]:
        md5 = lock.get(str(predictions_path(name)))
        if md5:
            wanted[("correct", name)] = md5
    for arch in archs:
        md5 = lock.get(str(errors_path(arch)))
        if md5:
            wanted[("errors", arch)] = md5
    for kind, name in fact_files(archs):
        md5 = lock.get(str(run_path(kind, name)))
        if md5:
            wanted[("facts", f"{kind}_{name}")] = md5
    return wanted


FACT_KINDS = ("train", "latents", "tsne", "svm")


def fact_files(archs: list) -> list[tuple[str, str]]:
    """(kind, name) of every run-facts file of a cell (metrics/run/<kind>_<name>.json): what each stage cost, and
    what judges a training run."""
    return [*((kind, arch) for arch in archs for kind in FACT_KINDS), *(("svm", name) for name in BASELINES)]


def read_facts(path: Path, where: str, exp: Experiment) -> dict:
    """A run-facts file from the DVC cache, as a JSON object; PipelineError naming the experiment and the file."""
    try:
        return read_json(path, where)
    except PipelineError as err:
        raise from_cache(err, exp, where, path) from None


def from_cache(err: PipelineError, exp: Experiment, where, path: Path) -> PipelineError:
    """A reader's error about a DVC cache file, said of the experiment and the output it stands for."""
    why = str(err).removeprefix(f"{path}: ").split("; rerun")[0]
    return PipelineError(f"{exp.name}: {where} (DVC cache file {path.name}): {why}")


def read_outcome(kind: str, name: str, path: Path, exp: Experiment) -> dict:
    """metric key -> per-image array, read with the stages' checked readers; PipelineError naming the experiment."""
    where = predictions_path(name) if kind == "correct" else errors_path(name)
    try:
        if kind == "correct":
            data = load_predictions(path, f"svm@{name}")
            return {"accuracy": data["predicted"] == data["y_test"], "y_test": data["y_test"]}
        return dict(load_errors(path, name))
    except PipelineError as err:
        raise from_cache(err, exp, where, path) from None
