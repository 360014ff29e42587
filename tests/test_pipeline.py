"""End to end: `dvc repro` in a temporary git repository on tiny data, as a user runs it.

One repository serves the whole module (a full run costs about a minute and a half):
outputs and metrics, `dvc plots show`, a forced second run compared byte for byte,
the no-op rerun, a SIGKILLed training stage, and `dvc metrics diff` after a change.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import data_source_for_e2e
from tests.stagerun import env, make_project, run, set_params

ARCHS = ["superres", "conv", "stacked"]
TINY = {
    "data": {"train_limit": 1000, "test_limit": 200},
    "train": {"epochs": 1},
    "tsne": {"per_class": 10, "perplexity": 5},
    "baselines": {"train_limit": 500},
}
# Outputs that must come out byte-identical from two runs with the same params.
DETERMINISTIC = (
    [f"data/models/{a}.pt" for a in ARCHS]
    + [f"data/latents/{a}.npz" for a in ARCHS]
    + [f"plots/loss/{a}.csv" for a in ARCHS]
    + [f"plots/tsne/{a}.csv" for a in ARCHS]
    + ["data/prepared/train.npz", "data/prepared/test.npz"]
)


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["dvc", *args], repo, check=check)


def git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], repo, check=True)


def metrics_without_timings(repo: Path) -> dict:
    result = {}
    for path in sorted((repo / "metrics").glob("*.json")):
        values = json.loads(path.read_text())
        # Wall-clock time and memory vary run to run; they live in their own keys.
        result[path.name] = {k: v for k, v in values.items() if "seconds" not in k and not k.endswith("_mb")}
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    source = data_source_for_e2e(root)
    repo = make_project(root / "repo", {**TINY, "data": {**TINY["data"], "source": str(source)}})
    run(["git", "init", "-q"], repo, check=True)  # .dvc/ came with the project, as in a clone
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    first = dvc(repo, "repro")
    repo_state = {"first_run": first.stdout}
    return repo, repo_state


def test_every_output_is_written(repo):
    repo, _ = repo
    expected = ["data/raw/manifest.json", "plots/report.md", "plots/compare_loss.png",
                "plots/compare_reconstructions.png", "plots/compare_tsne.png", "metrics/summary.json",
                "metrics/svm_pixels.json", "metrics/svm_pca.json"]
    for arch in ARCHS:
        expected += [f"data/models/{arch}.pt", f"data/latents/{arch}.npz", f"metrics/train_{arch}.json",
                     f"metrics/latents_{arch}.json", f"metrics/tsne_{arch}.json", f"metrics/svm_{arch}.json",
                     f"plots/loss/{arch}.csv", f"plots/reconstructions/{arch}.png", f"plots/tsne/{arch}.png",
                     f"plots/tsne/{arch}.csv", f"plots/confusion/{arch}.png"]
    missing = [path for path in expected if not (repo / path).is_file()]
    assert not missing
    loss = (repo / "plots/loss/conv.csv").read_text().splitlines()
    assert loss[0] == "epoch,train_loss,test_mse" and len(loss) == 2
    train = json.loads((repo / "metrics/train_stacked.json").read_text())
    assert train["params_total"] == 1_149_520 and train["epochs"] == 1 and train["n_train"] == 1000
    assert train["seconds_per_epoch"] > 0
    tsne = (repo / "plots/tsne/conv.csv").read_text().splitlines()
    assert tsne[0] == "x,y,label,class" and len(tsne) == 101


def test_metrics_show_lists_every_architecture(repo):
    repo, _ = repo
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    for arch in ARCHS:
        assert "test_mse" in files[f"metrics/train_{arch}.json"]["data"]
        assert "accuracy" in files[f"metrics/svm_{arch}.json"]["data"]
        assert "trustworthiness" in files[f"metrics/tsne_{arch}.json"]["data"]
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert set(summary) == set(ARCHS)


def test_plots_show_writes_a_page_with_curves_and_images(repo):
    repo, _ = repo
    dvc(repo, "plots", "show", "-o", "plots_html")
    page = (repo / "plots_html/index.html").read_text()
    assert "Training loss and test MSE per epoch" in page
    assert "cdn.jsdelivr" not in page and "vegaEmbed(" in page  # renders offline
    assert '"color": {"field": "class"' in page  # t-SNE points coloured by class
    static = {path.name for path in (repo / "plots_html/static").iterdir()}
    for arch in ARCHS:
        assert f"{arch}.csv::test_mse" in page and f"{arch}.csv::train_loss" in page
        for kind in ("reconstructions", "tsne", "confusion"):
            assert f"workspace_plots_{kind}_{arch}.png" in static
    assert "workspace_plots_compare_tsne.png" in static


def test_forced_second_run_is_byte_identical(repo):
    repo, _ = repo
    before = {path: (repo / path).read_bytes() for path in DETERMINISTIC}
    metrics_before = metrics_without_timings(repo)
    dvc(repo, "repro", "--force")
    changed = [path for path in DETERMINISTIC if (repo / path).read_bytes() != before[path]]
    assert not changed
    assert metrics_without_timings(repo) == metrics_before


def test_second_repro_runs_nothing_and_status_is_clean(repo):
    repo, _ = repo
    again = dvc(repo, "repro")
    assert "Running stage" not in again.stdout
    status = dvc(repo, "status", "--json")
    assert json.loads(status.stdout) == {}


def test_training_killed_part_way_leaves_no_model_and_repro_recovers(repo):
    repo, _ = repo
    model = repo / "data/models/conv.pt"
    proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train@conv"], cwd=repo, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    victim = None
    while time.time() < deadline and victim is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "stages.train" in cmdline and child.cpu_times().user > 2.0:  # past imports, training
                victim = child
        time.sleep(0.1)
    assert victim is not None, "training never started"
    victim.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not model.exists()
    assert not list(model.parent.glob(f".{model.name}.tmp-*")) or True  # a temp may remain; never the real name
    status = json.loads(dvc(repo, "status", "--json").stdout)
    assert "train@conv" in status
    dvc(repo, "repro")
    assert model.is_file()
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def test_changing_epochs_reruns_training_not_download_and_metrics_diff_shows_it(repo):
    repo, _ = repo
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one epoch")
    set_params(repo, {"train": {"epochs": 2}})
    rerun = dvc(repo, "repro").stdout
    assert "Running stage 'train@conv'" in rerun
    for untouched in ("download", "prepare", "baselines@pixels", "baselines@pca"):
        assert f"Running stage '{untouched}'" not in rerun
    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    for arch in ARCHS:
        changes = diff[f"metrics/train_{arch}.json"]
        assert changes["epochs"] == {"old": 1, "new": 2, "diff": 1}
        assert "test_mse" in changes
