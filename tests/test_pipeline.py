"""End to end: `dvc repro` in a temporary git repository on tiny data, as a user runs it.

One repository serves the whole module (a full run of the five architectures costs
about a minute and a half): outputs and metrics, `dvc plots show` in a real browser,
forced reruns compared byte for byte, the no-op rerun, a SIGKILLed training stage,
`dvc metrics diff` after a change, the run-cache restoring every stage, and sharing
runs and experiments with a second clone through a DVC remote and a git remote.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from stages.common.models.catalogue import ARCH_IDS
from tests.conftest import data_source_for_e2e
from tests.stagerun import env, error_line, make_project, run, set_params

ARCHS = list(ARCH_IDS)
TINY = {
    "data": {"train_limit": 1000, "test_limit": 200},
    "train": {"epochs": 1},
    "tsne": {"per_class": 10, "perplexity": 5},
    "baselines": {"train_limit": 500},
}
# Outputs that must come out byte-identical from two runs with the same params
# (the notebook's three models were compared so before; these are the new ones, and one SVM).
FORCED = ["prepare", "train@vae", "train@denoising", "latents@vae", "tsne@vae", "tsne@denoising", "svm@vae"]
DETERMINISTIC = ["data/prepared/train.npz", "data/prepared/test.npz", "data/models/vae.pt", "data/models/denoising.pt",
                 "data/latents/vae.npz", "plots/loss/vae.csv", "plots/loss/denoising.csv", "plots/tsne/vae.csv",
                 "plots/tsne/denoising.csv", "metrics/train_vae.json", "metrics/train_denoising.json",
                 "metrics/tsne_vae.json", "metrics/tsne_denoising.json", "metrics/svm_vae.json",
                 "plots/confusion/vae.png", "data/predictions/vae.npz"]


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["dvc", *args], repo, check=check)


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], repo, check=True)


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    source = data_source_for_e2e(root)
    repo = make_project(root / "repo", {**TINY, "data": {**TINY["data"], "source": str(source)}})
    run(["git", "init", "-q"], repo, check=True)  # .dvc/ came with the project, as in a clone
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return repo


def test_every_output_is_written(repo):
    expected = ["data/raw/manifest.json", "plots/report.md", "plots/compare/loss.csv", "plots/compare/tsne.csv",
                "plots/compare/loss.png", "plots/compare/reconstructions.png", "plots/compare/tsne.png",
                "metrics/svm_pixels.json", "metrics/svm_pca.json"]
    for arch in ARCHS:
        expected += [f"data/models/{arch}.pt", f"data/latents/{arch}.npz", f"metrics/train_{arch}.json",
                     f"metrics/tsne_{arch}.json", f"metrics/svm_{arch}.json", f"metrics/run/train_{arch}.json",
                     f"metrics/run/latents_{arch}.json", f"plots/loss/{arch}.csv", f"plots/tsne/{arch}.csv"]
        expected += [f"plots/{kind}/{arch}.png" for kind in
                     ("reconstructions", "samples", "interpolation", "denoising", "tsne", "confusion")]
    missing = [path for path in expected if not (repo / path).is_file()]
    assert not missing
    loss = (repo / "plots/loss/vae.csv").read_text().splitlines()
    assert loss[0] == "epoch,train_loss,train_mse,test_mse,kl,reconstruction" and len(loss) == 2
    facts = json.loads((repo / "metrics/run/train_stacked.json").read_text())
    assert facts["params_total"] == 1_149_520 and facts["epochs"] == 1 and facts["n_train"] == 1000
    # What a sweep judges a run by, and what the whole stage process took.
    assert facts["steps"] == 8 and 0 < facts["mean_image_mse"] < 1 and facts["process_seconds"] > facts["seconds"]
    active = json.loads((repo / "metrics/run/latents_vae.json").read_text())["active_units"]
    assert 0 <= active <= 64
    vae = json.loads((repo / "metrics/train_vae.json").read_text())
    assert set(vae) == {"train_loss", "test_mse", "test_mse_se", "denoise_mse", "kl", "reconstruction"}
    assert 0 < vae["test_mse_se"] < vae["test_mse"]
    assert vae["train_loss"] == pytest.approx(vae["reconstruction"] + vae["kl"], rel=1e-5)
    tsne = (repo / "plots/tsne/conv.csv").read_text().splitlines()
    assert tsne[0] == "x,y,label,class" and len(tsne) == 101


def test_metrics_show_lists_results_only(repo):
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    keys = set()
    for arch in ARCHS:
        assert {"test_mse", "train_loss", "denoise_mse"} <= set(files[f"metrics/train_{arch}.json"]["data"])
        svm = files[f"metrics/svm_{arch}.json"]["data"]
        assert set(svm) == {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1"}
        # <= at the top: on toy data an SVM can score 100%, whose Wilson interval ends at 1.
        assert svm["accuracy_ci_low"] < svm["accuracy"] <= svm["accuracy_ci_high"] <= 1
        assert set(files[f"metrics/tsne_{arch}.json"]["data"]) == {"trustworthiness"}
    for entry in files.values():
        keys |= set(entry["data"])
    assert len(keys) + 2 <= 20  # + the Revision and Path columns
    assert not any("seconds" in key or key.endswith("_mb") or key in ("device", "n_train") for key in keys)
    table = dvc(repo, "metrics", "show").stdout
    assert max(len(line) for line in table.splitlines()) <= 200
    facts = run(["python", "-m", "tools.facts", "train"], repo, check=True).stdout
    assert "seconds_per_epoch" in facts and "peak_rss_mb" in facts


def test_plots_page_draws_every_chart_and_follows_archs(repo, tmp_path):
    from tests.browser import render

    dvc(repo, "plots", "show", "-o", str(tmp_path / "page"))
    page = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page and "cdn.jsdelivr" not in page
    assert '"field": "architecture"' in page and '"strokeDash"' in page  # loss chart
    static = {path.name for path in (tmp_path / "page" / "static").iterdir()}
    for arch in ARCHS:
        for kind in ("reconstructions", "samples", "interpolation", "denoising", "tsne", "confusion"):
            assert f"workspace_plots_{kind}_{arch}.png" in static
    render(tmp_path / "page" / "index.html", expected_charts=2, screenshot=tmp_path / "page.png")

    # After a run with fewer architectures the page shows only those, though the others' files remain.
    set_params(repo, {"archs": ["conv"]})
    try:
        assert ran_stages(dvc(repo, "repro").stdout) == ["report"]
        dvc(repo, "plots", "show", "-o", str(tmp_path / "conv-only"))
        static = {path.name for path in (tmp_path / "conv-only" / "static").iterdir()}
        assert not [name for name in static if "stacked" in name or "vae" in name]
        assert "workspace_plots_confusion_conv.png" in static
        page = (tmp_path / "conv-only" / "index.html").read_text(encoding="utf-8")
        assert "Convolutional AE" in page and "Stacked AE" not in page and "Variational AE" not in page
    finally:
        git(repo, "checkout", "params.yaml")
    restored = dvc(repo, "repro").stdout
    assert ran_stages(restored) == [] and "Stage 'report' is cached - skipping run" in restored


def test_forced_rerun_is_byte_identical(repo):
    before = {path: (repo / path).read_bytes() for path in DETERMINISTIC}
    dvc(repo, "repro", "--force", "--single-item", *FORCED, "report")
    changed = [path for path in DETERMINISTIC if (repo / path).read_bytes() != before[path]]
    assert not changed


def test_one_architectures_setting_touches_only_its_own_stages(repo):
    set_params(repo, {"models": {"vae": {"beta": 2.0}}})
    try:
        assert sorted(json.loads(dvc(repo, "status", "--json").stdout)) == ["latents@vae", "train@vae"]
        set_params(repo, {"test_noise": {"noise_std": 0.5}})  # every model's denoise_mse reads it
        assert sorted(json.loads(dvc(repo, "status", "--json").stdout)) == sorted(
            [f"train@{arch}" for arch in ARCHS] + ["latents@vae"])
    finally:
        git(repo, "checkout", "params.yaml")
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def test_the_model_file_rebuilds_its_model_and_a_stale_one_is_named(repo):
    from stages.common.models.checkpoint import ModelSpec, load_checkpoint

    params = yaml.safe_load((repo / "params.yaml").read_text())
    dim, vae = params["train"]["latent_dim"], params["models"]["vae"]
    spec, _ = load_checkpoint(repo / "data/models/vae.pt")
    assert spec == ModelSpec("vae", dim, vae)
    set_params(repo, {"models": {"vae": {"beta": vae["beta"] * 2}}})
    try:
        proc = run(["python", "-m", "stages", "latents", "vae"], repo)
        line = error_line(proc)
        assert f"data/models/vae.pt: trained as vae with latent_dim {dim}, beta {vae['beta']}" in line
        assert f"asks for vae with latent_dim {dim}, beta {vae['beta'] * 2}" in line
        assert "dvc repro -f train@vae" in line
    finally:
        git(repo, "checkout", "params.yaml")


def test_second_repro_runs_nothing_and_status_is_clean(repo):
    again = dvc(repo, "repro")
    assert ran_stages(again.stdout) == []
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def test_training_killed_part_way_leaves_no_half_new_output_and_repro_recovers(repo):
    outputs = [repo / p for p in ("data/models/conv.pt", "metrics/train_conv.json", "plots/loss/conv.csv",
                                  "metrics/run/train_conv.json", "plots/samples/conv.png")]
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
            if cmdline[-3:-1] == ["stages", "train"] and child.cpu_times().user > 2.0:  # past imports, training
                victim = child
        time.sleep(0.1)
    assert victim is not None, "training never started"
    victim.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    # DVC removes a stage's outputs before running it; the killed run added none, whole or half.
    assert not [p for p in outputs if p.exists()]
    assert "train@conv" in json.loads(dvc(repo, "status", "--json").stdout)
    dvc(repo, "repro")
    assert all(p.is_file() for p in outputs)
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}
    # The killed run's temporaries were removed as stale by the next one.
    assert not [p for p in repo.rglob("*.tmp-*") if ".dvc" not in p.parts]


def other_latent_size(repo) -> int:
    """A latent size the committed params.yaml does not have."""
    return 16 if yaml.safe_load((repo / "params.yaml").read_text())["train"]["latent_dim"] != 16 else 8


def test_latent_size_change_diffs_and_going_back_restores_every_stage_from_the_run_cache(repo, tmp_path):
    from tests.browser import render

    set_params(repo, {"train": {"latent_dim": other_latent_size(repo)}})
    rerun = dvc(repo, "repro").stdout
    assert "train@conv" in ran_stages(rerun)
    assert not {"download", "prepare"} & set(ran_stages(rerun))
    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    for arch in ARCHS:
        assert "test_mse" in diff[f"metrics/train_{arch}.json"]
    # dvc plots diff: each revision gets its own panel, titled with its name.
    dvc(repo, "plots", "diff", "HEAD", "-o", str(tmp_path / "diff"))
    page = (tmp_path / "diff" / "index.html").read_text(encoding="utf-8")
    assert '"rev": "HEAD"' in page and '"rev": "workspace"' in page
    dom = render(tmp_path / "diff" / "index.html", expected_charts=2)
    assert ">HEAD<" in dom and ">workspace<" in dom
    git(repo, "checkout", "params.yaml")
    back = dvc(repo, "repro").stdout
    assert ran_stages(back) == []
    restored = re.findall(r"Stage '([^']+)' is cached - skipping run", back)
    assert "train@vae" in restored and "report" in restored and len(restored) >= 4 * len(ARCHS)
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}
    assert run(["git", "status", "--porcelain", "metrics", "plots"], repo, check=True).stdout == ""


def test_another_clone_restores_runs_and_sees_experiments_through_remotes(repo, tmp_path):
    # A configuration this clone ran but never committed (restored at once if the test above ran it).
    other = other_latent_size(repo)
    set_params(repo, {"train": {"latent_dim": other}})
    dvc(repo, "repro")
    git(repo, "checkout", "params.yaml")
    dvc(repo, "repro")
    storage, origin = tmp_path / "dvc-storage", tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, check=True)
    git(repo, "remote", "add", "origin", str(origin))
    dvc(repo, "remote", "add", "-d", "-f", "shared", str(storage))
    # As a user shares: commit what `dvc repro` wrote, push the code, then `make share`.
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results to share", "--allow-empty")
    git(repo, "push", "-q", "origin", "HEAD:main")
    shared = run(["python", "-m", "tools.share"], repo, check=True).stdout
    assert "more run outputs pushed" in shared
    # An experiment that changes little (t-SNE and the report rerun), in a temporary copy.
    dvc(repo, "exp", "run", "--temp", "-n", "perplexity-4", "-S", "tsne.perplexity=4")
    dvc(repo, "exp", "push", "origin", "perplexity-4")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path, check=True)
    dvc(clone, "remote", "add", "-d", "-f", "shared", str(storage))
    dvc(clone, "pull", "--run-cache")
    assert (clone / "data/models/conv.pt").is_file()
    set_params(clone, {"train": {"latent_dim": other}})  # run in the first clone, never committed
    repro = dvc(clone, "repro", "--pull").stdout
    assert ran_stages(repro) == []
    assert "Stage 'train@conv' is cached - skipping run" in repro
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}
    dvc(clone, "exp", "pull", "origin", "perplexity-4")
    assert '"name": "perplexity-4"' in dvc(clone, "exp", "show", "--json").stdout
    shutil.rmtree(clone)


def test_dvc_repro_works_from_the_environment_without_activation(repo):
    from tests.stagerun import venv_path_hook_installed

    if not venv_path_hook_installed():
        pytest.skip("tools/venv-path.pth is not installed in this environment (make setup installs it)")
    bare = {**env(), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(Path(env()["PATH"].split(":")[0]) / "dvc"), "repro", "--force", "--single-item",
                           "prepare"], cwd=repo, env=bare, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert ran_stages(proc.stdout) == ["prepare"]
